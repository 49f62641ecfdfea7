"""Observe: what of a lab exists in the kernel, found by name AND tag, in a few netlink dumps per namespace."""
from __future__ import annotations

import errno
import json
from dataclasses import dataclass, field

from pyroute2.netlink.rtnl import TC_H_ROOT, rt_proto

from . import kinds, linkcond, naming, nft, runtime, wiring
from .inventory import Inventory, LinkState, NamespaceState
from .kernel import netns
from .kernel.host import Host, Kernel, Netlink
from .kernel.netlink import NetlinkSocket
from .model import Topology
from .status import LabStatus, NodeStatus, ObserveContext, iface_dict

RTPROT_STATIC = rt_proto["static"]  # the routes netops.kernel.netlink.route_add makes


@dataclass
class Found:
    """Tagged objects of one or more labs: namespaces (name -> (lab, node)), root links (name -> lab)."""

    namespaces: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    root_links: dict[str, str] = field(default_factory=dict)


def _lo_alias() -> str | None:
    with NetlinkSocket() as nl:
        lo = nl.link(index=1)
        return lo.alias if lo else None


def kernel_of(spaces: netns.Namespaces | None, kernel: Kernel | None) -> Kernel:
    """The kernel a caller passed, else the real one entering namespaces through `spaces`."""
    return kernel if kernel is not None else Host(spaces)


def find_tagged(spaces: netns.Namespaces | None, lab: str | None = None, *, kernel: Kernel | None = None) -> Found:
    """Namespaces whose name AND `lo` ifalias say they belong to `lab` (any lab when None), and tagged root links."""
    k = kernel_of(spaces, kernel)
    found = Found()
    for name in k.namespace_names():
        parsed = naming.parse_namespace(name)
        if parsed is None or (lab is not None and parsed[0] != lab):
            continue
        try:
            with k.netlink(name) as sock:
                lo = sock.link(index=1)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.EINVAL):  # deleted meanwhile, or a plain file, not a namespace
                continue
            raise
        if lo is not None and lo.alias == naming.tag(parsed[0], "ns", parsed[1] or "fabric"):
            found.namespaces[name] = parsed
    with k.netlink(None) as nl:
        for link in nl.links():
            tagged = naming.parse_tag(link.alias)
            if tagged and (lab is None or tagged[0] == lab) and link.name.startswith("tl" + tagged[0]):
                found.root_links[link.name] = tagged[0]
    return found


def _namespace_state(name: str, nl: Netlink, forwarding: bool) -> NamespaceState:
    links = nl.links()
    by_index = {lk.index: lk for lk in links}
    state = NamespaceState(name, forwarding=forwarding)
    for lk in links:
        master = by_index[lk.master].name if lk.master in by_index else None
        state.links[lk.name] = LinkState(lk.name, lk.kind, lk.up, lk.mac, lk.mtu, lk.alias, master)
    for addr in nl.addresses():
        owner = by_index.get(addr.index)
        if owner is not None and not addr.cidr.startswith("fe80:"):
            target = state.links[owner.name].dynamic_addresses if addr.dynamic else state.links[owner.name].addresses
            target.append(addr.cidr)
    for route in nl.routes():
        state.routes.add((route.dst, route.gateway))
        if route.proto == RTPROT_STATIC:
            state.static_routes.add((route.dst, route.gateway))
    for q in nl.qdiscs():
        if q.parent == TC_H_ROOT and q.index in by_index and q.kind not in ("noqueue", "noop", "pfifo_fast", "mq"):
            state.links[by_index[q.index].name].qdisc = q.kind
    return state


def _observe(k: Kernel, name: str) -> NamespaceState:
    forwarding = k.read_sysctl(name, "net.ipv4.ip_forward") == "1"
    with k.netlink(name) as nl:
        return _namespace_state(name, nl, forwarding)


def inventory(spaces: netns.Namespaces | None, lab: str, topology: Topology | None = None, *,
              kernel: Kernel | None = None) -> Inventory:
    """Everything of `lab` that exists (tagged), plus the signatures stored at the last deploy."""
    k = kernel_of(spaces, kernel)
    found = find_tagged(spaces, lab, kernel=k)
    inv = Inventory(lab)
    for name in found.namespaces:
        try:
            inv.namespaces[name] = _observe(k, name)
        except FileNotFoundError:
            continue
    if found.root_links:
        with k.netlink(None) as nl:
            links = {lk.name: lk for lk in nl.links()}
            by_index = {lk.index: lk.name for lk in links.values()}
            for name in found.root_links:
                lk = links[name]
                inv.root_links[name] = LinkState(name, lk.kind, lk.up, lk.mac, lk.mtu, lk.alias,
                                                 by_index.get(lk.master))
    for proc in k.processes(lab):
        inv.processes[proc.role] = proc.pid
        inv.process_nodes[proc.role] = runtime.process_node(proc.role, proc.node)
        inv.process_argv[proc.role] = tuple(proc.argv)
    for role in list(inv.processes):
        if role.startswith("qemu:"):
            inv.vms_running.add(role.split(":")[1])
    if topology is not None:
        inv.nat_applied = _nat_tables_present(lab, topology, inv, k)
        _observe_loss(lab, topology, inv, k)
    _observe_external_nat(lab, topology, inv, k)
    inv.signatures = read_signatures(lab, kernel=k)
    runtime.to_inventory(runtime.read(lab), inv)
    inv.frr_applied = k.frr_applied(lab)
    return inv


