// The routing section of a router's properties panel: loopback, OSPF (area, passive, cost per interface, timers)
// and BGP (ASN, neighbors, networks), edited into the document's `routing:` (docs/topology.md). The server
// validates; problems show under the field whose data-path they name (Panel.setProblems).
import { interfacesOf } from "./model.js";
import { h } from "./dom.js";

function routingOf(d, name) {
  const n = d.nodes[name];
  if (!n.routing || typeof n.routing !== "object" || Array.isArray(n.routing)) n.routing = {};
  return n.routing;
}

/** Drop empty parts, and routing: itself when nothing is left. */
function tidy(d, name) {
  const r = d.nodes[name].routing;
  if (!r) return;
  for (const key of Object.keys(r)) {
    const v = r[key];
    if (v === undefined || v === null || v === "" || (typeof v === "object" && !Array.isArray(v) && !Object.keys(v).length)) delete r[key];
  }
  if (!Object.keys(r).length) delete d.nodes[name].routing;
}

/** iface -> {area, passive} as the document says. */
function ospfRows(ospf) {
  const rows = {};
  const areas = (ospf && typeof ospf.areas === "object" && ospf.areas) || {};
  for (const [area, body] of Object.entries(areas)) {
    for (const i of (body && body.interfaces) || []) rows[i] = { area, passive: false };
    for (const i of (body && body.passive) || []) rows[i] = { area, passive: true };
  }
  return rows;
}

function neighborsToText(neighbors) {
  return Array.isArray(neighbors)
    ? neighbors.map((n) => `${n.address ?? n.interface ?? "?"} ${n.asn ?? "?"}`).join("\n") : "";
}

const IFNAME = /^[A-Za-z][A-Za-z0-9_.-]*$/;

function textToNeighbors(text) {
  const out = [];
  for (const line of text.split("\n")) {
    const [peer, asn] = line.trim().split(/\s+/);
    if (!peer) continue;
    const n = IFNAME.test(peer) && !/^\d/.test(peer) && !peer.includes(":") ? { interface: peer } : { address: peer };
    n.asn = asn === undefined ? null : (/^\d+$/.test(asn) ? Number(asn) : asn);
    out.push(n);
  }
  return out;
}

function lines(text) {
  return text.split(/[\n,]+/).map((s) => s.trim()).filter(Boolean);
}

function field(label, input, path, hint) {
  return h("div", { class: "field", "data-path": path }, h("label", { text: label }), input,
    hint ? h("div", { class: "hint", text: hint }) : null, h("div", { class: "field-error", role: "alert" }));
}

