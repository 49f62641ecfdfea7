// The lab editor: loads a lab, wires the canvas, palette, panel, history and autosave together.
// The topology document in `state.doc` is the only model; the canvas is redrawn from it after every change.
import cytoscape from "cytoscape";
import { images as fetchImages, importAndOpen, labs } from "./api.js";
import { Autosave } from "./autosave.js";
import { createCanvas, markProblems, syncCanvas } from "./canvas.js";
import { History } from "./history.js";
import { autoLayout, fit, zoomBy } from "./layout.js";
import * as M from "./model.js";
import { createPalette } from "./palette.js";
import { Panel } from "./panel.js";
import { initVersions } from "./versions.js";

const root = document.getElementById("editor");
const labPk = root.dataset.lab;
const editable = root.dataset.editable === "true";
const iconBase = `${root.dataset.static}img/nodes/`;
const $ = (id) => document.getElementById(id);

if (window.cytoscapeEdgehandles) cytoscape.use(window.cytoscapeEdgehandles);

const state = { doc: null, version: 0, problems: [], importWarnings: [], cy: null, eh: null, linkMode: false };
const history = new History();
const statusEl = $("save-status");

function setStatus(kind, text) {
  statusEl.dataset.state = kind;
  statusEl.textContent = text;
  statusEl.title = text;
}

const autosave = new Autosave({ delay: 800, save, onState: setStatus });
const versions = initVersions(statusEl);

async function save() {
  const sent = M.clone(state.doc);
  try {
    const lab = await labs.save(labPk, state.version, sent, sent.name || undefined);
    state.version = lab.version;
    versions.editing(lab.version);
    showProblems(lab.errors);
    return "saved";
  } catch (err) {
    if (err.status === 409 && err.body && err.body.lab) {
      history.record(JSON.stringify(state.doc)); // Ctrl+Z brings back what was overwritten here
      adopt(err.body.lab);
      return "conflict";
    }
    throw err;
  }
}

/** Take a lab from the server as the current state (first load, or after a conflict). */
function adopt(lab) {
  state.doc = M.normalise(lab.document);
  state.version = lab.version;
  versions.editing(lab.version);
  $("lab-name").value = lab.name;
  if (state.cy) {
    syncCanvas(state.cy, state.doc);
    selectionChanged();
  }
  showProblems(lab.errors);
  updateChrome();
}

// --- changing the document -------------------------------------------------------------------------------------

/** Apply `mutator` to a copy of the document; on success it becomes current (undoable) and is saved soon. */
function change(mutator, { refreshPanel = false } = {}) {
  if (!editable) return "this lab is read-only";
  const before = JSON.stringify(state.doc);
  const draft = JSON.parse(before);
  try {
    mutator(draft);
  } catch (err) {
    return err.message || String(err);
  }
  if (JSON.stringify(draft) === before) return null;
  history.record(before);
  state.doc = draft;
  redraw();
  if (refreshPanel) panel.refresh();
  autosave.schedule();
  return null;
}

function restore(snapshot) {
  state.doc = JSON.parse(snapshot);
  redraw();
  selectionChanged();
  panel.refresh();
  autosave.schedule();
}

function undo() {
  const snapshot = history.undo(JSON.stringify(state.doc));
  if (snapshot !== null) restore(snapshot);
}

function redo() {
  const snapshot = history.redo(JSON.stringify(state.doc));
  if (snapshot !== null) restore(snapshot);
}

function redraw() {
  syncCanvas(state.cy, state.doc);
  showProblems(state.problems);
  updateChrome();
}

function updateChrome() {
  $("btn-undo").disabled = !history.canUndo;
  $("btn-redo").disabled = !history.canRedo;
  if (state.doc && $("lab-name") !== document.activeElement) $("lab-name").value = state.doc.name || $("lab-name").value;
  $("canvas-hint").hidden = !state.doc || Object.keys(state.doc.nodes).length > 0;
}

// --- problems ----------------------------------------------------------------------------------------------------

function targetId(target) {
  return target.node !== undefined ? target.node : `link-${target.link}`;
}

function showProblems(problems) {
  state.problems = problems || [];
  const byTarget = new Map();
  for (const p of state.problems) {
    const target = M.problemTarget(p.path);
    if (!target) continue;
    const id = targetId(target);
    const prefix = target.node !== undefined ? `nodes.${target.node}` : `links.${target.link}`;
    const where = p.path.slice(prefix.length + 1);
    if (!byTarget.has(id)) byTarget.set(id, []);
    byTarget.get(id).push(where ? `${where}: ${p.message}` : p.message);
  }
  if (state.cy) markProblems(state.cy, byTarget);
  panel.setProblems(state.problems);
  renderProblemList();
}

