// What every module of the editor shares: the page's settings (from #editor's data attributes), the one mutable
// `state` of the open lab, the save badge and the canvas notice. Modules import this instead of reaching each
// other through globals.

export const root = document.getElementById("editor");
export const labPk = root.dataset.lab;
export const editable = root.dataset.editable === "true";
export const iconBase = `${root.dataset.static}img/nodes/`;
export const $ = (id) => document.getElementById(id);

/**
 * doc: the topology document (the only model; the canvas is redrawn from it); version: the server's version of it;
 * problems: the last validation problems; observed: addresses the running lab has that the document does not say
 * (DHCP leases), {node: {iface: "10.0.1.123/24"}}; cy, eh, panel, deploy, consoles: the parts boot() made.
 */
export const state = {
  doc: null, version: 0, problems: [], importWarnings: [], observed: {},
  cy: null, eh: null, linkMode: false, panel: null, deploy: null, consoles: null, dock: null,
};

const statusEl = $("save-status");

/** The save badge: one line; the whole text stays in its tooltip when it does not fit. */
export function setStatus(kind, text) {
  statusEl.dataset.state = kind;
  statusEl.textContent = text;
  statusEl.title = text;
}

let noticeTimer = null;

/** Say something about what the user just did, in full, over the top of the canvas; it goes by itself. */
export function notify(text, { kind = "error", ms = 7000 } = {}) {
  const el = $("canvas-notice");
  el.dataset.kind = kind;
  el.querySelector(".notice-text").textContent = text;
  el.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { el.hidden = true; }, ms);
}

export function clearNotice() {
  clearTimeout(noticeTimer);
  $("canvas-notice").hidden = true;
}

$("canvas-notice").querySelector(".notice-close").addEventListener("click", clearNotice);
