// Addresses a running lab has that its document does not say: what DHCP clients leased. Read from the lab's
// status (GET /api/labs/<pk>/status: each host's and VM's interface lists its addresses, a VM's from its
// router's lease), shown on the node's label and in its panel.
import { request } from "./api.js";
import { labPk, state } from "./context.js";
import { splitEndpoint } from "./model.js";

const RETRIES = [1000, 2000, 4000, 8000, 15000, 30000]; // a VM boots and leases after its deploy finished

function dhcpInterfaces(doc) {
  const out = [];
  for (const [name, node] of Object.entries(doc.nodes || {})) {
    for (const [iface, cfg] of Object.entries((node && node.interfaces) || {})) {
      if (cfg && cfg.address === "dhcp") out.push([name, iface, node]);
    }
  }
  return out;
}

function linked(doc, name, iface) {
  return doc.links.some((l) => (l.endpoints || []).some((e) => {
    const [n, f] = splitEndpoint(e);
    return n === name && f === iface;
  }));
}

/** {node: {iface: address}} for the document's DHCP interfaces that have an address in `status`. */
export function leasedAddresses(doc, status) {
  const nodes = (status && status.nodes) || {};
  const out = {};
  for (const [name, iface] of dhcpInterfaces(doc)) {
    if (!linked(doc, name, iface)) continue;
    const seen = ((nodes[name] || {}).interfaces || {})[iface] || {};
    const address = (seen.addresses || []).find((a) => /^\d+\.\d+\.\d+\.\d+/.test(a));
    if (address) (out[name] || (out[name] = {}))[iface] = address;
  }
  return out;
}

/** watchLeases(onChange) -> {refresh(), clear()}: refresh() reads the status until every DHCP interface has one. */
export function watchLeases(onChange) {
  let timer = null;
  let generation = 0;

  const wanted = () => dhcpInterfaces(state.doc).filter(([n, i]) => linked(state.doc, n, i)).length;

  async function attempt(gen, tries) {
    if (!wanted()) return; // nothing to lease: no need to ask the agent
    let status;
    try {
      status = await request("GET", `/api/labs/${labPk}/status`);
    } catch {
      status = null; // the agent is busy or away: try again later
    }
    if (gen !== generation) return;
    if (status) {
      state.observed = leasedAddresses(state.doc, status);
      onChange();
    }
    const have = Object.values(state.observed).reduce((sum, m) => sum + Object.keys(m).length, 0);
    if (have < wanted() && tries < RETRIES.length) timer = setTimeout(() => attempt(gen, tries + 1), RETRIES[tries]);
  }

  return {
    refresh() { clearTimeout(timer); generation += 1; attempt(generation, 0); },
    clear() {
      clearTimeout(timer);
      generation += 1;
      state.observed = {};
      onChange();
    },
  };
}
