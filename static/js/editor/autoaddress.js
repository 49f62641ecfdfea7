// "Address the lab" and "OSPF everywhere": ordinary edits of the document (so undo works), never overwriting an
// address, loopback or OSPF area the user gave. Pure functions of the document; the lab panel offers them.
//   addressLab(doc, pools): a /31 on each point-to-point link, a /24 per bridge segment, a /32 loopback per router
//   ospfEverywhere(doc): area 0 on every router interface with an address (lo passive), where OSPF has none
export const DEFAULT_POOLS = { p2p: "10.0.0.0/16", lan: "10.1.0.0/16", loopback: "10.255.0.0/16" };

// `kinds`: the registry (kinds.js KINDS): what a kind can do, never its name
const has = (kinds, kind, what) => Boolean(kinds[kind] && kinds[kind][what]);
const routes = (kinds, kind) => Boolean(kinds[kind] && (kinds[kind].keys || []).includes("routing"));

function ipToInt(ip) {
  return ip.split(".").reduce((n, part) => n * 256 + Number(part), 0);
}

function intToIp(n) {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
}

function parsePool(cidr) {
  const [ip, len] = cidr.split("/");
  const size = 2 ** (32 - Number(len));
  const base = ipToInt(ip) - (ipToInt(ip) % size);
  return { base, end: base + size };
}

/** Every IPv4 address the document uses (interfaces, loopbacks), as integers. */
function usedAddresses(doc) {
  const used = new Set();
  const add = (a) => { if (typeof a === "string" && /^\d+\.\d+\.\d+\.\d+\//.test(a)) used.add(ipToInt(a.split("/")[0])); };
  for (const node of Object.values(doc.nodes || {})) {
    for (const iface of Object.values(node.interfaces || {})) {
      const a = iface && iface.address;
      (Array.isArray(a) ? a : [a]).forEach(add);
    }
    const lb = node.routing && node.routing.loopback;
    (Array.isArray(lb) ? lb : [lb]).forEach(add);
  }
  return used;
}

/** The next free block of `size` addresses in `pool` none of whose addresses is used. */
function* blocks(pool, size, used) {
  const { base, end } = parsePool(pool);
  for (let start = base; start + size <= end; start += size) {
    let free = true;
    for (let a = start; a < start + size && free; a += 1) if (used.has(a)) free = false;
    if (free) yield start;
  }
}

function endpoint(text) {
  const i = text.indexOf(":");
  return i < 0 ? [text, null] : [text.slice(0, i), text.slice(i + 1)];
}

function unaddressed(doc, kinds, node, iface) {
  const n = doc.nodes[node];
  if (!n || !has(kinds, n.kind, "interfaces") || !iface) return false;
  const cfg = (n.interfaces || {})[iface];
  return !cfg || cfg.address === undefined || cfg.address === null || cfg.address === "";
}

function setAddress(doc, node, iface, address) {
  const n = doc.nodes[node];
  if (!n.interfaces || typeof n.interfaces !== "object") n.interfaces = {};
  n.interfaces[iface] = { ...(n.interfaces[iface] || {}), address };
}

/** Fill every interface without an address; returns how many addresses were given. */
export function addressLab(doc, kinds, pools = DEFAULT_POOLS) {
  const used = usedAddresses(doc);
  let given = 0;
  const p2p = blocks(pools.p2p, 2, used);
  const segments = new Map(); // bridge -> [node, iface] ends
  for (const link of doc.links || []) {
    const [a, b] = (link.endpoints || []).map(endpoint);
    if (!a || !b) continue;
    const [an, ai] = a;
    const [bn, bi] = b;
    if (ai && bi) {
      if (unaddressed(doc, kinds, an, ai) && unaddressed(doc, kinds, bn, bi)) {
        const block = p2p.next();
        if (block.done) continue;
        setAddress(doc, an, ai, `${intToIp(block.value)}/31`);
        setAddress(doc, bn, bi, `${intToIp(block.value + 1)}/31`);
        used.add(block.value).add(block.value + 1);
        given += 2;
      }
    } else {
      const [bridge, end] = ai ? [bn, a] : [an, b];
      const segment = (doc.nodes[bridge] || {}).kind;
      if (!kinds[segment] || kinds[segment].link_end !== "segment" || kinds[segment].uplink || !end[1]) continue;
      if (!segments.has(bridge)) segments.set(bridge, []);
      segments.get(bridge).push(end);
    }
  }
  const lans = blocks(pools.lan, 256, used);
  for (const ends of segments.values()) {
    const todo = ends.filter(([n, i]) => unaddressed(doc, kinds, n, i));
    if (!todo.length) continue;
    const block = lans.next();
    if (block.done) break;
    // routers take the top of the /24 (.254 down), the others the bottom (.1 up), as people usually do
    let low = block.value + 1;
    let high = block.value + 254;
    for (const [n, i] of todo) {
      const ip = has(kinds, doc.nodes[n].kind, "forwarding") ? high-- : low++;
      setAddress(doc, n, i, `${intToIp(ip)}/24`);
      used.add(ip);
      given += 1;
    }
  }
  const loopbacks = blocks(pools.loopback, 1, used);
  for (const node of Object.values(doc.nodes || {})) {
    if (!routes(kinds, node.kind) || (node.routing && node.routing.loopback)) continue;
    const block = loopbacks.next();
    if (block.done) break;
    node.routing = { loopback: `${intToIp(block.value)}/32`, ...(node.routing || {}) };
    used.add(block.value);
    given += 1;
  }
  return given;
}

/** OSPF area 0 on every router interface with an address that no area has yet (lo passive). */
export function ospfEverywhere(doc, kinds) {
  let added = 0;
  for (const node of Object.values(doc.nodes || {})) {
    if (!routes(kinds, node.kind)) continue;
    const routing = node.routing && typeof node.routing === "object" ? node.routing : (node.routing = {});
    const ospf = routing.ospf && typeof routing.ospf === "object" ? routing.ospf : {};
    const areas = ospf.areas && typeof ospf.areas === "object" ? ospf.areas : {};
    const inArea = new Set(Object.values(areas).flatMap((a) => [...(a.interfaces || []), ...(a.passive || [])]));
    const zero = Object.keys(areas).find((k) => k === "0" || k === "0.0.0.0") || "0";
    const area = areas[zero] || {};
    for (const [iface, cfg] of Object.entries(node.interfaces || {})) {
      if (!cfg || !cfg.address || inArea.has(iface)) continue;
      (area.interfaces || (area.interfaces = [])).push(iface);
      added += 1;
    }
    if (routing.loopback && !inArea.has("lo")) {
      (area.passive || (area.passive = [])).push("lo");
      added += 1;
    }
    if (Object.keys(area).length) {
      areas[zero] = area;
      routing.ospf = { ...ospf, areas };
    }
    if (!Object.keys(routing).length) delete node.routing;
  }
  return added;
}
