// Operations on the topology document (DESIGN.md): the only node/link editing rules there are. The server keeps none;
// it takes whole documents (autosave) and checks them with netops. Held to tests/shared/document_operations.json
// (tests/webapp/test_document_operations.py). The document is a plain object; every function here mutates it.

import { KINDS, NODE_NAME_RE } from "./kinds.js";

export { KINDS, NODE_NAME_RE };
export const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

export const clone = (doc) => JSON.parse(JSON.stringify(doc));

export function normalise(doc) {
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) doc = {};
  if (!doc.nodes || typeof doc.nodes !== "object" || Array.isArray(doc.nodes)) doc.nodes = {};
  if (!Array.isArray(doc.links)) doc.links = [];
  if (doc.version === undefined) doc.version = 1;
  return doc;
}

export const hasInterfaces = (node) => Boolean(node && KINDS[node.kind] && KINDS[node.kind].interfaces);

export function nextName(doc, kind) {
  const prefix = (KINDS[kind] || { prefix: "n" }).prefix;
  let n = 1;
  while (doc.nodes[`${prefix}${n}`]) n += 1;
  return `${prefix}${n}`;
}

export function addNode(doc, kind, position) {
  const name = nextName(doc, kind);
  const node = { kind };
  if (position) node.ui = { x: Math.round(position.x), y: Math.round(position.y) };
  doc.nodes[name] = node;
  return name;
}

export function splitEndpoint(endpoint) {
  const text = String(endpoint);
  const i = text.indexOf(":");
  return i < 0 ? [text, null] : [text.slice(0, i), text.slice(i + 1)];
}

/** Why `name` cannot be the new name of node `old`, or null when it can. */
export function renameProblem(doc, old, name) {
  if (name === old) return null;
  if (!NODE_NAME_RE.test(name)) return "a letter, then up to 31 letters, digits, - or _";
  if (doc.nodes[name]) return `a node named ${name} already exists`;
  return null;
}

export function renameNode(doc, old, name) {
  const problem = renameProblem(doc, old, name);
  if (problem) throw new Error(problem);
  if (name === old) return;
  const nodes = {};
  for (const [key, value] of Object.entries(doc.nodes)) nodes[key === old ? name : key] = value;
  doc.nodes = nodes;
  for (const link of doc.links) {
    if (!link || !Array.isArray(link.endpoints)) continue;
    link.endpoints = link.endpoints.map((e) => {
      const [n, iface] = splitEndpoint(e);
      return n === old ? (iface === null ? name : `${name}:${iface}`) : e;
    });
  }
  // checks name nodes (netops.labchecks): they follow the rename, as webapp/labs/operations.py does
  for (const check of Array.isArray(doc.checks) ? doc.checks : []) {
    for (const body of check && typeof check === "object" ? Object.values(check) : []) {
      if (!body || typeof body !== "object" || Array.isArray(body)) continue;
      for (const key of ["from", "to", "node", "server", "peer", "neighbor"]) {
        if (typeof body[key] !== "string") continue;
        const [n, iface] = splitEndpoint(body[key]);
        if (n === old) body[key] = iface === null ? name : `${name}:${iface}`;
      }
    }
  }
}

export function linkNodes(link) {
  return link && Array.isArray(link.endpoints) ? link.endpoints.map((e) => splitEndpoint(e)[0]) : [];
}

export function deleteNode(doc, name) {
  delete doc.nodes[name];
  doc.links = doc.links.filter((link) => !linkNodes(link).includes(name));
}

export function usedInterfaces(doc, name) {
  const used = new Set();
  for (const link of doc.links) {
    for (const e of (link && link.endpoints) || []) {
      const [n, iface] = splitEndpoint(e);
      if (n === name && iface !== null) used.add(iface);
    }
  }
  return used;
}

export function nextInterface(doc, name) {
  const used = usedInterfaces(doc, name);
  let n = 0;
  while (used.has(`eth${n}`)) n += 1;
  return `eth${n}`;
}

function endpointFor(doc, name) {
  const node = doc.nodes[name];
  if (!hasInterfaces(node)) return name;
  const iface = nextInterface(doc, name);
  if (!node.interfaces || typeof node.interfaces !== "object") node.interfaces = {};
  if (!node.interfaces[iface]) node.interfaces[iface] = {};
  return `${name}:${iface}`;
}

export function addLink(doc, a, b) {
  if (a === b || !doc.nodes[a] || !doc.nodes[b]) return -1;
  const link = { endpoints: [endpointFor(doc, a), endpointFor(doc, b)] };
  doc.links.push(link);
  return doc.links.length - 1;
}

/** Delete links by index; an interface left declared but empty ({}) goes with its link. */
export function deleteLinks(doc, indexes) {
  const drop = new Set(indexes);
  const removed = doc.links.filter((_, i) => drop.has(i));
  doc.links = doc.links.filter((_, i) => !drop.has(i));
  for (const link of removed) {
    for (const e of (link && link.endpoints) || []) {
      const [n, iface] = splitEndpoint(e);
      const node = doc.nodes[n];
      if (iface === null || !node || !node.interfaces) continue;
      const cfg = node.interfaces[iface];
      if (cfg && Object.keys(cfg).length === 0 && !usedInterfaces(doc, n).has(iface)) delete node.interfaces[iface];
    }
  }
}

