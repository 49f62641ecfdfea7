// The lab editor's boot: loads the lab, makes the canvas, palette, panel and dock, wires them (wiring.js,
// toolbar.js, keyboard.js), then loads the deploy and console controls. The modules share context.js's `state`;
// `window.topolab` is only a read-only handle for tests and benchmarks, which no module reads.
import cytoscape from "cytoscape";
import { images as fetchImages, labs } from "./api.js";
import { createCanvas } from "./canvas.js";
import { $, editable, iconBase, labPk, root, setStatus, state } from "./context.js";
import { Dock } from "./dock.js";
import { wireKeyboard } from "./keyboard.js";
import * as M from "./model.js";
import { watchAdjacencies } from "./adjacency.js";
import { watchLeases } from "./observed.js";
import { createPalette } from "./palette.js";
import { Panel } from "./panel.js";
import { adopt, autosave, change, deleteSelection, redo, redraw, select, undo } from "./session.js";
import { wireToolbar } from "./toolbar.js";
import { initVersions } from "./versions.js";
import { setLinkMode, wireCanvas } from "./wiring.js";

if (window.cytoscapeEdgehandles) cytoscape.use(window.cytoscapeEdgehandles);

state.panel = new Panel($("panel"), {
  getDoc: () => state.doc,
  getObserved: () => state.observed,
  apply: (mutator) => change(mutator),
  editable,
  onRenamed: (old, name) => select(name),
  onDelete: () => deleteSelection(),
});

function importWarnings() {
  const stored = sessionStorage.getItem("topolab-import-warnings");
  if (!stored) return [];
  sessionStorage.removeItem("topolab-import-warnings");
  return JSON.parse(stored);
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
  state.importWarnings = importWarnings();
  state.doc = M.normalise(lab.document);
  state.version = lab.version;
  state.versions = initVersions($("save-status"), () => state.version);
  state.versions.deployed(lab.deployed_version);
  const fetched = performance.now();
  const cy = createCanvas($("canvas"), state.doc, { iconBase });
  const created = performance.now();
  state.cy = cy;
  state.dock = new Dock(root);
  wireCanvas(cy);
  wireToolbar(cy);
  wireKeyboard();
  createPalette($("palette"), {
    iconBase, canvas: $("canvas"), getCy: () => cy, enabled: editable,
    onAdd: (kind, position) => {
      let name = null;
      change((d) => { name = M.addNode(d, kind, position); });
      if (name) select(name);
    },
  });
  adopt(lab);
  setStatus(editable ? "saved" : "readonly", editable ? "Saved" : "Read-only");
  state.panel.show({ nodes: [], links: [] });
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
  fetchImages().then((list) => state.panel.setImages(list)).catch(() => state.panel.setImages([]));
  labs.uplinks(labPk).then((u) => state.panel.setUplinks(u)).catch(() => {}); // the External panel's bridges
}

/** Leased addresses follow deploys and destroys (labels and the panel show them). */
function leaseWatcher() {
  const leases = watchLeases(() => { redraw(); state.panel.refreshObserved(); });
  return (event) => {
    if (event.type === "snapshot" && event.deployed && !event.run) leases.refresh();
    else if (event.type === "run.finished" && event.kind === "deploy") leases.refresh();
    else if (event.type === "run.started" && event.kind === "destroy") leases.clear();
  };
}

/** Deploy/Destroy controls and consoles live in their own modules (runs app); the editor works without them. */
async function loadExtensions(cy) {
  const onLeaseEvent = leaseWatcher();
  const onAdjacencyEvent = watchAdjacencies(cy); // OSPF/BGP up on the links, from the lab's status
  try {
    const [{ initDeploy }, { initHosts }] = await Promise.all([import("./deploy.js"), import("./hosts.js")]);
    // before the deploy controls: their first snapshot carries the placement the badges show
    state.hosts = initHosts({ cy, toolbarEl: root.querySelector(".toolbar") });
    window.topolab.hosts = state.hosts;
    state.deploy = initDeploy({
      labId: labPk, cy, editable, toolbarEl: root.querySelector(".toolbar"), dock: state.dock,
      beforeDeploy: () => autosave.flush(), // deploy what the user sees, not the last autosave
      onEvent: (event) => { // Console/Capture follow the nodes' states; the versions line follows deploys
        state.versions?.event(event);
        state.actions?.event(event);
        if (state.consoles) state.consoles.render();
        state.checks?.onEvent(event);
        state.hosts?.event(event);
        onLeaseEvent(event);
        onAdjacencyEvent(event);
      },
    });
    state.deploy.editing(state.version, state.doc);
    window.topolab.deploy = state.deploy;
  } catch (err) {
    console.warn("deploy controls unavailable:", err);
  }
  try { // node and link actions on the running lab: right-click menu and the panel's "Running lab" section
    const { initActions } = await import("./actions.js");
    state.actions = initActions({ labPk, cy, panel: state.panel, getDoc: () => state.doc, editable,
      deployState: () => state.deploy?.state });
    window.topolab.actions = state.actions;
  } catch (err) {
    console.warn("node and link actions unavailable:", err);
  }
  try {
    const { initChecks } = await import("./checks.js");
    state.checks = initChecks({
      labPk, cy, toolbarEl: root.querySelector(".toolbar"), sidebar: root.querySelector(".sidebar.right"),
      getDoc: () => state.doc, change, editable,
    });
  } catch (err) {
    console.warn("checks unavailable:", err);
  }
  try {
    const { initConsoles } = await import("./console.js");
    state.consoles = initConsoles({
      labPk, cy, getDoc: () => state.doc, dock: state.dock, sidebar: root.querySelector(".sidebar.right"),
      nodeState: (name) => state.deploy?.state?.nodes?.[name],
    });
    window.topolab.consoles = state.consoles;
  } catch (err) {
    console.warn("consoles unavailable:", err);
  }
}

start();