function renderProblemList() {
  const list = $("problem-list");
  const items = [];
  for (const w of state.importWarnings) {
    const li = document.createElement("li");
    li.className = "warning";
    li.textContent = w;
    items.push(li);
  }
  for (const p of state.problems.slice(0, 300)) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "problem";
    button.dataset.path = p.path;
    button.innerHTML = '<span class="path mono"></span><span class="message"></span>';
    button.querySelector(".path").textContent = p.path || "lab";
    button.querySelector(".message").textContent = p.message;
    button.addEventListener("click", () => focusProblem(p));
    li.append(button);
    items.push(li);
  }
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "No problems";
    items.push(li);
  }
  list.replaceChildren(...items);
  $("problem-count").textContent = String(state.problems.length);
  $("problem-count").classList.toggle("bad", state.problems.length > 0);
}

function focusProblem(problem) {
  const target = M.problemTarget(problem.path);
  if (!target) return;
  const el = state.cy.getElementById(targetId(target));
  if (el.empty()) return;
  state.cy.elements().unselect();
  el.select();
  state.cy.animate({ center: { eles: el }, duration: 250 });
}

// --- selection, panel --------------------------------------------------------------------------------------------

const panel = new Panel($("panel"), {
  getDoc: () => state.doc,
  apply: (mutator) => change(mutator),
  editable,
  onRenamed: (old, name) => {
    state.cy.elements().unselect();
    state.cy.getElementById(name).select();
  },
  onDelete: () => deleteSelection(),
});

let selectionTimer = null;
function selectionChanged() {
  clearTimeout(selectionTimer);
  selectionTimer = setTimeout(() => {
    const nodes = state.cy.nodes(":selected").map((n) => n.id());
    const links = state.cy.edges(":selected").map((e) => e.data("index"));
    $("btn-delete").disabled = !editable || (!nodes.length && !links.length);
    panel.show({ nodes, links });
  }, 0);
}

function deleteSelection() {
  const nodes = state.cy.nodes(":selected").map((n) => n.id());
  const links = state.cy.edges(":selected").map((e) => e.data("index"));
  if (!nodes.length && !links.length) return;
  change((d) => {
    M.deleteLinks(d, links);
    for (const n of nodes) M.deleteNode(d, n);
  });
  state.cy.elements().unselect();
  selectionChanged();
}

// --- link drawing -------------------------------------------------------------------------------------------------

function setLinkMode(on) {
  if (!state.eh || !editable) return;
  state.linkMode = on;
  if (on) state.eh.enableDrawMode(); else { state.eh.stop(); state.eh.disableDrawMode(); }
  $("btn-link").setAttribute("aria-pressed", String(on));
  $("canvas").classList.toggle("link-mode", on);
}

function addLink(source, target) {
  let index = -1;
  change((d) => { index = M.addLink(d, source, target); });
  if (index >= 0) {
    state.cy.elements().unselect();
    state.cy.getElementById(`link-${index}`).select();
  }
}

// --- inline rename ----------------------------------------------------------------------------------------------

function startRename(node) {
  if (!editable) return;
  const input = $("inline-rename");
  const old = node.id();
  const box = node.renderedBoundingBox({ includeLabels: false });
  input.value = old;
  input.style.left = `${(box.x1 + box.x2) / 2 - 70}px`;
  input.style.top = `${box.y2 + 4}px`;
  input.hidden = false;
  input.classList.remove("invalid");
  input.focus();
  input.select();
  const finish = (commit) => {
    input.removeEventListener("keydown", onKey);
    input.removeEventListener("blur", onBlur);
    input.hidden = true;
    const name = input.value.trim();
    if (!commit || !name || name === old) return;
    const error = change((d) => M.renameNode(d, old, name));
    if (error) setStatus("error", `Error: cannot rename ${old}: ${error}`);
    else { state.cy.elements().unselect(); state.cy.getElementById(name).select(); }
  };
  const onKey = (e) => {
    e.stopPropagation();
    if (e.key === "Enter") {
      const problem = M.renameProblem(state.doc, old, input.value.trim());
      if (problem) { input.classList.add("invalid"); input.title = problem; return; }
      finish(true);
    } else if (e.key === "Escape") finish(false);
  };
  const onBlur = () => finish(true);
  input.addEventListener("keydown", onKey);
  input.addEventListener("blur", onBlur);
}

