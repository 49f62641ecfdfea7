// Editing the open lab: every change goes through change() (undoable, redrawn, saved soon); loading and conflicts
// through adopt(); the selection drives the properties panel.
import { labs } from "./api.js";
import { Autosave } from "./autosave.js";
import { syncCanvas } from "./canvas.js";
import { $, editable, labPk, setStatus, state } from "./context.js";
import { History } from "./history.js";
import * as M from "./model.js";
import { showProblems } from "./problems.js";

export const history = new History();
export const autosave = new Autosave({ delay: 800, save, onState: setStatus });

async function save() {
  const sent = M.clone(state.doc);
  try {
    const lab = await labs.save(labPk, state.version, sent, sent.name || undefined);
    state.version = lab.version;
    showProblems(lab.errors);
    if (state.deploy) state.deploy.editing(state.version, state.doc);
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
export function adopt(lab) {
  state.doc = M.normalise(lab.document);
  state.version = lab.version;
  $("lab-name").value = lab.name;
  if (state.cy) {
    syncCanvas(state.cy, state.doc, state.observed);
    selectionChanged();
  }
  showProblems(lab.errors);
  updateChrome();
  if (state.deploy) state.deploy.editing(state.version, state.doc);
}

/** Apply `mutator` to a copy of the document; on success it becomes current (undoable) and is saved soon.
 * Returns null, or why the change was refused. */
export function change(mutator, { refreshPanel = false } = {}) {
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
  if (refreshPanel) state.panel.refresh();
  autosave.schedule();
  return null;
}

function restore(snapshot) {
  state.doc = JSON.parse(snapshot);
  redraw();
  selectionChanged();
  state.panel.refresh();
  autosave.schedule();
}

export function undo() {
  const snapshot = history.undo(JSON.stringify(state.doc));
  if (snapshot !== null) restore(snapshot);
}

export function redo() {
  const snapshot = history.redo(JSON.stringify(state.doc));
  if (snapshot !== null) restore(snapshot);
}

/** Draw the document again (after a change, or when observed addresses arrive). */
export function redraw() {
  syncCanvas(state.cy, state.doc, state.observed);
  showProblems(state.problems);
  updateChrome();
}

export function updateChrome() {
  $("btn-undo").disabled = !history.canUndo;
  $("btn-redo").disabled = !history.canRedo;
  if (state.doc && $("lab-name") !== document.activeElement) $("lab-name").value = state.doc.name || $("lab-name").value;
  $("canvas-hint").hidden = !state.doc || Object.keys(state.doc.nodes).length > 0;
}

// --- selection ----------------------------------------------------------------------------------------------------

let selectionTimer = null;
export function selectionChanged() {
  clearTimeout(selectionTimer);
  selectionTimer = setTimeout(() => {
    const nodes = state.cy.nodes(":selected").map((n) => n.id());
    const links = state.cy.edges(":selected").map((e) => e.data("index"));
    $("btn-delete").disabled = !editable || (!nodes.length && !links.length);
    state.panel.show({ nodes, links });
  }, 0);
}

export function select(id) {
  state.cy.elements().unselect();
  state.cy.getElementById(id).select();
}

export function deleteSelection() {
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
