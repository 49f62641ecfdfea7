// The canvas's events: selection, dragging (positions are saved), the problem tooltip, drawing links
// (edgehandles) and why a drawn link was refused.
import { $, editable, notify, state } from "./context.js";
import * as M from "./model.js";
import { startRename } from "./rename.js";
import { change, select, selectionChanged } from "./session.js";

export function setLinkMode(on) {
  if (!state.eh || !editable) return;
  state.linkMode = on;
  if (on) state.eh.enableDrawMode(); else { state.eh.stop(); state.eh.disableDrawMode(); }
  $("btn-link").setAttribute("aria-pressed", String(on));
  $("canvas").classList.toggle("link-mode", on);
}

function addLink(source, target) {
  let index = -1;
  const error = change((d) => { index = M.addLink(d, source, target); });
  if (error) notify(`No link from ${source} to ${target}: ${error}`);
  else if (index >= 0) select(`link-${index}`);
}

function inside(node, position) {
  const box = node.boundingBox({ includeLabels: false });
  return position && position.x >= box.x1 && position.x <= box.x2 && position.y >= box.y1 && position.y <= box.y2;
}

function wireTooltip(cy) {
  const tooltip = $("tooltip");
  const hide = () => { tooltip.hidden = true; };
  cy.on("mouseover", "node, edge", (e) => {
    const problems = e.target.data("problems");
    if (!problems) return;
    tooltip.replaceChildren(...problems.map((m) => Object.assign(document.createElement("div"), { textContent: m })));
    const p = e.renderedPosition || e.target.renderedPosition();
    tooltip.style.left = `${p.x + 16}px`;
    tooltip.style.top = `${p.y + 16}px`;
    tooltip.hidden = false;
  });
  // it describes one element under the pointer as it was: anything that moves or changes that ends it
  cy.on("mouseout", "node, edge", hide);
  cy.on("viewport tapstart grab remove", hide);
  cy.container().addEventListener("mouseleave", hide);
}

function wireDrawing(cy) {
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
  // edgehandles refuses a link back to its own node without a word (no cancel event either): say why
  cy.on("ehstop", (event, source) => {
    if (inside(source, event.position)) {
      notify(`A link joins two different nodes: ${source.id()} cannot be linked to itself. Drag onto another node.`);
    }
  });
}

export function wireCanvas(cy) {
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
  wireTooltip(cy);
  if (editable && typeof cy.edgehandles === "function") wireDrawing(cy);
  // the canvas shrinks and grows with the dock and the window (Cytoscape only watches the window by itself);
  // a lab that was all in view stays all in view
  let wasInView = true;
  const inView = () => {
    const ext = cy.extent();
    const box = cy.nodes().boundingBox({ includeLabels: true });
    return cy.nodes().empty() || (box.x1 >= ext.x1 && box.x2 <= ext.x2 && box.y1 >= ext.y1 && box.y2 <= ext.y2);
  };
  cy.on("viewport", () => { wasInView = inView(); });
  new ResizeObserver(() => {
    cy.resize();
    if (wasInView && !inView()) {
      const zoom = cy.zoom();
      cy.fit(undefined, 30);
      if (cy.zoom() > zoom) cy.zoom({ level: zoom, renderedPosition: { x: cy.width() / 2, y: cy.height() / 2 } });
    }
    wasInView = inView();
  }).observe(cy.container());
}