// --- keyboard ------------------------------------------------------------------------------------------------------

document.addEventListener("keydown", (e) => {
  if (!state.cy) return;
  const typing = e.target.closest && e.target.closest("input, textarea, select, [contenteditable]");
  const mod = e.ctrlKey || e.metaKey;
  const key = e.key.toLowerCase();
  if (typing) return;
  if (mod && key === "z") { e.preventDefault(); if (e.shiftKey) redo(); else undo(); }
  else if (mod && key === "y") { e.preventDefault(); redo(); }
  else if (mod && key === "a") { e.preventDefault(); state.cy.elements().select(); }
  else if (e.key === "Delete" || e.key === "Backspace") { e.preventDefault(); deleteSelection(); }
  else if (e.key === "Escape") { setLinkMode(false); state.cy.elements().unselect(); }
  else if (!mod && key === "l") setLinkMode(!state.linkMode);
});

// --- start --------------------------------------------------------------------------------------------------------

function wireCanvas(cy) {
  cy.on("select unselect", selectionChanged);
  cy.on("dbltap", "node", (e) => startRename(e.target));

  const moved = new Set();
  let dragTimer = null;
  cy.on("drag", "node", (e) => moved.add(e.target.id()));
  cy.on("dragfree", "node", () => {
    clearTimeout(dragTimer);
    dragTimer = setTimeout(() => {
      const ids = [...moved];
      moved.clear();
      change((d) => {
        for (const id of ids) {
          const node = d.nodes[id];
          const el = cy.getElementById(id);
          if (!node || el.empty()) continue;
          const p = el.position();
          node.ui = { ...(node.ui || {}), x: Math.round(p.x), y: Math.round(p.y) };
        }
      });
    }, 0);
  });

  const tooltip = $("tooltip");
  cy.on("mouseover", "node, edge", (e) => {
    const problems = e.target.data("problems");
    if (!problems) return;
    tooltip.replaceChildren(...problems.map((m) => Object.assign(document.createElement("div"), { textContent: m })));
    const p = e.renderedPosition || e.target.renderedPosition();
    tooltip.style.left = `${p.x + 16}px`;
    tooltip.style.top = `${p.y + 16}px`;
    tooltip.hidden = false;
  });
  cy.on("mouseout", "node, edge", () => { tooltip.hidden = true; });
  cy.on("viewport", () => { tooltip.hidden = true; });

  if (editable && typeof cy.edgehandles === "function") {
    state.eh = cy.edgehandles({
      canConnect: (source, target) => !source.same(target) && target.isNode(),
      edgeParams: () => ({ data: { sourceLabel: "", targetLabel: "", label: "" } }),
      hoverDelay: 50,
      snap: true,
      snapThreshold: 30,
      snapFrequency: 15,
      noEdgeEventsInDraw: true,
      disableBrowserGestures: true,
    });
    cy.on("ehcomplete", (event, source, target, added) => {
      setTimeout(() => {
        added.remove();
        addLink(source.id(), target.id());
      }, 0);
    });
  }
}

function wireToolbar(cy) {
  $("btn-undo").addEventListener("click", undo);
  $("btn-redo").addEventListener("click", redo);
  $("btn-link").addEventListener("click", () => setLinkMode(!state.linkMode));
  $("btn-delete").addEventListener("click", deleteSelection);
  $("btn-zoom-in").addEventListener("click", () => zoomBy(cy, 1.25));
  $("btn-zoom-out").addEventListener("click", () => zoomBy(cy, 0.8));
  $("btn-fit").addEventListener("click", () => fit(cy));
  $("btn-layout").addEventListener("click", async () => {
    if (!editable || cy.nodes().empty()) return;
    $("btn-layout").disabled = true;
    try {
      await autoLayout(cy, { elkUrl: root.dataset.elk });
      change((d) => {
        cy.nodes().forEach((el) => {
          const node = d.nodes[el.id()];
          if (node) node.ui = { ...(node.ui || {}), x: Math.round(el.position().x), y: Math.round(el.position().y) };
        });
      });
    } finally {
      $("btn-layout").disabled = false;
    }
  });
  $("lab-name").addEventListener("change", () => {
    const name = $("lab-name").value.trim();
    if (!name) { $("lab-name").value = state.doc.name; return; }
    change((d) => { d.name = name; });
    document.title = `${name} · Topolab`;
  });
  $("lab-name").addEventListener("keydown", (e) => { if (e.key === "Enter") e.target.blur(); });
  for (const id of ["btn-export", "btn-export-clab"]) {
    $(id).addEventListener("click", async (e) => {
      $("export-menu").open = false;
      if (!autosave.busy) return; // saved: let the browser download
      e.preventDefault();
      await autosave.flush();
      window.location.assign($(id).href);
    });
  }
  $("btn-import").addEventListener("click", () => $("import-file").click());
  $("import-file").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    try {
      await importAndOpen(file);
    } catch (err) {
      setStatus("error", `Error: import failed: ${err.message}`);
    } finally {
      e.target.value = "";
    }
  });
  window.addEventListener("beforeunload", (e) => {
    if (autosave.busy) { autosave.flush(); e.preventDefault(); e.returnValue = ""; }
  });
}