def _observe_external_nat(lab: str, topology: Topology | None, inv: Inventory, k: Kernel) -> None:
    """Externals whose host masquerade chains exist. Looked up (one `nft` run) only when the document wants such
    an external or the lab holds the host's ip_forward, which every external with nat acquired."""
    from .destroy import host_forwarding_labs  # destroy imports this module

    inv.host_forwarding = lab in host_forwarding_labs(kernel=k)
    wanted = topology is not None and any(kinds.get(nd.kind).host_nat(nd) for nd in topology.nodes.values())
    if not (wanted or inv.host_forwarding):
        return
    chains = nft.external_nat_chains(lab, kernel=k)
    inv.external_nat = set(chains)
    for node, names in chains.items():
        suffix = nft.chain_suffix(node)
        if {f"post_{suffix}", f"fwd_{suffix}", f"in_{suffix}"} <= set(names):
            inv.nat_applied.add(node)


def _observe_loss(lab: str, topology: Topology, inv: Inventory, k: Kernel) -> None:
    """Which interfaces have their loss chain, in each namespace holding an end of a link with loss: one `nft` run
    per such namespace, none at all when the document has no loss (the hot path of big labs)."""
    lossy = [lk for lk in topology.links if lk.conditions.loss_pct is not None]
    if not lossy:
        return
    spaces = set()
    for lk in lossy:
        for ep in (lk.a, lk.b):
            in_ns = kinds.get(topology.nodes[ep.node].kind).namespace
            spaces.add(naming.node_namespace(lab, ep.node) if in_ns else naming.fabric_namespace(lab))
    for name in sorted(spaces):
        state = inv.namespaces.get(name)
        if state is not None:
            state.loss_ifaces = linkcond.loss_interfaces(name, sorted(state.links), kernel=k)


def read_signatures(lab: str, *, kernel: Kernel | None = None) -> dict[str, str | None]:
    path = naming.run_dir(lab) / "signatures.json"
    text = kernel_of(None, kernel).read_text(path)
    if text is None:
        return {}
    try:
        return dict(json.loads(text))
    except (ValueError, TypeError) as exc:
        raise OSError(errno.EINVAL, f"{path}: corrupt ({exc})") from exc


def _nat_tables_present(lab: str, topology: Topology, inv: Inventory, k: Kernel) -> set[str]:
    """Nodes with NAT (routers) whose namespace holds the lab's tagged nft table (one `nft` run per NAT router); externals
    are `_observe_external_nat`'s."""
    out = set()
    for name, node in topology.nodes.items():
        ns = naming.node_namespace(lab, name)
        if node.nat and node.nat.masquerade and ns in inv.namespaces:
            if any(t.name == nft.NODE_TABLE for t in nft.list_lab_tables(lab, namespace=ns, kernel=k)):
                out.add(name)
    return out


# ------------------------------------------------------------------------------------------------ status


def lab_status(spaces: netns.Namespaces | None, lab: str, topology: Topology | None, *,
               kernel: Kernel | None = None) -> LabStatus:
    k = kernel_of(spaces, kernel)
    inv = inventory(spaces, lab, topology, kernel=k)
    st = LabStatus(lab)
    fabric = inv.namespaces.get(naming.fabric_namespace(lab))
    if topology is None:  # nothing stored: report what the kernel holds
        for name, ns in inv.namespaces.items():
            node = naming.parse_namespace(name)[1]  # type: ignore[index]
            if node and node != naming.TUNNEL_NODE:
                st.nodes[node] = NodeStatus("unknown", "running",
                                            {n: iface_dict(lk) for n, lk in ns.links.items() if n != "lo"})
        return st
    live = [lk for lk in topology.links if not {lk.a.node, lk.b.node} & inv.stopped]
    ctx = ObserveContext(lab, inv, fabric, {(ep.node, ep.interface) for lk in live for ep in (lk.a, lk.b)})
    delay_relay = any(wiring.needs_delay(lk) for lk in topology.links) and not linkcond.supports_delay()
    for lk in topology.links:
        w = wiring.wiring(topology, lk, delay_relay=delay_relay)
        down = wiring.link_key(lk) in inv.links_down
        if down and w.kind == "ns-ns":
            ctx.down_ifaces.update(w.node_ends)
        ends = [inv.namespaces[ns].links.get(ifname) if ns in inv.namespaces else None
                for ns, ifname in w.shape.cable(lab, w)]
        cable = "absent" if any(e is None for e in ends) else ("up" if all(e.up for e in ends if e) else "down")
        asked = "stopped" if {lk.a.node, lk.b.node} & inv.stopped else ("down" if down else "up")
        st.links[lk.path] = {"endpoints": [str(lk.a), str(lk.b)], "state": asked, "cable": cable}
        if asked in ("up", "down") and cable != asked:
            st.drift.append(f"{lk.path}: link is {cable}, expected {asked}")
    for name, node in topology.nodes.items():
        if name in inv.stopped:  # as the user asked (netops.actions): not drift
            st.nodes[name] = NodeStatus(node.kind, "stopped")
            st.stopped.append(name)
            continue
        st.nodes[name], drift = kinds.get(node.kind).status(ctx, name, node)
        st.drift.extend(drift)
    for name, node_status in st.nodes.items():
        node_status.usage = k.node_usage(lab, name)
    for ns_name in inv.namespaces:
        node = naming.parse_namespace(ns_name)[1]  # type: ignore[index]
        if node and node not in topology.nodes and node != naming.TUNNEL_NODE:
            st.drift.append(f"nodes.{node}: namespace exists but the node is not in the document")
    return st
