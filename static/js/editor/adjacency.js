// OSPF adjacencies and BGP sessions that are up, marked on the links they run over: a green line and an "OSPF"
// badge for a Full adjacency, violet and "BGP" for an Established session (both: green with a violet outline), a
// legend in the canvas's corner and the details in the link's tooltip. Read from the lab's status (GET
// /api/labs/<pk>/status: each router's `routing.ospf`/`ospf6` neighbors and `bgp` sessions name the interface they
// run over, netops.frr_status), asked after a deploy (often at first, while FRR converges), then every POLL_MS
// while the page is visible, again when a node's state changes, and dropped when the lab is destroyed.
import { request } from "./api.js";
import { $, labPk, state } from "./context.js";
import { splitEndpoint } from "./model.js";

const FIRST = [1000, 2000, 3000, 4000, 6000, 8000, 12000]; // while adjacencies form (hello 1 s .. 10 s)
const POLL_MS = 20_000;
const UP = /^Full/;
const COLORS = { ospf: "#16a34a", bgp: "#7c3aed" };

function linkOf(doc, node, iface) {
  if (!iface) return -1;
  return (doc.links || []).findIndex((l) => (l.endpoints || []).some((e) => {
    const [n, i] = splitEndpoint(e);
    return n === node && i === iface;
  }));
}

/** {linkIndex: {ospf: [lines], bgp: [lines]}} of the adjacencies and sessions `status` says are up. */
export function adjacencyMarks(doc, status) {
  const marks = {};
  const add = (i, kind, line) => {
    if (i < 0) return;
    const m = marks[i] || (marks[i] = { ospf: [], bgp: [] });
    m[kind].push(line);
  };
  for (const [name, info] of Object.entries((status && status.nodes) || {})) {
    const r = info && info.routing;
    if (!r) continue;
    for (const [key, label] of [["ospf", "OSPF"], ["ospf6", "OSPFv3"]]) {
      for (const n of r[key] || []) {
        if (UP.test(n.state || "")) add(linkOf(doc, name, n.interface), "ospf", `${name} ${n.interface}: ${label} ${n.state} with ${n.id}`);
      }
    }
    for (const s of r.bgp || []) {
      if (s.state === "Established") {
        add(linkOf(doc, name, s.interface), "bgp",
          `${name} ${s.interface}: BGP Established with ${s.peer} (AS ${s.asn ?? "?"}), ${s.prefixes ?? 0} prefixes received`);
      }
    }
  }
  return marks;
}

function styleMarks(cy) {
  cy.style()
    .selector("edge.adj-ospf").style({ "line-color": COLORS.ospf, width: 4 })
    .selector("edge.adj-bgp").style({ "line-color": COLORS.bgp, width: 4 })
    .selector("edge.adj-ospf.adj-bgp").style({ "line-color": COLORS.ospf, "line-outline-width": 2, "line-outline-color": COLORS.bgp })
    .selector("edge.adj").style({ label: "data(adjLabel)", color: "#14532d", "font-weight": 700,
      "text-background-color": "#dcfce7", "text-background-opacity": 1, "text-background-padding": 2,
      "text-background-shape": "roundrectangle" })
    .selector("edge.adj-bgp").style({ color: "#4c1d95", "text-background-color": "#ede9fe" })
    .selector("edge.adj-ospf.adj-bgp").style({ color: "#14532d", "text-background-color": "#dcfce7" })
    .selector("edge.adj:selected").style({ "overlay-color": "#2563eb", "overlay-opacity": 0.22, "overlay-padding": 5 })
    .update();
}

function legend() {
  let el = document.getElementById("adjacency-legend");
  if (!el) {
    const swatch = (kind, text) => {
      const item = document.createElement("span");
      item.dataset.kind = kind;
      const s = document.createElement("span");
      s.className = `swatch ${kind}`;
      item.append(s, text);
      return item;
    };
    el = document.createElement("div");
    el.id = "adjacency-legend";
    el.className = "adjacency-legend";
    el.hidden = true;
    el.append(swatch("ospf", "OSPF Full"), swatch("bgp", "BGP Established"));
    $("canvas").parentElement.append(el);
  }
  return el;
}