async function start() {
  const t0 = performance.now();
  let lab;
  try {
    lab = await labs.get(labPk);
  } catch (err) {
    setStatus("error", `Error: cannot load the lab: ${err.message}`);
    return;
  }
  const stored = sessionStorage.getItem("topolab-import-warnings");
  if (stored) {
    sessionStorage.removeItem("topolab-import-warnings");
    state.importWarnings = JSON.parse(stored);
  }
  state.doc = M.normalise(lab.document);
  state.version = lab.version;
  const fetched = performance.now();
  const cy = createCanvas($("canvas"), state.doc, { iconBase });
  const created = performance.now();
  state.cy = cy;
  wireCanvas(cy);
  wireToolbar(cy);
  createPalette($("palette"), {
    iconBase, canvas: $("canvas"), getCy: () => cy, enabled: editable,
    onAdd: (kind, position) => {
      let name = null;
      change((d) => { name = M.addNode(d, kind, position); });
      if (name) { cy.elements().unselect(); cy.getElementById(name).select(); }
    },
  });
  adopt(lab);
  setStatus(editable ? "saved" : "readonly", editable ? "Saved" : "Read-only");
  panel.show({ nodes: [], links: [] });
  window.topolab = { cy, state, change, undo, redo, setLinkMode, autosave };
  cy.one("render", () => requestAnimationFrame(() => {
    window.topolabReady = performance.now();
    window.topolabRenderMs = window.topolabReady - t0;
    window.topolabTimings = { fetchMs: fetched - t0, createMs: created - fetched, paintMs: window.topolabReady - created };
    root.dataset.ready = "true";
    loadExtensions(cy); // after the first paint: restyling 500 nodes must not delay it
    // an imported or API-made lab without positions gets a real layout once (saved like a press on Layout)
    const nodes = Object.values(state.doc.nodes || {});
    if (editable && nodes.length > 1 && nodes.every((n) => !n || !n.ui)) $("btn-layout").click();
  }));
  cy.forceRender();
  fetchImages().then((list) => panel.setImages(list)).catch(() => panel.setImages([]));
  versions.deployed(lab.deployed_version);
  labs.uplinks(labPk).then((u) => panel.setUplinks(u)).catch(() => {});
}

/** Deploy/Destroy controls live in their own module (runs app); the editor works without them. */
async function loadExtensions(cy) {
  try {
    const { initDeploy } = await import("./deploy.js");
    window.topolab.deploy = initDeploy({
      labId: labPk, cy, editable, toolbarEl: root.querySelector(".toolbar"), container: document.body,
      beforeDeploy: () => autosave.flush(), // deploy what the user sees, not the last autosave
      onEvent: (event) => { // Console/Capture follow the nodes' states; the versions line follows deploys
        versions.event(event);
        window.topolab.consoles?.render();
      },
    });
  } catch (err) {
    console.warn("deploy controls unavailable:", err);
  }
  try {
    const { initConsoles } = await import("./console.js");
    window.topolab.consoles = initConsoles({
      labPk, cy, getDoc: () => state.doc, container: document.body,
      sidebar: root.querySelector(".sidebar.right"),
      nodeState: (name) => window.topolab.deploy?.state?.nodes?.[name],
    });
  } catch (err) {
    console.warn("consoles unavailable:", err);
  }
}

start();
