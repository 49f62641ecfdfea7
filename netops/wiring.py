"""How a link is realised in the kernel: written once, for the planner and the engine.

Each end of a link is of one class, given by its node's kind (`Kind.link_end`): "ns" (a veth end inside the node's
namespace), "tap" (a VM's tap in the fabric namespace) or "segment" (a port of a bridge or an external's bridge in
the fabric namespace). The pair of classes picks one `Shape`, which says which fabric interfaces the link creates, the
parameters of its `link.create` step, whether something of it is missing, and how the engine builds it:

    ns-ns            a veth between the two namespaces
    ns-bridge        a veth from the namespace into the fabric, enslaved to the bridge
    bridge-bridge    a veth pair inside the fabric joining the two bridges
    tap-bridge       the VM's tap enslaved to the bridge
    ns-bridge+tap    a bridge of its own for the link, the namespace's veth and the VM's tap on it
    tap-tap          a bridge of its own for the link, both taps on it
    ns-ns+relay      (no sch_netem) each namespace's veth ends in the fabric; netops.delayd joins them
    ns-bridge+relay  (no sch_netem) the namespace's veth ends in the fabric; delayd joins it to a bridge port

Pure except `Shape.create`, which only calls the applier it is given (netops.engine._Applier).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from . import kinds, naming
from .inventory import PlanContext, Step
from .model import Endpoint, Link, Topology

if TYPE_CHECKING:
    from .engine import _Applier

_ORDER = {"ns": 0, "tap": 1, "segment": 2}


@dataclass
class Wiring:
    """How one link is realised: its ends ordered ns < tap < segment, its shape and the objects it creates."""

    link: Link
    kind: str  # the shape's name (see the module docstring)
    fabric_names: list[str]  # fabric interfaces/bridges this link creates
    node_ends: list[tuple[str, str]]  # (node, iface) ends inside node namespaces
    relay: tuple[str, str] | None = None  # the two fabric interfaces netops.delayd joins, for a relayed link

    @property
    def shape(self) -> Shape:
        return SHAPES[self.kind]

    @property
    def relay_role(self) -> str:
        """Process role of the link's delay relay, named after its first namespace end (so rebuilding that node
        stops it, as for its other processes)."""
        node, iface = self.node_ends[0]
        return f"delayd:{node}:{iface}"


def link_key(link: Link) -> str:
    return f"{link.a}~{link.b}"


def needs_delay(link: Link) -> bool:
    return link.conditions.delay_ms is not None or link.conditions.jitter_ms is not None


def wiring(topology: Topology, link: Link, *, delay_relay: bool = False) -> Wiring:
    """How `link` is realised. With `delay_relay` (the kernel has no sch_netem), a link with delay/jitter is not
    joined in the kernel: its sides end on two fabric interfaces that netops.delayd joins after the delay."""
    a, b = link.a, link.b
    ca, cb = (kinds.get(topology.nodes[ep.node].kind).link_end for ep in (a, b))
    if _ORDER[ca] > _ORDER[cb]:
        a, b, ca, cb = b, a, cb, ca
    ordered = replace(link, a=a, b=b)
    shape = PAIRS[(ca, cb)]
    if delay_relay and needs_delay(link) and shape.relayed is not None:
        shape = SHAPES[shape.relayed]
    ends = [(ep.node, ep.interface) for ep, c in ((a, ca), (b, cb)) if c == "ns" and ep.interface]
    fabric = shape.fabric(ordered)
    relay = (fabric[0], fabric[1]) if shape.relay else None
    return Wiring(ordered, shape.name, fabric, ends, relay)


def _fabric_if(ep: Endpoint, suffix: str = "") -> str:
    return naming.fabric_ifname(ep.node, (ep.interface or "") + suffix)


def _mac(ctx: PlanContext, ep: Endpoint) -> str:
    from .plan import interface_mac

    return interface_mac(ctx.lab, ctx.topology.nodes[ep.node], ep.interface or "")


def _ns_has(ctx: PlanContext, ep: Endpoint) -> bool:
    if ep.node in ctx.fresh_nodes or (ep.node, ep.interface) in ctx.gone_ifaces:
        return False
    st = ctx.inv.ns(naming.node_namespace(ctx.lab, ep.node))
    return st is not None and (ep.interface or "") in st.links


def _all_present(ctx: PlanContext, w: Wiring) -> bool:
    return all(n in ctx.present_fabric for n in w.fabric_names)


class Shape:
    """One way of realising a link (see the module docstring)."""

    name: ClassVar[str]
    relayed: ClassVar[str | None] = None  # the shape used instead when a userspace relay carries the delay
    relay: ClassVar[bool] = False  # fabric_names[0:2] are the two interfaces netops.delayd joins
    link_bridge: ClassVar[bool] = False  # fabric_names[0] is a bridge of the link's own

    def fabric(self, link: Link) -> list[str]:
        return []

    def missing(self, ctx: PlanContext, w: Wiring) -> bool:
        raise NotImplementedError

    def params(self, ctx: PlanContext, w: Wiring) -> dict[str, Any]:
        raise NotImplementedError

    def create(self, ap: _Applier, step: Step) -> None:
        raise NotImplementedError

    def cable(self, lab: str, w: Wiring) -> list[tuple[str, str]]:
        """The (namespace, interface) ends set down to pull this link's cable (netops.actions): those outside the
        nodes, so both node ends lose carrier (NO-CARRIER) while staying up as their users set them."""
        fabric = naming.fabric_namespace(lab)
        return [(fabric, name) for name in self.cable_names(w)]

    def cable_names(self, w: Wiring) -> list[str]:
        return w.fabric_names[:1]


class NsNs(Shape):
    name = "ns-ns"
    relayed: ClassVar[str | None] = "ns-ns+relay"

    def missing(self, ctx: PlanContext, w: Wiring) -> bool:
        return not (_ns_has(ctx, w.link.a) and _ns_has(ctx, w.link.b))

    def params(self, ctx: PlanContext, w: Wiring) -> dict[str, Any]:
        a, b = w.link.a, w.link.b
        return {"a_ns": naming.node_namespace(ctx.lab, a.node), "a_if": a.interface,
                "b_ns": naming.node_namespace(ctx.lab, b.node), "b_if": b.interface,
                "a_mac": _mac(ctx, a), "b_mac": _mac(ctx, b)}

    def create(self, ap: _Applier, step: Step) -> None:
        p = step.params
        ap.fresh_veth(p["a_ns"], p["a_if"], p["b_ns"], p["b_if"], a_mac=p["a_mac"], b_mac=p["b_mac"])

    def cable(self, lab: str, w: Wiring) -> list[tuple[str, str]]:
        # a veth straight between two namespaces has no end outside them: both node ends are set down (each loses
        # LOWER_UP; `ip link` shows them DOWN rather than NO-CARRIER)
        return [(naming.node_namespace(lab, node), iface) for node, iface in w.node_ends]


class NsNsRelay(NsNs):
    name = "ns-ns+relay"
    relayed = None
    relay = True

    def fabric(self, link: Link) -> list[str]:  # each node end <-> its own fabric end ~relay~ the other
        return [_fabric_if(link.a), _fabric_if(link.b)]

    def missing(self, ctx: PlanContext, w: Wiring) -> bool:
        return super().missing(ctx, w) or not _all_present(ctx, w)

    def params(self, ctx: PlanContext, w: Wiring) -> dict[str, Any]:
        return {**super().params(ctx, w), "a_fabric": w.fabric_names[0], "b_fabric": w.fabric_names[1]}

    def create(self, ap: _Applier, step: Step) -> None:
        p = step.params
        ap.fresh_veth(ap.fabric, p["a_fabric"], p["a_ns"], p["a_if"], b_mac=p["a_mac"])
        ap.fresh_veth(ap.fabric, p["b_fabric"], p["b_ns"], p["b_if"], b_mac=p["b_mac"])
        ap.set_links(ap.fabric, [{"name": p["a_fabric"], "alias": p["tag"]},
                                 {"name": p["b_fabric"], "alias": p["tag"]}])

    def cable(self, lab: str, w: Wiring) -> list[tuple[str, str]]:
        return Shape.cable(self, lab, w)

    def cable_names(self, w: Wiring) -> list[str]:
        return w.fabric_names[:2]


def switch_bridge(topology: Topology, switch: str, peer: Endpoint) -> str:
    """The bridge in the fabric that the link from `peer` to segment node `switch` is a port of: the switch's own
    bridge, or, for a switch with more links than one bridge takes (a kind with `tree_of_bridges`, more than
    naming.SWITCH_PORTS links), the leaf bridge that the link's rank in name order falls in: adding or removing a
    link moves at most the ports at the leaves' boundaries to another leaf."""
    rank, count = topology.port_rank(switch, peer)
    if count <= naming.SWITCH_PORTS or not kinds.get(topology.nodes[switch].kind).tree_of_bridges:
        return naming.bridge_ifname(switch)
    return naming.switch_leaf_ifname(switch, rank // naming.SWITCH_PORTS)


class NsBridge(Shape):
    name = "ns-bridge"
    relayed: ClassVar[str | None] = "ns-bridge+relay"

    def fabric(self, link: Link) -> list[str]:
        return [_fabric_if(link.a)]

    def missing(self, ctx: PlanContext, w: Wiring) -> bool:
        return not (_ns_has(ctx, w.link.a) and w.fabric_names[0] in ctx.present_fabric)

    def params(self, ctx: PlanContext, w: Wiring) -> dict[str, Any]:
        a = w.link.a
        return {"a_ns": naming.node_namespace(ctx.lab, a.node), "a_if": a.interface, "fabric_if": w.fabric_names[0],
                "a_mac": _mac(ctx, a), "bridge": switch_bridge(ctx.topology, w.link.b.node, a)}

    def create(self, ap: _Applier, step: Step) -> None:
        p = step.params
        master = ap.bridge_index(p["bridge"], step.path)
        ap.fresh_veth(ap.fabric, p["fabric_if"], p["a_ns"], p["a_if"], master=master, b_mac=p["a_mac"],
                      a_alias=p["tag"])


class NsBridgeRelay(NsBridge):
    name = "ns-bridge+relay"
    relayed = None
    relay = True

    def fabric(self, link: Link) -> list[str]:  # node end <-> fabric_if ~relay~ r1 <-> r2 (bridge port)
        return [_fabric_if(link.a), _fabric_if(link.a, ">relay"), _fabric_if(link.a, ">port")]

    def missing(self, ctx: PlanContext, w: Wiring) -> bool:
        return not (_ns_has(ctx, w.link.a) and _all_present(ctx, w))

    def params(self, ctx: PlanContext, w: Wiring) -> dict[str, Any]:
        return {**super().params(ctx, w), "relay_if": w.fabric_names[1], "port_if": w.fabric_names[2]}

    def create(self, ap: _Applier, step: Step) -> None:
        # the node's end stays out of the bridge: netops.delayd joins it to a port pair after the delay
        p, tag = step.params, step.params["tag"]
        master = ap.bridge_index(p["bridge"], step.path)
        ap.fresh_veth(ap.fabric, p["fabric_if"], p["a_ns"], p["a_if"], b_mac=p["a_mac"])
        ap.fresh_veth(ap.fabric, p["relay_if"], ap.fabric, p["port_if"])
        ap.set_links(ap.fabric, [{"name": p["fabric_if"], "alias": tag}, {"name": p["relay_if"], "alias": tag},
                                 {"name": p["port_if"], "up": True, "master": master, "alias": tag}])


class BridgeBridge(Shape):
    name = "bridge-bridge"

    def fabric(self, link: Link) -> list[str]:
        a, b = link.a.node, link.b.node
        return [naming.fabric_ifname(a, ">" + b), naming.fabric_ifname(b, ">" + a)]

    def missing(self, ctx: PlanContext, w: Wiring) -> bool:
        return not _all_present(ctx, w)

    def params(self, ctx: PlanContext, w: Wiring) -> dict[str, Any]:
        return {"a_if": w.fabric_names[0], "b_if": w.fabric_names[1],
                "a_bridge": switch_bridge(ctx.topology, w.link.a.node, w.link.b),
                "b_bridge": switch_bridge(ctx.topology, w.link.b.node, w.link.a)}

    def create(self, ap: _Applier, step: Step) -> None:
        p, tag = step.params, step.params["tag"]
        a_master = ap.bridge_index(p["a_bridge"], step.path)
        b_master = ap.bridge_index(p["b_bridge"], step.path)
        ap.fresh_veth(ap.fabric, p["a_if"], ap.fabric, p["b_if"], master=a_master)
        ap.set_links(ap.fabric, [{"name": p["a_if"], "alias": tag},
                                 {"name": p["b_if"], "up": True, "master": b_master, "alias": tag}])

    def cable_names(self, w: Wiring) -> list[str]:
        return w.fabric_names[:2]


class TapBridge(Shape):
    name = "tap-bridge"

    def fabric(self, link: Link) -> list[str]:
        return [_fabric_if(link.a)]

    def missing(self, ctx: PlanContext, w: Wiring) -> bool:
        return w.link.a.node in ctx.fresh_nodes or w.fabric_names[0] not in ctx.present_fabric

    def params(self, ctx: PlanContext, w: Wiring) -> dict[str, Any]:
        return {"taps": [w.fabric_names[0]], "bridge": switch_bridge(ctx.topology, w.link.b.node, w.link.a)}

    def create(self, ap: _Applier, step: Step) -> None:
        p = step.params
        ap.taps(p["taps"], ap.bridge_index(p["bridge"], step.path), p["tag"])


class NsBridgeTap(Shape):
    name = "ns-bridge+tap"
    link_bridge = True

    def fabric(self, link: Link) -> list[str]:
        return [naming.link_bridge_ifname(link_key(link)), _fabric_if(link.a), _fabric_if(link.b)]

    def missing(self, ctx: PlanContext, w: Wiring) -> bool:
        return not (_ns_has(ctx, w.link.a) and _all_present(ctx, w)) or w.link.b.node in ctx.fresh_nodes

    def params(self, ctx: PlanContext, w: Wiring) -> dict[str, Any]:
        a = w.link.a
        return {"a_ns": naming.node_namespace(ctx.lab, a.node), "a_if": a.interface, "fabric_if": w.fabric_names[1],
                "a_mac": _mac(ctx, a), "bridge": w.fabric_names[0], "taps": [w.fabric_names[2]]}

    def create(self, ap: _Applier, step: Step) -> None:
        p = step.params
        master = ap.bridge_index(p["bridge"], step.path)
        ap.fresh_veth(ap.fabric, p["fabric_if"], p["a_ns"], p["a_if"], master=master, b_mac=p["a_mac"],
                      a_alias=p["tag"])
        ap.taps(p["taps"], master, p["tag"])

    def cable_names(self, w: Wiring) -> list[str]:
        return w.fabric_names[1:]


class TapTap(Shape):
    name = "tap-tap"
    link_bridge = True

    def fabric(self, link: Link) -> list[str]:
        return [naming.link_bridge_ifname(link_key(link)), _fabric_if(link.a), _fabric_if(link.b)]

    def missing(self, ctx: PlanContext, w: Wiring) -> bool:
        a, b = w.link.a.node, w.link.b.node
        return a in ctx.fresh_nodes or b in ctx.fresh_nodes or not _all_present(ctx, w)

    def params(self, ctx: PlanContext, w: Wiring) -> dict[str, Any]:
        return {"bridge": w.fabric_names[0], "taps": w.fabric_names[1:]}

    def create(self, ap: _Applier, step: Step) -> None:
        p = step.params
        ap.taps(p["taps"], ap.bridge_index(p["bridge"], step.path), p["tag"])

    def cable_names(self, w: Wiring) -> list[str]:
        return w.fabric_names[1:]


SHAPES: dict[str, Shape] = {s.name: s for s in (NsNs(), NsNsRelay(), NsBridge(), NsBridgeRelay(), BridgeBridge(),
                                                 TapBridge(), NsBridgeTap(), TapTap())}
#: the shape of a link by the classes of its ends (ordered ns < tap < segment)
PAIRS: dict[tuple[str, str], Shape] = {
    ("ns", "ns"): SHAPES["ns-ns"], ("ns", "segment"): SHAPES["ns-bridge"], ("tap", "segment"): SHAPES["tap-bridge"],
    ("segment", "segment"): SHAPES["bridge-bridge"], ("ns", "tap"): SHAPES["ns-bridge+tap"],
    ("tap", "tap"): SHAPES["tap-tap"],
}


def link_steps(ctx: PlanContext, w: Wiring) -> list[Step]:
    """The link's `link.create` step when something of it is missing (its node ends then count as fresh)."""
    lk = w.link
    if not w.shape.missing(ctx, w):
        return []
    params: dict[str, Any] = {"kind": w.kind, "tag": naming.tag(ctx.lab, "link", str(lk.a), str(lk.b))}
    params.update(w.shape.params(ctx, w))
    ctx.fresh_ifaces.update(w.node_ends)
    return [Step("link.create", lk.path, (w.node_ends[0][0] if w.node_ends else None), f"link {lk.a} - {lk.b}",
                 params)]
