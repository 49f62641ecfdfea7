// The class dashboard's scores (issue 16): every member lab's latest score and per-check marks in one table,
// "Check all" (a check run on every deployed lab, progress shown live while they run) and the CSV export link.
// Live progress polls GET /api/classes/{id}/scores/ once a second while any lab of the class has a check run.
import { request } from "../editor/api.js";

const root = document.getElementById("class-scores");
const POLL_MS = 1000;

function el(tag, attrs = {}, ...children) {
  const node = Object.assign(document.createElement(tag), attrs);
  node.append(...children);
  return node;
}

function render(data) {
  const table = document.getElementById("scores-table");
  const head = el("tr", {}, el("th", { textContent: "Student" }), el("th", { textContent: "Lab" }),
    el("th", { textContent: "Score" }), el("th", { textContent: "Checked" }),
    ...data.checks.map((c) => el("th", { textContent: c.title || c.id, title: c.id })));
  table.tHead.replaceChildren(head);
  const rows = data.rows.map((row) => {
    const result = row.result;
    const checking = row.run && row.run.kind === "check";
    const tr = el("tr", {},
      el("td", { textContent: row.owner }),
      el("td", {}, el("a", { href: `/labs/${row.lab}/`, textContent: row.name }),
        el("span", { className: "mono muted", textContent: ` ${row.lab_id}` })),
      el("td", { className: "score", textContent: checking ? "checking…"
        : result ? `${result.percent}% (${result.earned}/${result.possible})` : row.checks ? "—" : "no checks" }),
      el("td", { className: "muted", textContent: result ? new Date(result.created).toLocaleString() : "" }),
      ...data.checks.map((c) => {
        const mark = result ? result.marks[c.id] : undefined;
        const td = el("td", { className: mark === undefined ? "" : mark ? "mark-passed" : "mark-failed",
          textContent: mark === undefined ? "" : mark ? "✓" : "✗", title: result?.messages?.[c.id] || "" });
        td.dataset.check = c.id;
        return td;
      }));
    tr.dataset.lab = row.lab;
    tr.dataset.owner = row.owner;
    tr.dataset.percent = result && !checking ? String(result.percent) : "";
    return tr;
  });
  table.tBodies[0].replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { className: "muted", textContent: "No labs yet." }))]));
  return data.rows.filter((r) => r.run && r.run.kind === "check").length;
}

async function refresh(started) {
  const data = await request("GET", `/api/classes/${root.dataset.class}/scores/`);
  const active = render(data);
  const progress = document.getElementById("check-all-progress");
  if (started) {
    const done = started - active;
    progress.textContent = active ? `Checking: ${done} of ${started} labs done…` : `Checked ${started} labs.`;
  }
  if (active) window.setTimeout(() => refresh(started || active).catch(() => {}), POLL_MS);
  else document.getElementById("btn-check-all").disabled = false;
}

if (root) {
  document.getElementById("btn-check-all").addEventListener("click", async (e) => {
    e.target.disabled = true;
    const progress = document.getElementById("check-all-progress");
    try {
      const body = await request("POST", `/api/classes/${root.dataset.class}/check-all/`);
      const skipped = body.skipped.length ? ` (${body.skipped.length} skipped: not deployed or busy)` : "";
      progress.textContent = `Checking ${body.started.length} labs…${skipped}`;
      root.dataset.skipped = String(body.skipped.length);
      await refresh(body.started.length || 0);
    } catch (err) {
      progress.textContent = `Check all failed: ${err.message}`;
      e.target.disabled = false;
    }
  });
  refresh(0).catch((err) => { document.getElementById("check-all-progress").textContent = err.message; });
}
