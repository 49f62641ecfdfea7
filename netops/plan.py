"""Plan: what to do to make the kernel match a topology. PURE: no I/O, unit-tested without root.

`plan(topology, lab, inventory)` compares the document with what `netops.observe` found (the `Inventory`) and
returns ordered, idempotent `Step`s: planning against a fully deployed lab yields no steps. Nodes whose definition
or links changed since the last deploy (signatures stored by the engine) are removed and built again; nodes gone
from the document are removed; everything else is completed where something is missing.

One function per phase: removals, the fabric namespace, each node's own steps (its kind's `steps()`: namespaces,
bridges, doors, forwarding, NAT, VMs), link bridges and links (netops.wiring), interface configuration and routes,
link conditions and relays, DHCP servers and clients. Steps are then sorted into PHASES (stable, so document order
is kept inside a phase).
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import replace
from typing import Any

from . import kinds, naming
from .errors import ApplyError
from .inventory import Inventory, LinkState, NamespaceState, PlanContext, Step
from .model import Interface, Link, LinkConditions, Node, Topology
from .runtime import process_node
from .wiring import Wiring, link_key, link_steps, needs_delay, wiring

# phases, in execution order
PHASES = ("remove", "namespace", "bridge", "link", "tunnel", "configure", "route", "sysctl", "carrier", "linkcond", "relay",
          "nat", "dhcp-server", "dhcp-client", "frr", "vm")

__all__ = ["PHASES", "Step", "Inventory", "LinkState", "NamespaceState", "PlanContext", "Wiring", "plan", "wiring",
           "link_key", "needs_delay", "node_signature", "signatures", "interface_mac", "if_path",
           "expected_fabric_links", "in_phases"]


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


def node_signature(topology: Topology, name: str, own: list[Link] | None = None, *, legacy: bool = False) -> str:
    """Hash of a node's definition and its links (canvas data left out): a change means rebuild the node.
    `own`: the node's links when the caller has them already. Left out, because they are changed where they stand
    (issue 18): interface addresses and DHCP servers (configure.interface, dhcp-server.start), routes
    (route.del/route.add) and link conditions (linkcond.apply). `legacy`: the hash as labs deployed before that
    stored it, so they are not rebuilt by the upgrade."""
    node = replace(topology.nodes[name], ui=None, description=None)
    ipv6 = kinds.uses_ipv6(node)  # shapes the namespace when it is made: a change of it rebuilds
    if not legacy:
        node = replace(node, routes=(), interfaces={
            k: replace(i, addresses=(), dhcp_server=None) for k, i in node.interfaces.items()})
    own = topology.links_of(name) if own is None else own
    if _segment(node):
        # a bridge's ports belong to the nodes plugged into it; only bridge-to-bridge links are its own
        own = [lk for lk in own if all(_segment(topology.nodes[ep.node]) for ep in (lk.a, lk.b))]
    links = sorted(json.dumps(_plain(replace(lk, ui=None, index=0) if legacy else
                                     replace(lk, ui=None, index=0, conditions=LinkConditions())), sort_keys=True)
                   for lk in own)
    plain = _plain(node)
    if not legacy:
        plain["ipv6"] = ipv6
    for added in ("multicast_snooping", "settings"):  # added later: left out at their defaults, so labs deployed
        if not plain[added]:                          # before keep their hash
            del plain[added]
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


def conditions_of(topology: Topology, delay_relay: bool = False) -> dict[str, Any]:
    """Each link's conditions, by link key, as stored after a deploy (netops.runtime) and compared by the next,
    with whether a delay relay carries it (`relayed`: the link's shape, which a changed delay may change)."""
    return {link_key(lk): {**_plain(lk.conditions), "relayed": wiring(topology, lk, delay_relay=delay_relay).relay
                           is not None} for lk in topology.links}


def _segment(node: Node) -> bool:
    return kinds.get(node.kind).link_end == "segment"


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


def expected_fabric_links(topology: Topology, lab: str, *, delay_relay: bool = False) -> set[str]:
    names: set[str] = set()
    for node in topology.nodes.values():
        names |= kinds.get(node.kind).fabric_links(lab, node, topology)
    for lk in topology.links:
        names.update(wiring(topology, lk, delay_relay=delay_relay).fabric_names)
    return names


# ------------------------------------------------------------------------------------------------ plan


def plan(topology: Topology, lab: str, inv: Inventory, *, delay_relay: bool = False,
         keep_fabric: frozenset[str] = frozenset(), keep_namespaces: frozenset[str] = frozenset()) -> list[Step]:
    """Ordered steps that bring `lab` from `inv` to `topology`. `delay_relay`: the kernel has no sch_netem, so
    links with delay/jitter are carried by a userspace relay (netops.delayd) in the fabric namespace.
    `keep_fabric`, `keep_namespaces`: fabric links and namespaces made outside the plan that stay (a lab across
    hosts: its tunnels, netops.vxlan)."""
    ctx, changed, rebuilt_fabric = _context(topology, lab, inv, delay_relay)
    steps = _removals(ctx, changed, rebuilt_fabric, keep_fabric, keep_namespaces)
    steps += _fabric_namespace(ctx)
    for node in topology.nodes.values():
        if node.name not in ctx.stopped:
            steps += kinds.get(node.kind).steps(ctx, node)
    steps += _link_bridges(ctx)
    link_steps_, relinked = _links(ctx)
    steps += link_steps_
    steps += _interfaces(ctx)
    steps += _carrier(ctx, relinked)
    steps += _conditions(ctx, relinked)
    steps += _dhcp(ctx)
    return in_phases(steps)


def in_phases(steps: list[Step]) -> list[Step]:
    """`steps` sorted into PHASES (stable: keeps document order inside a phase)."""
    order = {p: i for i, p in enumerate(PHASES)}
    return sorted(steps, key=lambda s: order[s.phase])


def _context(topology: Topology, lab: str, inv: Inventory, delay_relay: bool) -> tuple[PlanContext, set[str], set[str]]:
    """What the phases share; also the nodes whose definition changed and the fabric links rebuilt with them."""
    fabric_ns = naming.fabric_namespace(lab)
    sigs = signatures(topology)
    fabric_state = inv.ns(fabric_ns)
    fabric_links = fabric_state.links if fabric_state else {}
    changed = {n for n in topology.nodes if n in inv.signatures and inv.signatures[n] != sigs[n]
               and inv.signatures[n] != node_signature(topology, n, legacy=True)}
    stopped = inv.stopped & set(topology.nodes)
    ns_of = {n: naming.node_namespace(lab, n) for n, nd in topology.nodes.items()
             if kinds.get(nd.kind).namespace and n not in stopped}
    fresh_nodes = set(changed) | {n for n, ns in ns_of.items() if inv.ns(ns) is None}
    if fabric_state is None:
        fresh_nodes |= {n for n in topology.nodes if n not in ns_of}
    rebuilt_fabric: set[str] = set()
    for n in changed:
        node = topology.nodes[n]
        if n not in ns_of:
            for lk in topology.links_of(n):
                rebuilt_fabric.update(wiring(topology, lk, delay_relay=delay_relay).fabric_names)
            rebuilt_fabric |= kinds.get(node.kind).fabric_links(lab, node, topology)
    gone: set[tuple[str, str]] = set()
    for lk in topology.links:  # a delay added or removed without sch_netem changes the link's shape: rebuilt
        old = (inv.conditions_applied or {}).get(link_key(lk))
        w = wiring(topology, lk, delay_relay=delay_relay)
        if old is not None and bool(old.get("relayed")) != (w.relay is not None):
            rebuilt_fabric.update(w.fabric_names)
            gone.update(w.node_ends)  # its node ends go with the fabric ends they were paired with
    connected = {(ep.node, ep.interface) for lk in topology.links for ep in (lk.a, lk.b)
                 if lk.a.node not in stopped and lk.b.node not in stopped}
    ctx = PlanContext(topology, lab, inv, delay_relay, fabric_ns, fabric_links, ns_of, fresh_nodes,
                      {n for n in fabric_links if n not in rebuilt_fabric}, connected, stopped=stopped,
                      gone_ifaces=gone)
    for lk in topology.links:  # a downed link between two namespaces is pulled by setting its node ends down
        if link_key(lk) in inv.links_down and not _touches(ctx, lk):
            w = wiring(topology, lk, delay_relay=delay_relay)
            if w.kind == "ns-ns":
                ctx.down_ifaces.update(w.node_ends)
    return ctx, changed, rebuilt_fabric


def _touches(ctx: PlanContext, lk: Link) -> bool:
    """Whether link `lk` ends on a stopped node (nothing of it is built while that node is stopped)."""
    return lk.a.node in ctx.stopped or lk.b.node in ctx.stopped


def _removals(ctx: PlanContext, changed: set[str], rebuilt_fabric: set[str],
              keep_fabric: frozenset[str] = frozenset(), keep_namespaces: frozenset[str] = frozenset()) -> list[Step]:
    """Namespaces, processes, root links and fabric links that are not (or no longer) wanted."""
    topology, lab, inv = ctx.topology, ctx.lab, ctx.inv
    steps: list[Step] = []
    wanted_ns = {ctx.fabric_ns} | set(ctx.ns_of.values()) | keep_namespaces
    for name in sorted(inv.namespaces):
        parsed = naming.parse_namespace(name)
        node = parsed[1] if parsed and parsed[1] != naming.TUNNEL_NODE else None
        if name not in wanted_ns or (node is not None and node in changed):
            steps.append(Step("remove.namespace", f"nodes.{node}" if node else "fabric", node,
                              f"remove namespace {name}", {"namespace": name}))
    # processes belong to their node (consoles and captures too, netops.runtime.process_node): those of nodes
    # rebuilt, stopped or gone are stopped; lab-level ones (a capture on a bridge) and every other node's stay
    owners = {r: n for r, n in inv.process_nodes.items() if r in inv.processes}
    for role in inv.processes:
        owners.setdefault(role, process_node(role, None))
    gone = (changed | ctx.stopped | set(inv.signatures) | set(owners.values())) - set(topology.nodes)
    ending = changed | ctx.stopped | {n for n in gone if n is not None}
    for node in sorted(n for n in ending if n is not None):
        roles = sorted(r for r, owner in owners.items() if owner == node)
        if roles or node in inv.vms_running:
            steps.insert(0, Step("remove.processes", f"nodes.{node}", node, f"stop processes of {node}",
                                 {"roles": roles, "vm": node in inv.vms_running}))
    relays = {w.relay_role for w in (wiring(topology, lk, delay_relay=ctx.delay_relay) for lk in topology.links)
              if w.relay is not None}
    for role in sorted(r for r in inv.processes if r.startswith("delayd:") and r not in relays):
        node = owners.get(role)  # the relay of a link that lost its delay (or its relay's shape)
        if node not in ending:
            steps.insert(0, Step("remove.processes", "lab" if node is None else f"nodes.{node}", node,
                                 "stop a delay relay", {"roles": [role], "vm": False}))
    for role in sorted(inv.processes):  # DHCP servers of interfaces that no longer serve DHCP
        parts = role.split(":")
        if parts[0] == "dnsmasq" and len(parts) == 3 and parts[1] in topology.nodes and parts[1] not in ending:
            iface = topology.nodes[parts[1]].interfaces.get(parts[2])
            if iface is None or iface.dhcp_server is None:
                steps.insert(0, Step("remove.processes", if_path(parts[1], parts[2]), parts[1],
                                     f"stop the DHCP server on {parts[2]}", {"roles": [role], "vm": False}))
    wanted_fabric = expected_fabric_links(topology, lab, delay_relay=ctx.delay_relay) | keep_fabric
    for name in sorted(ctx.fabric_links):
        st = ctx.fabric_links[name]
        tagged = naming.parse_tag(st.alias)
        if name != "lo" and tagged and tagged[0] == lab and (name not in wanted_fabric or name in rebuilt_fabric):
            steps.append(Step("remove.link", "fabric", None, f"remove fabric link {name}",
                              {"namespace": ctx.fabric_ns, "ifname": name}))
    wanted_root: set[str] = set()
    for nd in topology.nodes.values():
        wanted_root |= kinds.get(nd.kind).root_links(lab, nd)
    rebuilt_root: set[str] = set()
    for n in changed:
        rebuilt_root |= kinds.get(topology.nodes[n].kind).root_links(lab, topology.nodes[n])
    for name in sorted(inv.root_links):
        if name not in wanted_root or name in rebuilt_root:
            steps.append(Step("remove.link", "external", None, f"remove host link {name}",
                              {"namespace": None, "ifname": name}))
    # host masquerade of nodes that left the document or turned it off
    wanted_nat = {n for n, nd in topology.nodes.items() if kinds.get(nd.kind).host_nat(nd)}
    for n in sorted(inv.external_nat - wanted_nat):
        steps.append(Step("remove.external-nat", f"nodes.{n}", n, f"remove host masquerade of {n}",
                          {"node": n}))
    if inv.host_forwarding and not wanted_nat:
        steps.append(Step("remove.host-forwarding", "lab", None, "release the host's ip_forward", {}))
    return steps


def _fabric_namespace(ctx: PlanContext) -> list[Step]:
    if ctx.inv.ns(ctx.fabric_ns) is not None:
        return []
    return [Step("namespace.create", "fabric", None, f"create fabric namespace {ctx.fabric_ns}",
                 {"namespace": ctx.fabric_ns, "tag": naming.tag(ctx.lab, "ns", "fabric"), "ipv6": False})]


def _link_bridges(ctx: PlanContext) -> list[Step]:
    """Bridges of a link's own (a VM's tap joined to a namespace or another tap)."""
    steps = []
    for lk in ctx.topology.links:
        if _touches(ctx, lk):
            continue
        w = wiring(ctx.topology, lk, delay_relay=ctx.delay_relay)
        if w.shape.link_bridge and w.fabric_names[0] not in ctx.present_fabric:
            steps.append(Step("bridge.create", lk.path, None, f"create bridge for {lk.a} - {lk.b}",
                              {"ifname": w.fabric_names[0], "tag": naming.tag(ctx.lab, "linkbridge")}))
    return steps


def _links(ctx: PlanContext) -> tuple[list[Step], set[int]]:
    """The links with something missing, and their indexes (relinked: their conditions are applied afresh)."""
    steps: list[Step] = []
    relinked: set[int] = set()
    for lk in ctx.topology.links:
        if _touches(ctx, lk):
            continue
        made = link_steps(ctx, wiring(ctx.topology, lk, delay_relay=ctx.delay_relay))
        if made:
            relinked.add(lk.index)
        steps += made
    return steps, relinked


def _interfaces(ctx: PlanContext) -> list[Step]:
    """Interface configuration (MAC, MTU, addresses, up) and routes inside node namespaces."""
    steps: list[Step] = []
    for n, ns in ctx.ns_of.items():
        nd = ctx.topology.nodes[n]
        state = None if n in ctx.fresh_nodes else ctx.inv.ns(ns)
        for iname, iface in nd.interfaces.items():
            if (n, iname) not in ctx.connected:
                continue  # an unconnected interface has no kernel object
            have = None if (n, iname) in ctx.fresh_ifaces or state is None else state.links.get(iname)
            mac = interface_mac(ctx.lab, nd, iname)
            up = (n, iname) not in ctx.down_ifaces
            # static addresses the document no longer gives (a DHCP client's lease looks static: left alone)
            stale = [] if have is None or iface.dhcp else sorted(
                set(have.addresses) - {str(a) for a in iface.addresses})
            if have is None or stale or not _iface_ok(iface, mac, have, up):
                steps.append(Step("configure.interface", if_path(n, iname), n, f"configure {iname}",
                                  {"namespace": ns, "ifname": iname, "mac": mac, "mtu": iface.mtu,
                                   "addresses": [str(a) for a in iface.addresses], "up": up, "remove": stale}))
        off = {i for i in nd.interfaces if (n, i) not in ctx.connected or (n, i) in ctx.down_ifaces}
        routes = [(str(r.to), str(r.via)) for r in kinds.routes_in_use(nd, off)]
        stale_routes = sorted((to, via) for to, via in state.static_routes - {(str(r.to), str(r.via)) for r in nd.routes}
                              if via is not None) if state is not None else []
        if stale_routes:  # routes netops added that the document no longer has
            steps.append(Step("route.del", f"nodes.{n}.routes", n, f"remove {len(stale_routes)} route(s)",
                              {"namespace": ns, "routes": stale_routes}))
        if routes and (state is None or not all(r in state.routes for r in routes)):
            steps.append(Step("route.add", f"nodes.{n}.routes", n, f"add {len(routes)} route(s)",
                              {"namespace": ns, "routes": routes}))
    return steps


def _carrier(ctx: PlanContext, relinked: set[int]) -> list[Step]:
    """Links the user set down (netops.actions) have their cable pulled: the ends outside the nodes set down
    (netops.wiring Shape.cable), so both node ends lose carrier; links set up again get those ends back up."""
    steps: list[Step] = []
    for lk in ctx.topology.links:
        if _touches(ctx, lk):
            continue
        w = wiring(ctx.topology, lk, delay_relay=ctx.delay_relay)
        down = link_key(lk) in ctx.inv.links_down
        wrong = []
        for ns, ifname in w.shape.cable(ctx.lab, w):
            st = ctx.inv.ns(ns)
            have = None if st is None else st.links.get(ifname)
            if lk.index in relinked or have is None:  # made by this plan, up: only a downed link needs a step
                if down:
                    wrong.append([ns, ifname])
            elif have.up == down:
                wrong.append([ns, ifname])
        if wrong:
            steps.append(Step("carrier.set", lk.path, None, f"link {lk.a} - {lk.b} {'down' if down else 'up'}",
                              {"ends": wrong, "up": not down}))
    return steps


def _conditions(ctx: PlanContext, relinked: set[int]) -> list[Step]:
    """Delay relays and kernel link conditions (tbf rate, nft loss, netem delay) on the links that have them."""
    steps: list[Step] = []
    inv, fabric_ns = ctx.inv, ctx.fabric_ns
    fabric_state = inv.ns(fabric_ns)
    applied = inv.conditions_applied
    for lk in ctx.topology.links:
        if _touches(ctx, lk):
            continue
        w = wiring(ctx.topology, lk, delay_relay=ctx.delay_relay)
        # conditions changed since they were last applied (a live change, or a deploy of an edited link): every
        # end of the link is shaped afresh (unset conditions removed), its relay restarted with the new delay
        # (nothing recorded: a lab deployed before they were, so each link with conditions is shaped once more)
        if applied is None:
            changed = lk.conditions.any()
        else:
            old = applied.get(link_key(lk), _plain(LinkConditions()))
            changed = old is None or {k: v for k, v in old.items() if k != "relayed"} != _plain(lk.conditions)
        if changed:
            relinked = relinked | {lk.index}
        if w.relay is not None and (lk.index in relinked or w.relay_role not in inv.processes):
            steps.append(Step("relay.start", lk.path, w.node_ends[0][0], f"delay {lk.a} - {lk.b} (relay)",
                              {"namespace": fabric_ns, "a": w.relay[0], "b": w.relay[1], "role": w.relay_role,
                               "delay_ms": lk.conditions.delay_ms or 0.0, "jitter_ms": lk.conditions.jitter_ms or 0.0}))
        kernel_cond = replace(lk.conditions, delay_ms=None, jitter_ms=None) if w.relay else lk.conditions
        if not kernel_cond.any() and not changed:
            continue
        for node, iname in w.node_ends:
            ns = ctx.ns_of[node]
            st = inv.ns(ns)
            have = None if (node, iname) in ctx.fresh_ifaces or st is None else st.links.get(iname)
            if changed or have is None or _cond_missing(kernel_cond, have, st):
                steps.append(Step("linkcond.apply", lk.path, node, f"shape {node}:{iname}",
                                  {"namespace": ns, "ifname": iname, "link": lk.index,
                                   "relayed": w.relay is not None}))
        if w.kind in ("ns-bridge", "ns-bridge+relay"):  # the other end of the link: toward the node
            name = w.fabric_names[0]
            have = ctx.fabric_links.get(name) if name in ctx.present_fabric and lk.index not in relinked else None
            if changed or have is None or _cond_missing(kernel_cond, have, fabric_state):
                steps.append(Step("linkcond.apply", lk.path, w.node_ends[0][0], f"shape {lk.b} - {lk.a}",
                                  {"namespace": fabric_ns, "ifname": name, "link": lk.index,
                                   "relayed": w.relay is not None}))
        if not w.node_ends and w.kind != "bridge-bridge":
            raise ApplyError("link conditions need a host or router at one end of the link (or two bridges)",
                             element=lk.path)
        if not w.node_ends and w.kind == "bridge-bridge":
            name = w.fabric_names[0]
            have = ctx.fabric_links.get(name) if name in ctx.present_fabric else None
            if changed or have is None or _cond_missing(lk.conditions, have, fabric_state):
                steps.append(Step("linkcond.apply", lk.path, None, f"shape {lk.a} - {lk.b}",
                                  {"namespace": fabric_ns, "ifname": name, "link": lk.index}))
    return steps


def _dhcp(ctx: PlanContext) -> list[Step]:
    """DHCP servers (dnsmasq) and clients on the interfaces of node namespaces."""
    steps: list[Step] = []
    for n, ns in ctx.ns_of.items():
        for iname, iface in ctx.topology.nodes[n].interfaces.items():
            role = f"dnsmasq:{n}:{iname}"
            if iface.dhcp_server and (n in ctx.fresh_nodes or role not in ctx.inv.processes
                                      or (n, iname) in ctx.fresh_ifaces or _dhcp_server_changed(ctx, n, iface)):
                steps.append(Step("dhcp-server.start", if_path(n, iname), n, f"start DHCP server on {iname}",
                                  {"namespace": ns, "ifname": iname}))
    for n, ns in ctx.ns_of.items():
        for iname, iface in ctx.topology.nodes[n].interfaces.items():
            if iface.dhcp and (n, iname) in ctx.connected and (
                    n in ctx.fresh_nodes or (n, iname) in ctx.fresh_ifaces
                    or f"udhcpc:{n}:{iname}" not in ctx.inv.processes):
                steps.append(Step("dhcp-client.start", if_path(n, iname), n, f"start DHCP client on {iname}",
                                  {"namespace": ns, "ifname": iname}))
    return steps


def _dhcp_server_changed(ctx: PlanContext, node: str, iface: Interface) -> bool:
    """Whether the running dnsmasq of `iface` serves something else than the document says (its range, lease
    time, gateway: its command line differs); unknown (not observed) counts as unchanged."""
    from . import dnsmasq

    have = ctx.inv.process_argv.get(f"dnsmasq:{node}:{iface.name}")
    return have is not None and have != tuple(dnsmasq.argv(ctx.lab, node, iface))


def _cond_missing(cond: LinkConditions, have: LinkState, state: NamespaceState | None) -> bool:
    """Whether an existing interface lacks part of its conditions: the tbf for a rate, the nft chain for a loss
    (only known when observe looked, see NamespaceState.loss_ifaces)."""
    if cond.rate_bps and not have.qdisc:
        return True
    return (cond.loss_pct is not None and state is not None and state.loss_ifaces is not None
            and have.name not in state.loss_ifaces)


def _iface_ok(iface: Interface, mac: str, have: LinkState, up: bool = True) -> bool:
    if (up and not have.up) or have.mac != mac or (iface.mtu and have.mtu != iface.mtu):
        return False
    return all(str(a) in have.addresses for a in iface.addresses)