/** Why `iface` cannot be a new interface name, or null. */
export function interfaceNameProblem(iface) {
  return IFNAME_RE.test(iface) ? null : "1-15 letters, digits, '_', '.' or '-'";
}

/**
 * Rename interface `old` of node `name` to `iface`, with its settings, its link end and its NAT entry. When the node
 * already has `iface`, the two swap names (settings, links and NAT follow each name): eth0 <-> eth1 in one step.
 */
export function renameNodeInterface(doc, name, old, iface) {
  if (old === iface) return;
  const problem = interfaceNameProblem(iface);
  if (problem) throw new Error(problem);
  const swap = interfacesOf(doc, name).includes(iface);
  const rename = (n) => (n === old ? iface : swap && n === iface ? old : n);
  const node = doc.nodes[name];
  if (node && node.interfaces && typeof node.interfaces === "object") {
    const interfaces = {};
    for (const [key, value] of Object.entries(node.interfaces)) interfaces[rename(key)] = value;
    if (!(iface in interfaces)) interfaces[iface] = {};
    node.interfaces = interfaces;
    if (node.nat && Array.isArray(node.nat.masquerade)) node.nat.masquerade = node.nat.masquerade.map(rename);
  }
  for (const link of doc.links) {
    if (!link || !Array.isArray(link.endpoints)) continue;
    link.endpoints = link.endpoints.map((e) => {
      const [n, f] = splitEndpoint(e);
      return n === name && f !== null ? `${n}:${rename(f)}` : e;
    });
  }
}

/** Rename the interface at one end of a link (a name the node has already swaps with it). */
export function renameInterface(doc, index, end, iface) {
  const [name, old] = splitEndpoint(doc.links[index].endpoints[end]);
  renameNodeInterface(doc, name, old, iface);
}

/** Interface names of a node: declared ones and those links use, in a stable order. */
export function interfacesOf(doc, name) {
  const node = doc.nodes[name] || {};
  const names = new Set(Object.keys((node.interfaces && typeof node.interfaces === "object") ? node.interfaces : {}));
  for (const iface of usedInterfaces(doc, name)) names.add(iface);
  return [...names].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
}

/** The peer of node:iface ("br1", "r1:eth0"), or null. */
export function peerOf(doc, name, iface) {
  for (const link of doc.links) {
    const ends = (link && link.endpoints) || [];
    for (let i = 0; i < 2; i += 1) {
      const [n, f] = splitEndpoint(ends[i]);
      if (n === name && f === iface) return ends[1 - i] ?? null;
    }
  }
  return null;
}

/** Which canvas element a problem path concerns: {node} or {link} or null (the whole lab). */
export function problemTarget(path) {
  const parts = String(path || "").split(".");
  if (parts[0] === "nodes" && parts[1]) return { node: parts[1] };
  if (parts[0] === "links" && /^\d+$/.test(parts[1] || "")) return { link: Number(parts[1]) };
  return null;
}

/**
 * The address a node's label shows: a router's LAN gateway (the interface serving DHCP, else the one facing a
 * bridge with hosts or VMs on it) rather than its uplink; otherwise the first interface's. `observed` gives a DHCP
 * client's leased address ({iface: address}), shown instead of "dhcp".
 */
export function labelAddress(doc, name, observed = {}) {
  const node = doc.nodes[name];
  if (!node || !node.interfaces || typeof node.interfaces !== "object") return "";
  const shown = (iface) => {
    const a = (node.interfaces[iface] || {}).address;
    if (a === "dhcp" && observed[iface]) return observed[iface];
    return typeof a === "string" ? a : Array.isArray(a) && a.length ? String(a[0]) : "";
  };
  if (KINDS[node.kind] && KINDS[node.kind].serves_dhcp) { // a router: the address of the LAN it serves
    const names = Object.keys(node.interfaces).filter((i) => shown(i));
    const lan = names.find((i) => node.interfaces[i].dhcp_server)
      || names.find((i) => facesEndHosts(doc, name, i));
    if (lan) return shown(lan);
  }
  for (const iface of Object.keys(node.interfaces)) if (shown(iface)) return shown(iface);
  return "";
}

/** Whether node:iface is wired to a bridge that hosts or VMs are wired to too. */
function facesEndHosts(doc, name, iface) {
  const bridge = peerOf(doc, name, iface);
  const segment = KINDS[(doc.nodes[bridge] || {}).kind];
  if (!bridge || !segment || segment.link_end !== "segment" || segment.uplink) return false; // a lab switch
  return doc.links.some((l) => {
    const ends = (l && l.endpoints) || [];
    const other = ends[0] === bridge ? ends[1] : ends[1] === bridge ? ends[0] : null;
    const kind = KINDS[(doc.nodes[splitEndpoint(other ?? "")[0]] || {}).kind];
    return other !== null && Boolean(kind && kind.interfaces && !kind.forwarding); // an end host (host, VM)
  });
}