/** Append the routing section for router `name` to `form`; `panel.commit(mutator, input)` applies an edit. */
export function renderRouting(panel, form, doc, node, name, base) {
  const routing = (node.routing && typeof node.routing === "object") ? node.routing : {};
  const path = `${base}.routing`;
  const section = h("section", { class: "group routing", "data-path": path, "data-role": "routing" },
    h("h3", { text: "Routing (FRR)" }),
    h("p", { class: "hint", text: "OSPF and BGP run in FRR inside the router; open “FRR (vtysh)” to look inside" }),
    h("div", { class: "field-error", role: "alert" }));

  const loopback = h("input", { type: "text", value: typeof routing.loopback === "string" ? routing.loopback : "",
    placeholder: "e.g. 10.255.0.1/32", spellcheck: "false", "data-role": "loopback" });
  loopback.addEventListener("change", () => {
    const ok = panel.commit((d) => {
      const r = routingOf(d, name);
      if (loopback.value.trim()) r.loopback = loopback.value.trim(); else delete r.loopback;
      tidy(d, name);
    }, loopback);
    if (ok) panel.refresh(); // lo joins (or leaves) the OSPF rows
  });
  section.append(field("Loopback", loopback, `${path}.loopback`, "On lo; put lo in an OSPF area to announce it"));

  // ---- OSPF: one row per interface (and lo)
  const ospf = routing.ospf || {};
  const rows = ospfRows(ospf);
  const ifaces = interfacesOf(doc, name);
  if (routing.loopback || rows.lo) ifaces.push("lo");
  const table = h("div", { class: "ospf-rows", "data-path": `${path}.ospf.areas` },
    h("div", { class: "ospf-row muted" }, h("span", { text: "Interface" }), h("span", { text: "Area" }),
      h("span", { text: "Passive" }), h("span", { text: "Cost" })));
  const inputs = [];
  const commitOspf = (el) => panel.commit((d) => {
    const r = routingOf(d, name);
    const areas = {};
    const cost = {};
    for (const row of inputs) {
      const area = row.area.value.trim();
      if (!area) continue;
      const a = areas[area] || (areas[area] = {});
      const key = row.passive.checked ? "passive" : "interfaces";
      (a[key] || (a[key] = [])).push(row.iface);
      if (row.cost.value !== "") cost[row.iface] = Number(row.cost.value);
    }
    if (!Object.keys(areas).length) { delete r.ospf; tidy(d, name); return; }
    const o = { ...(r.ospf || {}), areas };
    if (Object.keys(cost).length) o.cost = cost; else delete o.cost;
    r.ospf = o;
  }, el);
  for (const iface of ifaces) {
    const current = rows[iface] || {};
    const area = h("input", { type: "text", value: current.area ?? "", placeholder: "—", size: 6,
      "data-role": "ospf-area", "data-iface": iface });
    const passive = h("input", { type: "checkbox", "data-role": "ospf-passive", "data-iface": iface });
    passive.checked = !!current.passive;
    const cost = h("input", { type: "number", min: 1, max: 65535, value: (ospf.cost && ospf.cost[iface]) ?? "",
      "data-role": "ospf-cost", "data-iface": iface });
    inputs.push({ iface, area, passive, cost });
    for (const el of [area, passive, cost]) el.addEventListener("change", () => commitOspf(el));
    table.append(h("div", { class: "ospf-row", "data-path": `${path}.ospf.cost.${iface}` },
      h("span", { class: "mono", text: iface }), area, passive, cost));
  }
  section.append(h("h4", { text: "OSPF" }), table, h("div", { class: "field-error", role: "alert" }));
  const timers = h("div", { class: "row two" });
  for (const [key, label, placeholder] of [["hello", "Hello (s)", "default 10"], ["dead", "Dead (s)", "default 40"]]) {
    const input = h("input", { type: "number", min: 1, max: 65535, value: ospf[key] ?? "", placeholder,
      "data-role": `ospf-${key}` });
    input.addEventListener("change", () => panel.commit((d) => {
      const r = routingOf(d, name);
      if (!r.ospf) return;
      if (input.value === "") delete r.ospf[key]; else r.ospf[key] = Number(input.value);
    }, input));
    timers.append(field(label, input, `${path}.ospf.${key}`));
  }
  section.append(timers);

  // ---- BGP
  const bgp = routing.bgp || {};
  const asn = h("input", { type: "number", min: 1, max: 4294967295, value: bgp.asn ?? "", placeholder: "e.g. 65001",
    "data-role": "bgp-asn" });
  const neighbors = h("textarea", { rows: 3, spellcheck: "false", placeholder: "e.g. 10.0.12.2 65002\neth1 external",
    "data-role": "bgp-neighbors" });
  neighbors.value = neighborsToText(bgp.neighbors);
  const networks = h("textarea", { rows: 2, spellcheck: "false", placeholder: "e.g. 10.1.1.0/24", "data-role": "bgp-networks" });
  networks.value = Array.isArray(bgp.networks) ? bgp.networks.join("\n") : "";
  const commitBgp = (el) => panel.commit((d) => {
    const r = routingOf(d, name);
    if (asn.value === "" && !neighbors.value.trim() && !networks.value.trim()) { delete r.bgp; tidy(d, name); return; }
    const b = { ...(r.bgp || {}) };
    if (asn.value === "") delete b.asn; else b.asn = Number(asn.value);
    const n = textToNeighbors(neighbors.value);
    if (n.length) b.neighbors = n; else delete b.neighbors;
    const nets = lines(networks.value);
    if (nets.length) b.networks = nets; else delete b.networks;
    r.bgp = b;
  }, el);
  for (const el of [asn, neighbors, networks]) el.addEventListener("change", () => commitBgp(el));
  section.append(h("h4", { text: "BGP" }), field("AS number", asn, `${path}.bgp.asn`),
    field("Neighbors", neighbors, `${path}.bgp.neighbors`, "One per line: address (or interface) and ASN"),
    field("Networks", networks, `${path}.bgp.networks`, "Announced prefixes, one per line"));
  form.append(section);
}
