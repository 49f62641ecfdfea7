// The Cytoscape canvas: draws the document (nodes by name, links by index) and marks problems on elements.
import cytoscape from "cytoscape";
import { KINDS } from "./kinds.js";
import { labelAddress, splitEndpoint } from "./model.js";

export const BIG_GRAPH = 200; // above this many nodes, trade viewport eye candy for speed

const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif';

function style(iconBase) {
  const rules = [
    {
      selector: "node",
      style: {
        width: 48, height: 48, shape: "ellipse",
        "background-color": "#ffffff", "background-opacity": 0,
        "background-fit": "contain", "background-clip": "none",
        "border-width": 0, "border-color": "#dc2626",
        label: "data(label)", "text-valign": "bottom", "text-halign": "center", "text-margin-y": 5,
        "font-family": FONT, "font-size": 12, "font-weight": 500, color: "#1f2933",
        "text-wrap": "wrap", "text-max-width": 140, "line-height": 1.25,
        "text-background-color": "#ffffff", "text-background-opacity": 0.85,
        "text-background-padding": 2, "text-background-shape": "roundrectangle",
        "min-zoomed-font-size": 7,
        "overlay-padding": 6,
      },
    },
    { selector: "node[kind='bridge']", style: { shape: "round-rectangle", width: 52, height: 40 } },
    {
      selector: "node:selected",
      style: { "overlay-color": "#2563eb", "overlay-opacity": 0.18, "overlay-shape": "round-rectangle", color: "#1d4ed8" },
    },
    {
      selector: "node.has-error",
      style: { "border-width": 3, "border-color": "#dc2626", "border-opacity": 1, "background-opacity": 0.001,
               color: "#b91c1c" },
    },
    {
      selector: "edge",
      style: {
        width: 2, "line-color": "#94a3b8", "curve-style": "bezier", "control-point-step-size": 28,
        "font-family": FONT, "font-size": 10, color: "#475569",
        "source-label": "data(sourceLabel)", "target-label": "data(targetLabel)",
        "source-text-offset": 44, "target-text-offset": 44,
        label: "data(label)",
        "text-background-color": "#f8fafc", "text-background-opacity": 0.9, "text-background-padding": 1,
        "min-zoomed-font-size": 8, "overlay-padding": 4,
      },
    },
    // link conditions (delay, loss, ...) in the middle of the link; the interface names stay at its ends
    { selector: "edge[label != '']", style: { color: "#92400e", "font-weight": 600, "line-color": "#a8a29e" } },
    { selector: "edge:selected", style: { "line-color": "#2563eb", width: 3, color: "#1d4ed8" } },
    { selector: "edge.has-error", style: { "line-color": "#dc2626", "line-style": "dashed", color: "#b91c1c" } },
    { selector: "edge.has-error:selected", style: { width: 4 } },
    // edgehandles while drawing a link
    { selector: ".eh-source, .eh-target", style: { "overlay-color": "#16a34a", "overlay-opacity": 0.2 } },
    { selector: ".eh-hover", style: { "overlay-color": "#16a34a", "overlay-opacity": 0.25 } },
    {
      selector: ".eh-preview, .eh-ghost-edge",
      style: { "line-color": "#16a34a", "line-style": "dashed", width: 2, label: "", "source-label": "", "target-label": "" },
    },
    { selector: ".eh-ghost-edge.eh-preview-active", style: { opacity: 0 } },
  ];
  for (const kind of Object.keys(KINDS)) {
    rules.splice(1, 0, { selector: `node[kind='${kind}']`, style: { "background-image": `${iconBase}${kind}.svg` } });
  }
  rules.splice(1, 0, { selector: "node[kind='unknown']", style: { "background-image": `${iconBase}unknown.svg` } });
  return rules;
}

export function gridPosition(i) {
  const perRow = 25;
  return { x: 120 + (i % perRow) * 140, y: 120 + Math.floor(i / perRow) * 140 };
}

function nodeData(doc, name, observed) {
  const node = doc.nodes[name];
  const kind = node && KINDS[node.kind] ? node.kind : "unknown";
  const address = labelAddress(doc, name, observed[name]);
  const label = address ? `${name}\n${address}` : name;
  return { id: name, kind, label, baseLabel: label };
}

function conditionsLabel(link) {
  return ["delay", "jitter", "loss", "rate"].filter((k) => link[k] !== undefined && link[k] !== "")
    .map((k) => String(link[k])).join(" · ");
}