/** Put `marks` on the canvas's edges (classes, badge, tooltip lines) and show the legend while any is up. */
export function applyMarks(cy, marks) {
  cy.batch(() => {
    cy.edges().forEach((e) => {
      const m = marks[e.data("index")];
      const ospf = !!(m && m.ospf.length);
      const bgp = !!(m && m.bgp.length);
      e.toggleClass("adj", ospf || bgp).toggleClass("adj-ospf", ospf).toggleClass("adj-bgp", bgp);
      const badge = [ospf ? "OSPF" : "", bgp ? "BGP" : ""].filter(Boolean).join(" · ");
      const label = [badge, e.data("label")].filter(Boolean).join(" · ");
      if (e.data("adjLabel") !== label) e.data("adjLabel", label);
      const lines = m ? [...m.ospf, ...m.bgp] : null;
      if (JSON.stringify(e.data("adjacency") || null) !== JSON.stringify(lines)) e.data("adjacency", lines);
    });
  });
  const el = legend();
  const kinds = new Set(Object.values(marks).flatMap((m) => [m.ospf.length ? "ospf" : null, m.bgp.length ? "bgp" : null]));
  for (const item of el.children) item.hidden = !kinds.has(item.dataset.kind);
  el.hidden = !kinds.has("ospf") && !kinds.has("bgp");
}

function wireTooltip(cy) {
  const tooltip = $("tooltip");
  cy.on("mouseover", "edge", (e) => {
    const lines = e.target.data("adjacency");
    if (!lines || e.target.data("problems")) return; // problems come first (wiring.js)
    tooltip.replaceChildren(...lines.map((m) => Object.assign(document.createElement("div"), { textContent: m })));
    const p = e.renderedPosition || e.target.renderedPosition();
    tooltip.style.left = `${p.x + 16}px`;
    tooltip.style.top = `${p.y + 16}px`;
    tooltip.hidden = false;
  });
}

function hasRouting(doc) {
  return Object.values((doc && doc.nodes) || {}).some((n) => n && n.routing);
}

/** watchAdjacencies(cy) -> onEvent(event): follows the lab's events (snapshot, run.finished, node.state, ...). */
export function watchAdjacencies(cy) {
  const href = new URL("../../css/routing.css", import.meta.url).href;
  if (!document.querySelector(`link[href="${href}"]`)) {
    document.head.append(Object.assign(document.createElement("link"), { rel: "stylesheet", href }));
  }
  styleMarks(cy);
  wireTooltip(cy);
  let marks = {};
  let timer = null;
  let generation = 0;
  let running = false;
  // link labels and indices change with edits: the marks follow the canvas
  cy.on("add", "edge", () => applyMarks(cy, marks));
  cy.on("data", "edge", (e) => {
    const m = marks[e.target.data("index")];
    const badge = m ? [m.ospf.length ? "OSPF" : "", m.bgp.length ? "BGP" : ""].filter(Boolean).join(" · ") : "";
    const label = [badge, e.target.data("label")].filter(Boolean).join(" · ");
    if (e.target.data("adjLabel") !== label) e.target.data("adjLabel", label);
  });

  async function attempt(gen, tries) {
    if (!running || !hasRouting(state.doc)) return;
    if (document.visibilityState !== "hidden") {
      let status = null;
      try {
        status = await request("GET", `/api/labs/${labPk}/status`);
      } catch {
        status = null; // the agent is busy, or too many asks: keep the marks, ask again later
      }
      if (gen !== generation) return;
      if (status) {
        marks = adjacencyMarks(state.doc, status);
        applyMarks(cy, marks);
      }
    }
    timer = setTimeout(() => attempt(gen, tries + 1), tries < FIRST.length ? FIRST[tries] : POLL_MS);
  }

  function refresh() { clearTimeout(timer); generation += 1; running = true; attempt(generation, 0); }
  function clear() {
    clearTimeout(timer);
    generation += 1;
    running = false;
    marks = {};
    applyMarks(cy, marks);
  }
  return (event) => {
    if (event.type === "snapshot") { if (event.deployed && !event.run) refresh(); else if (!event.deployed) clear(); }
    else if (event.type === "run.finished" && event.kind === "deploy") refresh();
    else if (event.type === "run.started" && event.kind === "destroy") clear();
    else if (event.type === "node.state" && running && !event.run) refresh(); // the health check saw a change
  };
}
