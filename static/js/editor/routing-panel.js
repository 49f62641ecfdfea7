// The routing section of a router's properties panel: loopback, OSPF (area, passive, cost per interface, timers)
// and BGP (ASN, neighbors, networks), edited into the document's `routing:` (docs/topology.md). The server
// validates; problems show under the field whose data-path they name (Panel.setProblems).
// Above it, while the lab runs, what the router's FRR says: OSPF neighbors, BGP sessions and the routing table
// (GET /api/labs/<pk>/nodes/<node>/routing/, asked again with Refresh); answers are kept per router, so redrawing
// the panel after an edit does not ask FRR again.
import { request } from "./api.js";
import { labPk, state } from "./context.js";
import { interfacesOf } from "./model.js";
import { h } from "./dom.js";

const live = new Map(); // router -> {data, error, at, loading}
const STALE_MS = 60_000; // a panel opened later than this after the last answer asks again by itself
const RETRY_MS = 3000; // while neighbors are still forming, at most RETRIES times
const RETRIES = 10;

function loadCss() {
  const href = new URL("../../css/routing.css", import.meta.url).href;
  if (!document.querySelector(`link[href="${href}"]`)) document.head.append(h("link", { rel: "stylesheet", href }));
}

/** True when the running lab has `name` as a router with routing: (what the endpoint answers for). */
function runsFrr(name) {
  const deploy = state.deploy && state.deploy.state;
  const node = deploy && deploy.deployed && deploy.deployedDoc && deploy.deployedDoc.nodes
    ? deploy.deployedDoc.nodes[name] : null;
  return !!(node && node.routing);
}

const UP = /^(Full|Established)/;
const PROTO = { connected: "C", kernel: "K", static: "S", ospf: "O", ospf6: "O", bgp: "B", rip: "R", isis: "I" };

function badge(text) {
  return h("span", { class: `nbr-state ${UP.test(text || "") ? "up" : "down"}`, text: text || "?" });
}

function table(role, head, rows) {
  return h("div", { class: "live-scroll" }, h("table", { class: "live-table", "data-role": role },
    h("thead", {}, h("tr", {}, head.map((t) => h("th", { text: t })))),
    h("tbody", {}, rows)));
}

function nexthopText(hops) {
  return hops.map((n) => (n.via ? `${n.via}${n.interface ? ` (${n.interface})` : ""}`
    : `${n.interface || "?"}${n.connected ? " direct" : ""}`)).join("\n") || "—"; // one next hop a line
}

function liveBody(name, entry) {
  const out = [];
  if (!entry || (entry.loading && !entry.data)) {
    out.push(h("p", { class: "hint", text: `Asking ${name}'s FRR…` }));
    return out;
  }
  if (entry.error) out.push(h("p", { class: "field-error live-error", role: "alert", "data-role": "routing-live-error", text: entry.error }));
  const d = entry.data;
  if (!d) return out;
  const when = new Date(entry.at).toLocaleTimeString();
  out.push(h("p", { class: "hint", "data-role": "routing-live-when",
    text: `As of ${when}: ${d.routes_total} route${d.routes_total === 1 ? "" : "s"}` +
      `${entry.loading ? " (asking again…)" : ""}` }));
  for (const note of d.notes || []) out.push(h("p", { class: "live-note", "data-role": "routing-live-note", text: note }));
  const ospf = [...(d.ospf || []), ...(d.ospf6 || [])];
  if (ospf.length || d.daemons.ospfd || d.daemons.ospf6d) {
    out.push(h("h4", { text: "OSPF neighbors" }));
    out.push(ospf.length ? table("ospf-neighbors", ["Router ID", "State", "Interface"],
      ospf.map((n) => h("tr", { "data-neighbor": n.id || "",
        title: `address ${n.address || "?"}${n.role ? `, ${n.role}` : ""}${n.up ? `, up ${n.up}` : ""}${n.dead ? `, dead in ${n.dead}` : ""}` },
      h("td", { class: "mono", text: n.id || "?" }), h("td", {}, badge(n.state)),
      h("td", { class: "mono", text: n.interface ? `${n.interface}${n.address ? ` → ${n.address}` : ""}` : "—" }))))
      : h("p", { class: "muted", text: "No neighbor yet" }));
  }
  if ((d.bgp || []).length || d.daemons.bgpd) {
    out.push(h("h4", { text: "BGP sessions" }));
    out.push(d.bgp.length ? table("bgp-sessions", ["Peer", "AS", "State", "Rcvd"],
      d.bgp.map((s) => h("tr", { "data-peer": s.peer,
        title: `${s.af}${s.interface ? ` on ${s.interface}` : ""}${s.up ? `, up ${s.up}` : ""}, ${s.sent ?? "?"} prefixes sent` },
      h("td", { class: "mono", text: s.peer }), h("td", { text: s.asn ?? "?" }), h("td", {}, badge(s.state)),
      h("td", { text: s.received ?? "—" }))))
      : h("p", { class: "muted", text: "No session configured" }));
  }
  out.push(h("h4", { text: `Routing table${d.truncated ? ` (${d.routes.length} of ${d.routes_total})` : ""}` }));
  out.push(d.routes.length ? table("routes", ["", "Prefix", "Via", "AD/Metric"],
    d.routes.map((r) => h("tr", { class: r.selected ? "selected" : "muted", "data-prefix": r.prefix, "data-protocol": r.protocol || "",
      title: `${r.protocol || "?"}${r.selected ? ", selected" : ""}${r.installed ? ", in the kernel" : ""}${r.uptime ? `, for ${r.uptime}` : ""}` },
    h("td", { class: "mono code", text: `${PROTO[r.protocol] || "?"}${r.selected ? ">" : " "}${r.installed ? "*" : " "}` }),
    h("td", { class: "mono", text: r.prefix }), h("td", { class: "mono via", text: nexthopText(r.nexthops) }),
    h("td", { class: "num", text: `${r.distance ?? "—"}/${r.metric ?? "—"}` }))))
    : h("p", { class: "muted", text: "No route" }));
  return out;
}

