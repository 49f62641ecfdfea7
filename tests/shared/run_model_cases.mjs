// Runs tests/shared/document_operations.json against the canvas's editing rules (static/js/editor/model.js) in
// Node, with the kind registry the server serves (argv[3], the JSON of GET /api/kinds/). Prints the outcomes.
import { readFileSync } from "node:fs";

const [casesPath, kindsPath] = process.argv.slice(2);
const registry = JSON.parse(readFileSync(kindsPath, "utf8"));
globalThis.document = { cookie: "" };
globalThis.fetch = async () => ({
  ok: true, status: 200, headers: { get: () => "application/json" }, json: async () => registry,
});
const M = await import(new URL("../../static/js/editor/model.js", import.meta.url).href);

const ops = {
  add_node: (doc, kind) => M.addNode(doc, kind, null),
  add_link: (doc, a, b) => { const i = M.addLink(doc, a, b); if (i < 0) throw new Error("refused"); return i; },
  rename_node: (doc, old, name) => M.renameNode(doc, old, name),
  delete_node: (doc, name) => M.deleteNode(doc, name),
  delete_link: (doc, index) => M.deleteLinks(doc, [index]),
};

const outcomes = JSON.parse(readFileSync(casesPath, "utf8")).map((c) => {
  const doc = structuredClone(c.doc);
  try {
    const result = ops[c.op](doc, ...c.args);
    return { doc, result: result === undefined ? null : result, error: false };
  } catch (err) {
    return { error: true, message: String(err.message || err) };
  }
});
process.stdout.write(JSON.stringify(outcomes));