function edgeData(link, i) {
  const [a, ai] = splitEndpoint(link.endpoints[0]);
  const [b, bi] = splitEndpoint(link.endpoints[1]);
  return {
    id: `link-${i}`, index: i, source: a, target: b, sig: JSON.stringify(link.endpoints),
    sourceLabel: ai || "", targetLabel: bi || "", label: conditionsLabel(link),
  };
}

function position(node, i) {
  const ui = node && node.ui;
  if (ui && Number.isFinite(ui.x) && Number.isFinite(ui.y)) return { x: ui.x, y: ui.y };
  return gridPosition(i);
}

function validLink(doc, link) {
  if (!link || !Array.isArray(link.endpoints) || link.endpoints.length !== 2) return false;
  const [a] = splitEndpoint(link.endpoints[0]);
  const [b] = splitEndpoint(link.endpoints[1]);
  return a !== b && Object.hasOwn(doc.nodes, a) && Object.hasOwn(doc.nodes, b);
}

export function createCanvas(container, doc, { iconBase, observed = {} }) {
  const names = Object.keys(doc.nodes);
  const big = names.length > BIG_GRAPH;
  const elements = names.map((name, i) => ({ group: "nodes", data: nodeData(doc, name, observed), position: position(doc.nodes[name], i) }));
  doc.links.forEach((link, i) => {
    if (validLink(doc, link)) elements.push({ group: "edges", data: edgeData(link, i) });
  });
  const cy = cytoscape({
    container,
    elements,
    style: style(iconBase),
    layout: { name: "preset", fit: names.length > 0, padding: 60 },
    minZoom: 0.05,
    maxZoom: 3,
    boxSelectionEnabled: true,
    selectionType: "single",
    textureOnViewport: big,
    hideEdgesOnViewport: big,
    hideLabelsOnViewport: big,
    motionBlur: false,
    pixelRatio: big ? 1 : "auto",
    // a double click (rename) may be as slow as the desktop's default, not only cytoscape's 250 ms
    multiClickDebounceTime: 400,
  });
  if (names.length === 1) cy.zoom(1).center();
  return cy;
}

/** Bring the canvas in line with `doc` (and `observed` addresses): add, update and remove what differs, in one batch. */
export function syncCanvas(cy, doc, observed = {}) {
  cy.batch(() => {
    cy.nodes().forEach((el) => { if (!Object.hasOwn(doc.nodes, el.id())) el.remove(); });
    Object.entries(doc.nodes).forEach(([name, node], i) => {
      const el = cy.getElementById(name);
      const data = nodeData(doc, name, observed);
      if (el.empty()) {
        cy.add({ group: "nodes", data, position: position(node, i) });
      } else {
        if (el.data("baseLabel") !== data.baseLabel || el.data("kind") !== data.kind) el.data(data);
        if (node && node.ui && !el.grabbed()) {
          const p = el.position();
          if (p.x !== node.ui.x || p.y !== node.ui.y) el.position(position(node, i));
        }
      }
    });
    cy.edges().forEach((el) => {
      const link = doc.links[el.data("index")];
      if (!link || !validLink(doc, link) || JSON.stringify(link.endpoints) !== el.data("sig")) el.remove();
    });
    doc.links.forEach((link, i) => {
      if (!validLink(doc, link)) return;
      const el = cy.getElementById(`link-${i}`);
      const data = edgeData(link, i);
      if (el.empty()) cy.add({ group: "edges", data });
      else if (el.data("label") !== data.label) el.data("label", data.label);
    });
  });
}

/** Mark elements that problems concern (red border, messages in data('problems')). */
export function markProblems(cy, byTarget) {
  cy.batch(() => {
    cy.elements(".has-error").forEach((el) => { el.removeClass("has-error"); el.removeData("problems"); });
    for (const [id, messages] of byTarget) {
      const el = cy.getElementById(id);
      if (el.nonempty()) { el.addClass("has-error"); el.data("problems", messages); }
    }
    // a visible badge without hovering: the node's label starts with a warning sign while it has problems
    cy.nodes().forEach((el) => {
      const base = el.data("baseLabel") ?? el.data("label");
      const label = el.hasClass("has-error") ? `\u26a0 ${base}` : base;
      if (el.data("label") !== label) el.data({ label, baseLabel: base });
    });
  });
}

/** Model coordinates of a point given in client (page viewport) coordinates. */
export function modelPosition(cy, clientX, clientY) {
  const rect = cy.container().getBoundingClientRect();
  const pan = cy.pan();
  const zoom = cy.zoom();
  return { x: (clientX - rect.left - pan.x) / zoom, y: (clientY - rect.top - pan.y) / zoom };
}