function redrawLive(panel, name) {
  const box = panel.root.querySelector(`[data-role=routing-live][data-node="${CSS.escape(name)}"] .live-body`);
  if (box) box.replaceChildren(...liveBody(name, live.get(name)));
}

/** Ask the router's FRR (through the agent) and show the answer in the panel, if it still shows this router. */
export async function refreshLive(panel, name) {
  const entry = live.get(name) || {};
  if (entry.loading) return;
  entry.loading = true;
  live.set(name, entry);
  redrawLive(panel, name);
  try {
    entry.data = await request("GET", `/api/labs/${labPk}/nodes/${encodeURIComponent(name)}/routing/`);
    entry.error = null;
  } catch (err) {
    entry.error = err.status === 429 ? "Asked too often: wait a moment, then Refresh" : err.message;
  }
  entry.at = Date.now();
  entry.loading = false;
  redrawLive(panel, name);
  // just deployed: ask again by itself, a few times, while neighbors are still coming up and the panel shows it
  const d = entry.data;
  const forming = d && !entry.error && ((d.daemons.ospfd && !(d.ospf || []).length)
    || [...(d.ospf || []), ...(d.ospf6 || []), ...(d.bgp || [])].some((n) => !UP.test(n.state || "")));
  entry.retries = forming ? (entry.retries || 0) + 1 : 0;
  if (forming && entry.retries <= RETRIES) {
    setTimeout(() => { if (panel.root.querySelector(`[data-role=routing-live][data-node="${CSS.escape(name)}"]`)) refreshLive(panel, name); }, RETRY_MS);
  }
}

/** The running router's section: neighbors and routes with a Refresh button, or a line saying when they show. */
function renderLive(panel, form, name) {
  loadCss();
  // after the name and description, before the interfaces: what a running router's panel is opened for
  const place = (el) => form.insertBefore(el, form.querySelector(":scope > [data-path$='.interfaces']"));
  if (!runsFrr(name)) {
    live.delete(name); // a destroy or a redeploy without routing: forget the last answer
    place(h("p", { class: "hint live-hint", "data-role": "routing-live-hint",
      text: "Deploy the lab to see this router's routes and OSPF/BGP neighbors here" }));
    return;
  }
  const refresh = h("button", { class: "btn btn-small", type: "button", "data-role": "routing-refresh",
    "data-readonly-ok": "true", title: `Ask ${name}'s FRR again`, text: "\u21bb Refresh",
    onclick: () => refreshLive(panel, name) });
  place(h("section", { class: "group routing-live", "data-role": "routing-live", "data-node": name },
    h("div", { class: "live-head" }, h("h3", { text: "Running routing" }), refresh),
    h("div", { class: "live-body" }, liveBody(name, live.get(name)))));
  const entry = live.get(name);
  if (!entry || (!entry.loading && Date.now() - entry.at > STALE_MS)) refreshLive(panel, name);
}

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
  renderLive(panel, form, name);
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
