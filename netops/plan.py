"""Plan: what to do to make the kernel match a topology. PURE: no I/O, unit-tested without root.

`plan(topology, lab, inventory)` compares the document with what `netops.observe` found (the `Inventory`) and
returns ordered, idempotent `Step`s: planning against a fully deployed lab yields no steps. Nodes whose definition
or links changed since the last deploy (signatures stored by the engine) are removed and built again; nodes gone
from the document are removed; everything else is completed where something is missing.

Order: removals, namespaces and bridges, links, interface configuration/addresses/routes/sysctls, link
conditions, nft, DHCP servers, DHCP clients, FRR (netops.frr), VMs.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field, replace
from typing import Any

from . import frr, naming
from .errors import ApplyError
from .model import NAMESPACE_KINDS, Endpoint, Interface, Link, LinkConditions, Node, Topology

# phases, in execution order
PHASES = ("remove", "namespace", "bridge", "link", "configure", "route", "sysctl", "linkcond", "relay", "nat",
          "dhcp-server", "dhcp-client", "frr", "vm")
#: link kinds whose delay/jitter a userspace relay (netops.delayd) can carry when the kernel has no sch_netem
RELAY_KINDS = ("ns-bridge", "ns-ns")


@dataclass
class Step:
    """One small, idempotent operation. `action` says what the engine does, `params` with what."""

    action: str
    path: str  # document element it concerns (`nodes.h1`, `links.2`, `nodes.r1.interfaces.eth0`)
    node: str | None
    description: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def phase(self) -> str:
        return self.action.split(".", 1)[0]


# ------------------------------------------------------------------------------------------------ inventory


@dataclass
class LinkState:
    name: str
    kind: str | None = None
    up: bool = True
    mac: str | None = None
    mtu: int = 1500
    alias: str | None = None
    master: str | None = None  # name of the bridge it is enslaved to
    addresses: list[str] = field(default_factory=list)  # cidr
    dynamic_addresses: list[str] = field(default_factory=list)  # cidr with a finite lifetime (DHCP)
    qdisc: str | None = None  # root qdisc kind (None = the default)


@dataclass
class NamespaceState:
    name: str
    links: dict[str, LinkState] = field(default_factory=dict)
    routes: set[tuple[str, str | None]] = field(default_factory=set)  # (dst cidr, gateway)
    forwarding: bool = False
    # interfaces whose nft loss chain (netops.linkcond) exists; None = not observed (the document has no loss)
    loss_ifaces: set[str] | None = None


@dataclass
class Inventory:
    """What exists for one lab, as observed (only objects carrying the lab's tag)."""

    lab: str
    namespaces: dict[str, NamespaceState] = field(default_factory=dict)  # tagged namespaces, by name
    root_links: dict[str, LinkState] = field(default_factory=dict)  # tagged root-namespace links, by name
    processes: dict[str, int] = field(default_factory=dict)  # live tagged processes: role -> pid
    vms_running: set[str] = field(default_factory=set)
    nat_applied: set[str] = field(default_factory=set)  # routers whose NAT table exists, externals whose chains do
    external_nat: set[str] = field(default_factory=set)  # externals with chains in the lab's root nft table
    host_forwarding: bool = False  # the lab holds the host's ip_forward (netops.destroy.host_forwarding_acquire)
    signatures: dict[str, str | None] = field(default_factory=dict)  # node -> signature at last deploy
    frr_applied: dict[str, str] = field(default_factory=dict)  # router -> frr.config_hash last applied

    def ns(self, name: str) -> NamespaceState | None:
        return self.namespaces.get(name)


# ------------------------------------------------------------------------------------------------ signatures


def _plain(value: Any) -> Any:
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Interface,
                          ipaddress.IPv6Interface, ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {k: _plain(getattr(value, k)) for k in value.__dataclass_fields__}
    return value


def node_signature(topology: Topology, name: str, own: list[Link] | None = None) -> str:
    """Hash of a node's definition and its links (canvas data left out): a change means rebuild the node.
    `own`: the node's links when the caller has them already."""
    node = replace(topology.nodes[name], ui=None, description=None)
    own = topology.links_of(name) if own is None else own
    if node.kind in ("bridge", "external"):
        # a bridge's ports belong to the nodes plugged into it; only bridge-to-bridge links are its own
        own = [lk for lk in own if all(topology.nodes[ep.node].kind in ("bridge", "external") for ep in (lk.a, lk.b))]
    links = sorted(json.dumps(_plain(replace(lk, ui=None, index=0)), sort_keys=True) for lk in own)
    plain = _plain(node)
    if not node.multicast_snooping:  # added later: left out at its default, so labs deployed before keep their hash
        del plain["multicast_snooping"]
    # a changed routing: is reloaded into FRR (netops.frr), not rebuilt; only its need of IPv6 shapes the namespace
    if plain.pop("routing", None) is not None and node.routing.needs_ipv6:
        plain["routing_ipv6"] = True
    text = json.dumps({"node": plain, "links": links}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def signatures(topology: Topology) -> dict[str, str]:
    links_of: dict[str, list[Link]] = {name: [] for name in topology.nodes}
    for lk in topology.links:  # one pass, not topology.links_of() per node (quadratic in a 500-host lab)
        links_of[lk.a.node].append(lk)
        if lk.b.node != lk.a.node:
            links_of[lk.b.node].append(lk)
    return {name: node_signature(topology, name, links_of[name]) for name in topology.nodes}


# ------------------------------------------------------------------------------------------------ helpers


def if_path(node: str, iface: str) -> str:
    return f"nodes.{node}.interfaces.{iface}"


def interface_mac(lab: str, node: Node, iface: str) -> str:
    """The MAC of a node's interface: the user's, else one derived from (lab, node, interface). Stable across
    rebuilds, so neighbours' ARP caches stay right when a node is recreated; distinct between labs."""
    given = node.interfaces[iface].mac if iface in node.interfaces else None
    if given:
        return given
    digest = hashlib.sha256(f"{lab}:{node.name}:{iface}".encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])  # locally administered, unicast


def link_key(link: Link) -> str:
    return f"{link.a}~{link.b}"


def _bridge_of(topology: Topology, name: str) -> str:
    """Fabric bridge a bare-name endpoint (bridge or external) stands for."""
    return naming.bridge_ifname(name)


@dataclass
class _Wiring:
    """How one link is realised in the kernel."""

    link: Link
    kind: str  # "ns-bridge" | "ns-ns" | "bridge-bridge" | "tap-bridge" | "tap-ns" | "tap-tap"
    fabric_names: list[str]  # fabric interfaces/bridges this link creates
    node_ends: list[tuple[str, str]]  # (node, iface) ends inside node namespaces
    relay: tuple[str, str] | None = None  # the two fabric interfaces netops.delayd joins, for a relayed link

    @property
    def relay_role(self) -> str:
        """Process role of the link's delay relay, named after its first namespace end (so rebuilding that node
        stops it, as for its other processes)."""
        node, iface = self.node_ends[0]
        return f"delayd:{node}:{iface}"


def needs_delay(link: Link) -> bool:
    return link.conditions.delay_ms is not None or link.conditions.jitter_ms is not None


def wiring(topology: Topology, link: Link, *, delay_relay: bool = False) -> _Wiring:
    """How `link` is realised. With `delay_relay` (the kernel has no sch_netem), a link with delay/jitter is not
    joined in the kernel: its sides end on two fabric interfaces that netops.delayd joins after the delay."""
    kinds = {ep.node: topology.nodes[ep.node].kind for ep in (link.a, link.b)}

    def cls(ep: Endpoint) -> str:
        k = kinds[ep.node]
        return "ns" if k in NAMESPACE_KINDS else ("tap" if k == "vm" else "bridge")

    a, b = link.a, link.b
    ca, cb = cls(a), cls(b)
    order = {"ns": 0, "tap": 1, "bridge": 2}
    if order[ca] > order[cb]:
        a, b, ca, cb = b, a, cb, ca
    ends = [(ep.node, ep.interface) for ep, c in ((a, ca), (b, cb)) if c == "ns" and ep.interface]
    fabric: list[str] = []
    if (ca, cb) == ("ns", "bridge"):
        fabric = [naming.fabric_ifname(a.node, a.interface or "")]
    elif (ca, cb) == ("bridge", "bridge"):
        fabric = [naming.fabric_ifname(a.node, ">" + b.node), naming.fabric_ifname(b.node, ">" + a.node)]
    elif (ca, cb) == ("tap", "bridge"):
        fabric = [naming.fabric_ifname(a.node, a.interface or "")]
    elif (ca, cb) == ("ns", "tap"):
        fabric = [naming.link_bridge_ifname(link_key(link)), naming.fabric_ifname(a.node, a.interface or ""),
                  naming.fabric_ifname(b.node, b.interface or "")]
    elif (ca, cb) == ("tap", "tap"):
        fabric = [naming.link_bridge_ifname(link_key(link)), naming.fabric_ifname(a.node, a.interface or ""),
                  naming.fabric_ifname(b.node, b.interface or "")]
    kind = f"{ca}-{cb}"
    relay = None
    if delay_relay and needs_delay(link) and kind in RELAY_KINDS:
        if kind == "ns-bridge":  # node end <-> fabric_if ~relay~ r1 <-> r2 (bridge port)
            r1 = naming.fabric_ifname(a.node, f"{a.interface}>relay")
            fabric = fabric + [r1, naming.fabric_ifname(a.node, f"{a.interface}>port")]
            relay = (fabric[0], r1)
        else:  # ns-ns: each node end <-> its own fabric end ~relay~ the other
            fabric = [naming.fabric_ifname(a.node, a.interface or ""), naming.fabric_ifname(b.node, b.interface or "")]
            relay = (fabric[0], fabric[1])
        kind += "+relay"
    return _Wiring(replace(link, a=a, b=b), kind, fabric, ends, relay)


def expected_fabric_links(topology: Topology, lab: str, *, delay_relay: bool = False) -> set[str]:
    names: set[str] = set()
    for node in topology.nodes.values():
        if node.kind in ("bridge", "external"):
            names.add(naming.bridge_ifname(node.name))
        if node.kind == "external":
            names.add(naming.root_peer_ifname(lab, node.name))
    for lk in topology.links:
        names.update(wiring(topology, lk, delay_relay=delay_relay).fabric_names)
    return names


def _uses_ipv6(node: Node) -> bool:
    """Whether a node's definition mentions IPv6 (addresses or routes); if not, IPv6 stays off in its namespace."""
    return any(a.version == 6 for i in node.interfaces.values() for a in i.addresses) or any(
        r.to.version == 6 for r in node.routes) or (node.routing is not None and node.routing.needs_ipv6)


def _has_dhcp_server(node: Node) -> bool:
    return any(i.dhcp_server for i in node.interfaces.values())


# ------------------------------------------------------------------------------------------------ plan


def plan(topology: Topology, lab: str, inv: Inventory, *, delay_relay: bool = False) -> list[Step]:
    """Ordered steps that bring `lab` from `inv` to `topology`. `delay_relay`: the kernel has no sch_netem, so
    links with delay/jitter are carried by a userspace relay (netops.delayd) in the fabric namespace."""
    fabric_ns = naming.fabric_namespace(lab)
    sigs = signatures(topology)
    steps: list[Step] = []
    fabric_state = inv.ns(fabric_ns)
    fabric_fresh = fabric_state is None
    fabric_links = fabric_state.links if fabric_state else {}

    # --- which nodes are rebuilt
    changed = {n for n in topology.nodes if n in inv.signatures and inv.signatures[n] != sigs[n]}
    ns_of = {n: naming.node_namespace(lab, n) for n, nd in topology.nodes.items() if nd.kind in NAMESPACE_KINDS}
    fresh_nodes = set(changed) | {n for n, ns in ns_of.items() if inv.ns(ns) is None}
    if fabric_fresh:
        fresh_nodes |= {n for n, nd in topology.nodes.items() if nd.kind not in NAMESPACE_KINDS}

    # --- removals: namespaces, root links and fabric links that are not (or no longer) wanted
    wanted_ns = {fabric_ns} | set(ns_of.values())
    for name in sorted(inv.namespaces):
        parsed = naming.parse_namespace(name)
        node = parsed[1] if parsed else None
        if name not in wanted_ns or (node is not None and node in changed):
            steps.append(Step("remove.namespace", f"nodes.{node}" if node else "fabric", node,
                              f"remove namespace {name}", {"namespace": name}))
    for node in sorted(changed | (set(inv.signatures) - set(topology.nodes))):
        roles = [r for r in inv.processes if r.split(":")[1:2] == [node]]
        if roles or node in inv.vms_running:
            steps.insert(0, Step("remove.processes", f"nodes.{node}", node, f"stop processes of {node}",
                                 {"roles": sorted(roles), "vm": node in inv.vms_running}))
    orphans = sorted(r for r in inv.processes if r.split(":")[1:2] and r.split(":")[1] not in topology.nodes)
    orphan_nodes = sorted({r.split(":")[1] for r in orphans} - changed - set(inv.signatures))
    for node in orphan_nodes:
        steps.insert(0, Step("remove.processes", f"nodes.{node}", node, f"stop processes of {node}",
                             {"roles": [r for r in orphans if r.split(":")[1] == node], "vm": False}))
    wanted_fabric = expected_fabric_links(topology, lab, delay_relay=delay_relay)
    rebuilt_fabric: set[str] = set()
    for n in changed:
        if topology.nodes[n].kind not in NAMESPACE_KINDS:
            for lk in topology.links_of(n):
                rebuilt_fabric.update(wiring(topology, lk, delay_relay=delay_relay).fabric_names)
            if topology.nodes[n].kind in ("bridge", "external"):
                rebuilt_fabric.add(naming.bridge_ifname(n))
            if topology.nodes[n].kind == "external":
                rebuilt_fabric.add(naming.root_peer_ifname(lab, n))
    for name in sorted(fabric_links):
        st = fabric_links[name]
        tagged = naming.parse_tag(st.alias)
        if name != "lo" and tagged and tagged[0] == lab and (name not in wanted_fabric or name in rebuilt_fabric):
            steps.append(Step("remove.link", "fabric", None, f"remove fabric link {name}",
                              {"namespace": fabric_ns, "ifname": name}))
    wanted_root = {naming.root_ifname(lab, n) for n, nd in topology.nodes.items() if nd.kind == "external"}
    rebuilt_root = {naming.root_ifname(lab, n) for n in changed if topology.nodes[n].kind == "external"}
    for name in sorted(inv.root_links):
        if name not in wanted_root or name in rebuilt_root:
            steps.append(Step("remove.link", "external", None, f"remove host link {name}",
                              {"namespace": None, "ifname": name}))
    present_fabric = {n for n in fabric_links if n not in rebuilt_fabric}
    # host masquerade of externals that left the document or turned nat off
    wanted_nat = {n for n, nd in topology.nodes.items() if nd.kind == "external" and nd.nat_external}
    for n in sorted(inv.external_nat - wanted_nat):
        steps.append(Step("remove.external-nat", f"nodes.{n}", n, f"remove host masquerade of {n}",
                          {"node": n}))
    if inv.host_forwarding and not wanted_nat:
        steps.append(Step("remove.host-forwarding", "lab", None, "release the host's ip_forward", {}))

    # --- namespaces
    if fabric_fresh:
        steps.append(Step("namespace.create", "fabric", None, f"create fabric namespace {fabric_ns}",
                          {"namespace": fabric_ns, "tag": naming.tag(lab, "ns", "fabric"), "ipv6": False}))
    for n, ns in ns_of.items():
        if n in fresh_nodes:
            steps.append(Step("namespace.create", f"nodes.{n}", n, "create namespace",
                              {"namespace": ns, "tag": naming.tag(lab, "ns", n),
                               "ipv6": _uses_ipv6(topology.nodes[n])}))

    # --- bridges (bridge and external nodes, per-link bridges) and external doors
    for n, nd in topology.nodes.items():
        if nd.kind in ("bridge", "external") and naming.bridge_ifname(n) not in present_fabric:
            steps.append(Step("bridge.create", f"nodes.{n}", n, "create bridge",
                              {"ifname": naming.bridge_ifname(n), "tag": naming.tag(lab, "bridge", n),
                               "multicast_snooping": nd.multicast_snooping}))
    for lk in topology.links:
        w = wiring(topology, lk, delay_relay=delay_relay)
        if w.kind in ("ns-tap", "tap-tap") and w.fabric_names[0] not in present_fabric:
            steps.append(Step("bridge.create", lk.path, None, f"create bridge for {lk.a} - {lk.b}",
                              {"ifname": w.fabric_names[0], "tag": naming.tag(lab, "linkbridge")}))

    # --- links
    fresh_ifaces: set[tuple[str, str]] = set()
    relinked: set[int] = set()
    for lk in topology.links:
        w = wiring(topology, lk, delay_relay=delay_relay)
        link_steps = _link_steps(topology, lab, w, inv, fresh_nodes, present_fabric, fresh_ifaces)
        if link_steps:
            relinked.add(lk.index)
        steps.extend(link_steps)
    for n, nd in topology.nodes.items():
        if nd.kind == "external":
            root = naming.root_ifname(lab, n)
            if n in fresh_nodes or root not in inv.root_links or naming.root_peer_ifname(lab, n) not in present_fabric:
                steps.append(Step("link.door", f"nodes.{n}", n, f"create door {root} to the host",
                                  {"root": root, "peer": naming.root_peer_ifname(lab, n),
                                   "bridge": naming.bridge_ifname(n), "host_bridge": nd.bridge,
                                   "nat": nd.nat_external, "address": str(nd.address) if nd.address else None,
                                   "tag": naming.tag(lab, "door", n), "fresh": True}))

    # --- interface configuration, routes, sysctls
    connected = {(ep.node, ep.interface) for lk in topology.links for ep in (lk.a, lk.b)}
    for n, ns in ns_of.items():
        nd = topology.nodes[n]
        state = None if n in fresh_nodes else inv.ns(ns)
        for iname, iface in nd.interfaces.items():
            if (n, iname) not in connected:
                continue  # an unconnected interface has no kernel object
            have = None if (n, iname) in fresh_ifaces or state is None else state.links.get(iname)
            if have is None or not _iface_ok(iface, interface_mac(lab, nd, iname), have):
                steps.append(Step("configure.interface", if_path(n, iname), n, f"configure {iname}",
                                  {"namespace": ns, "ifname": iname, "mac": interface_mac(lab, nd, iname), "mtu": iface.mtu,
                                   "addresses": [str(a) for a in iface.addresses]}))
        routes = [(str(r.to), str(r.via)) for r in nd.routes]
        if routes and (state is None or not all(r in state.routes for r in routes)):
            steps.append(Step("route.add", f"nodes.{n}.routes", n, f"add {len(routes)} route(s)",
                              {"namespace": ns, "routes": routes}))
        if nd.kind == "router" and (state is None or not state.forwarding):
            steps.append(Step("sysctl.forwarding", f"nodes.{n}", n, "enable forwarding",
                              {"namespace": ns}))

    # --- link conditions
    for lk in topology.links:
        w = wiring(topology, lk, delay_relay=delay_relay)
        if w.relay is not None and (lk.index in relinked or w.relay_role not in inv.processes):
            steps.append(Step("relay.start", lk.path, w.node_ends[0][0], f"delay {lk.a} - {lk.b} (relay)",
                              {"namespace": fabric_ns, "a": w.relay[0], "b": w.relay[1], "role": w.relay_role,
                               "delay_ms": lk.conditions.delay_ms or 0.0, "jitter_ms": lk.conditions.jitter_ms or 0.0}))
        kernel_cond = replace(lk.conditions, delay_ms=None, jitter_ms=None) if w.relay else lk.conditions
        if not kernel_cond.any():
            continue
        for node, iname in w.node_ends:
            ns = ns_of[node]
            fresh = (node, iname) in fresh_ifaces
            st = inv.ns(ns)
            have = None if fresh or st is None else st.links.get(iname)
            if have is None or _cond_missing(kernel_cond, have, st):
                steps.append(Step("linkcond.apply", lk.path, node, f"shape {node}:{iname}",
                                  {"namespace": ns, "ifname": iname, "link": lk.index,
                                   "relayed": w.relay is not None}))
        if w.kind in ("ns-bridge", "ns-bridge+relay"):  # the other end of the link: toward the node
            name = w.fabric_names[0]
            have = fabric_links.get(name) if name in present_fabric and lk.index not in relinked else None
            if have is None or _cond_missing(kernel_cond, have, fabric_state):
                steps.append(Step("linkcond.apply", lk.path, w.node_ends[0][0], f"shape {lk.b} - {lk.a}",
                                  {"namespace": fabric_ns, "ifname": name, "link": lk.index,
                                   "relayed": w.relay is not None}))
        if not w.node_ends and w.kind != "bridge-bridge":
            raise ApplyError("link conditions need a host or router at one end of the link (or two bridges)",
                             element=lk.path)
        if not w.node_ends and w.kind == "bridge-bridge":
            name = w.fabric_names[0]
            have = fabric_links.get(name) if name in present_fabric else None
            if have is None or _cond_missing(lk.conditions, have, fabric_state):
                steps.append(Step("linkcond.apply", lk.path, None, f"shape {lk.a} - {lk.b}",
                                  {"namespace": fabric_ns, "ifname": name, "link": lk.index}))

    # --- services
    for n, nd in topology.nodes.items():
        if nd.kind == "router" and nd.nat and nd.nat.masquerade and (n in fresh_nodes or n not in inv.nat_applied):
            steps.append(Step("nat.router", f"nodes.{n}.nat", n, "masquerade " + ", ".join(nd.nat.masquerade),
                              {"namespace": ns_of[n], "masquerade": list(nd.nat.masquerade)}))
    for n, nd in topology.nodes.items():
        if nd.kind == "external" and nd.nat_external and (n in fresh_nodes or n not in inv.nat_applied):
            steps.append(Step("nat.external", f"nodes.{n}", n, "host masquerade",
                              {"root": naming.root_ifname(lab, n), "address": str(nd.address) if nd.address else None}))
    for n, nd in topology.nodes.items():
        if n not in ns_of:
            continue
        for iname, iface in nd.interfaces.items():
            if iface.dhcp_server and (n in fresh_nodes or f"dnsmasq:{n}:{iname}" not in inv.processes):
                steps.append(Step("dhcp-server.start", if_path(n, iname), n, f"start DHCP server on {iname}",
                                  {"namespace": ns_of[n], "ifname": iname}))
    for n, nd in topology.nodes.items():
        if n not in ns_of:
            continue
        for iname, iface in nd.interfaces.items():
            if iface.dhcp and (n, iname) in connected and (
                    n in fresh_nodes or (n, iname) in fresh_ifaces or f"udhcpc:{n}:{iname}" not in inv.processes):
                steps.append(Step("dhcp-client.start", if_path(n, iname), n, f"start DHCP client on {iname}",
                                  {"namespace": ns_of[n], "ifname": iname}))
    steps += _frr_steps(topology, inv, ns_of, fresh_nodes)
    for n, nd in topology.nodes.items():
        if nd.kind == "vm" and (n in fresh_nodes or n not in inv.vms_running):
            taps = {i: naming.fabric_ifname(n, i) for i in nd.interfaces if (n, i) in connected}
            steps.append(Step("vm.start", f"nodes.{n}", n, "start VM", {"taps": taps}))

    order = {p: i for i, p in enumerate(PHASES)}
    return sorted(steps, key=lambda s: order[s.phase])  # stable: keeps document order inside a phase


def _cond_missing(cond: LinkConditions, have: LinkState, state: NamespaceState | None) -> bool:
    """Whether an existing interface lacks part of its conditions: the tbf for a rate, the nft chain for a loss
    (only known when observe looked, see NamespaceState.loss_ifaces)."""
    if cond.rate_bps and not have.qdisc:
        return True
    return (cond.loss_pct is not None and state is not None and state.loss_ifaces is not None
            and have.name not in state.loss_ifaces)


def _iface_ok(iface: Interface, mac: str, have: LinkState) -> bool:
    if not have.up or have.mac != mac or (iface.mtu and have.mtu != iface.mtu):
        return False
    return all(str(a) in have.addresses for a in iface.addresses)


def _link_steps(topology: Topology, lab: str, w: _Wiring, inv: Inventory, fresh_nodes: set[str],
                present_fabric: set[str], fresh_ifaces: set[tuple[str, str]]) -> list[Step]:
    lk = w.link
    a, b = lk.a, lk.b

    def ns_has(ep: Endpoint) -> bool:
        if ep.node in fresh_nodes:
            return False
        st = inv.ns(naming.node_namespace(lab, ep.node))
        return st is not None and (ep.interface or "") in st.links

    params: dict[str, Any] = {"kind": w.kind, "tag": naming.tag(lab, "link", str(a), str(b))}
    missing = False
    if w.kind == "ns-ns":
        missing = not (ns_has(a) and ns_has(b))
        params.update(a_ns=naming.node_namespace(lab, a.node), a_if=a.interface,
                      b_ns=naming.node_namespace(lab, b.node), b_if=b.interface,
                      a_mac=interface_mac(lab, topology.nodes[a.node], a.interface or ""),
                      b_mac=interface_mac(lab, topology.nodes[b.node], b.interface or ""))
    elif w.kind == "ns-ns+relay":
        missing = not (ns_has(a) and ns_has(b) and all(n in present_fabric for n in w.fabric_names))
        params.update(a_ns=naming.node_namespace(lab, a.node), a_if=a.interface,
                      b_ns=naming.node_namespace(lab, b.node), b_if=b.interface,
                      a_fabric=w.fabric_names[0], b_fabric=w.fabric_names[1],
                      a_mac=interface_mac(lab, topology.nodes[a.node], a.interface or ""),
                      b_mac=interface_mac(lab, topology.nodes[b.node], b.interface or ""))
    elif w.kind == "ns-bridge+relay":
        missing = not (ns_has(a) and all(n in present_fabric for n in w.fabric_names))
        params.update(a_ns=naming.node_namespace(lab, a.node), a_if=a.interface, fabric_if=w.fabric_names[0],
                      relay_if=w.fabric_names[1], port_if=w.fabric_names[2],
                      a_mac=interface_mac(lab, topology.nodes[a.node], a.interface or ""),
                      bridge=_bridge_of(topology, b.node))
    elif w.kind == "ns-bridge":
        missing = not (ns_has(a) and w.fabric_names[0] in present_fabric)
        params.update(a_ns=naming.node_namespace(lab, a.node), a_if=a.interface, fabric_if=w.fabric_names[0],
                      a_mac=interface_mac(lab, topology.nodes[a.node], a.interface or ""),
                      bridge=_bridge_of(topology, b.node))
    elif w.kind == "bridge-bridge":
        missing = not all(n in present_fabric for n in w.fabric_names)
        params.update(a_if=w.fabric_names[0], b_if=w.fabric_names[1], a_bridge=_bridge_of(topology, a.node),
                      b_bridge=_bridge_of(topology, b.node))
    elif w.kind == "tap-bridge":
        missing = a.node in fresh_nodes or w.fabric_names[0] not in present_fabric
        params.update(taps=[w.fabric_names[0]], bridge=_bridge_of(topology, b.node))
    elif w.kind == "ns-tap":
        missing = not (ns_has(a) and all(n in present_fabric for n in w.fabric_names)) or b.node in fresh_nodes
        params.update(a_ns=naming.node_namespace(lab, a.node), a_if=a.interface, fabric_if=w.fabric_names[1],
                      a_mac=interface_mac(lab, topology.nodes[a.node], a.interface or ""),
                      bridge=w.fabric_names[0], taps=[w.fabric_names[2]])
        params["kind"] = "ns-bridge+tap"
    elif w.kind == "tap-tap":
        missing = a.node in fresh_nodes or b.node in fresh_nodes or not all(n in present_fabric for n in w.fabric_names)
        params.update(bridge=w.fabric_names[0], taps=w.fabric_names[1:])
    if not missing:
        return []
    fresh_ifaces.update(w.node_ends)
    return [Step("link.create", lk.path, (w.node_ends[0][0] if w.node_ends else None),
                 f"link {lk.a} - {lk.b}", params)]


def _frr_steps(topology: Topology, inv: Inventory, ns_of: dict[str, str], fresh_nodes: set[str]) -> list[Step]:
    """FRR of routers (netops.frr): start where it is not running, reload a changed configuration, stop it where
    routing: left the document."""
    steps: list[Step] = []
    for n, nd in topology.nodes.items():
        if nd.kind != "router" or n not in ns_of:
            continue
        roles = {r for r in inv.processes if frr.is_frr_role(r, n)}
        path = f"nodes.{n}.routing"
        if nd.routing is None:
            if roles and n not in fresh_nodes:
                steps.append(Step("remove.frr", path, n, "stop FRR", {"namespace": ns_of[n]}))
            continue
        wanted = {frr.role(n, d) for d in nd.routing.daemons()}
        if n in fresh_nodes or frr.role(n, "zebra") not in roles:
            steps.append(Step("frr.start", path, n, "start FRR (" + ", ".join(nd.routing.daemons()) + ")",
                              {"namespace": ns_of[n]}))
        elif not wanted <= roles or inv.frr_applied.get(n) != frr.config_hash(topology, n):
            steps.append(Step("frr.reload", path, n, "reload FRR", {"namespace": ns_of[n]}))
    return steps
