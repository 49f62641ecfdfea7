"""external: the lab's door to the host's network, a veth to an existing host bridge (`bridge:`) or through host
masquerade (`nat: true` with the host-side gateway `address`)."""
from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from .. import check_iface as _check
from .. import naming
from ..errors import Problem
from ..inventory import Step
from ..status import ObserveContext
from .base import Kind, SegmentKind, node_of

if TYPE_CHECKING:
    from ..check import Checker
    from ..engine import _Applier
    from ..model import Node, Topology
    from ..plan import PlanContext


class External(SegmentKind):
    name = "external"
    label = "External"
    help = "The door to the host's network"
    prefix = "wan"
    palette = 4
    keys = ("kind", "description", "host", "bridge", "nat", "address", "ui")
    sections = ("external",)
    clab_host_endpoint = True
    uplink = True
    clab_labels = ("external", "bridge", "nat", "address")  # the link labels saying which external it is
    actions = {"link.door": "apply_door", "nat.external": "apply_nat"}

    # ---- validation and writing

    def check(self, checker: Checker, name: str, data: dict[str, Any], path: str) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        bridge, nat, address = data.get("bridge"), data.get("nat"), data.get("address")
        if bridge is not None:
            problem = _check.ifname_problem(bridge)
            if problem:
                checker.add(f"{path}.bridge", f"{problem} (the name of an existing host bridge)")
            else:
                fields["bridge"] = bridge
        if nat is not None and not isinstance(nat, bool):
            checker.add(f"{path}.nat", f"{nat!r} must be true or false")
            return fields  # whether address belongs here depends on nat: nothing more to say
        if bridge is not None and nat:
            checker.add(f"{path}.nat", "an external has either bridge or nat: true, not both")
            return fields
        if bridge is None and not nat:
            checker.add(path, "an external needs either bridge: <an existing host bridge> or nat: true")
        if nat:
            fields["nat_external"] = True
        if address is None:
            if nat:
                checker.add(f"{path}.address",
                            "is required with nat: true (the host-side gateway, like '203.0.113.1/24')")
        elif not nat:
            checker.add(f"{path}.address", "is only allowed with nat: true")
        else:
            try:
                fields["address"] = _check.parse_interface_address(address)
            except ValueError as exc:
                checker.add(f"{path}.address", str(exc))
        return fields

    def link_problem(self, other: Kind, a: str, b: str) -> str | None:
        if other.name != self.name:
            return None
        return f"links two externals ({a!r} and {b!r}); connect an external to a bridge or an interface"

    def document(self, node: Node) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if node.bridge is not None:
            doc["bridge"] = node.bridge
        if node.nat_external:
            doc["nat"] = True
        if node.address is not None:
            doc["address"] = str(node.address)
        return doc

    # ---- planning, applying, observing

    def fabric_links(self, lab: str, node: Node, topology: Topology | None = None) -> set[str]:
        return super().fabric_links(lab, node, topology) | {naming.root_peer_ifname(lab, node.name)}

    def root_links(self, lab: str, node: Node) -> set[str]:
        return {naming.root_ifname(lab, node.name)}

    def host_nat(self, node: Node) -> bool:
        return node.nat_external

    def steps(self, ctx: PlanContext, node: Node) -> list[Step]:
        n, lab = node.name, ctx.lab
        steps = super().steps(ctx, node)
        root, peer = naming.root_ifname(lab, n), naming.root_peer_ifname(lab, n)
        if n in ctx.fresh_nodes or root not in ctx.inv.root_links or peer not in ctx.present_fabric:
            steps.append(Step("link.door", f"nodes.{n}", n, f"create door {root} to the host",
                              {"root": root, "peer": peer, "bridge": naming.bridge_ifname(n),
                               "host_bridge": node.bridge, "nat": node.nat_external,
                               "address": str(node.address) if node.address else None,
                               "tag": naming.tag(lab, "door", n), "fresh": True}))
        if node.nat_external and (n in ctx.fresh_nodes or n not in ctx.inv.nat_applied):
            steps.append(Step("nat.external", f"nodes.{n}", n, "host masquerade",
                              {"root": root, "address": str(node.address) if node.address else None}))
        return steps

    def apply_door(self, ap: _Applier, step: Step) -> None:
        """The veth from the external's bridge in the fabric to the host: enslaved to the host bridge, or, for NAT,
        routed: the document's door address on the external's bridge in the fabric, a transit /30 of the operator's
        pool between the fabric and the host (netops.uplinks), so no user address reaches the host."""
        from .. import nft, uplinks
        from ..errors import ApplyError
        from ..kernel import netlink as nl
        from ..linkops import LINK_BRIDGE, raise_first

        p = step.params
        root = ap.sock(None)
        host_bridge = None
        if p["host_bridge"]:
            host_bridge = root.link(name=p["host_bridge"])
            if host_bridge is None or host_bridge.kind != LINK_BRIDGE:
                what = "does not exist" if host_bridge is None else "is not a bridge"
                raise ApplyError(f"host bridge {p['host_bridge']} {what}", element=f"{step.path}.bridge")
        master = ap.bridge_index(p["bridge"], step.path)
        nat = bool(p["nat"] and p["address"])
        if nat:  # before anything is made: the pool must be the host's to spare
            uplinks.check_pool(uplinks.host_routes(root))
        ap.fresh_veth(ap.fabric, p["peer"], None, p["root"], master=0 if nat else master, a_alias=p["tag"])
        door = root.link(name=p["root"])
        if door is None:
            raise ApplyError(f"door {p['root']} vanished", element=step.path)
        change = {"index": door.index, "up": True, "alias": p["tag"], "master": host_bridge.index if host_bridge else None}
        if not nat:
            ap.set_links(None, [change], [])
            return
        host_end, fabric_end = uplinks.transit_of(ap.topology, _slot(ap), node_of(step))
        ap.set_links(None, [change], [(door.index, host_end)])
        fabric = ap.sock(ap.fabric)
        inner = fabric.link(name=p["peer"])
        if inner is None:
            raise ApplyError(f"door {p['peer']} vanished in {ap.fabric}", element=step.path)
        ap.set_links(ap.fabric, [{"index": inner.index, "up": True}],
                     [(master, ipaddress.ip_interface(p["address"])), (inner.index, fabric_end)])
        ap.spaces.write_sysctl(ap.fabric, "net.ipv4.ip_forward", "1")
        raise_first(fabric.batch([nl.route_add(ipaddress.ip_network("0.0.0.0/0"), host_end.ip)]))
        nft.load(uplinks.fabric_nat_commands(ap.lab, node_of(step), p["peer"]), ap.fabric, step.path)

    def apply_nat(self, ap: _Applier, step: Step) -> None:
        from .. import destroy, nft, uplinks

        p = step.params
        uplinks.check_pool(uplinks.host_routes(ap.sock(None)))
        destroy.host_forwarding_acquire(ap.lab)
        _host_end, fabric_end = uplinks.transit_of(ap.topology, _slot(ap), node_of(step))
        # the host masquerades the lab's transit address only: the document's addresses stay in the lab
        nft.apply_external_nat(ap.lab, node_of(step), p["root"], fabric_end)

    def drift(self, ctx: ObserveContext, name: str, node: Node) -> list[str]:
        drift = super().drift(ctx, name, node)
        if naming.root_ifname(ctx.lab, name) not in ctx.inv.root_links:
            drift.append(f"nodes.{name}: door {naming.root_ifname(ctx.lab, name)} missing")
        return drift

    # ---- containerlab: no node; each link ends on `host:<port>` with labels saying which external it is

    def clab_endpoint(self, node: Node, port: str) -> tuple[str, dict[str, str]]:
        labels = {"external": node.name}
        if node.bridge:
            labels["bridge"] = node.bridge
        if node.nat_external:
            labels["nat"] = "true"
        if node.address is not None:
            labels["address"] = str(node.address)
        return f"host:{port}", labels

    def clab_import_endpoint(self, port: str, label: dict[str, Any], path: str,
                             warnings: list[Any]) -> tuple[str, dict[str, Any]]:
        name = str(label.get("external") or port)
        node: dict[str, Any] = {"kind": self.name}
        if "bridge" in label:
            node["bridge"] = str(label["bridge"])
        if str(label.get("nat", "")).lower() == "true":
            node["nat"] = True
        if "address" in label:
            node["address"] = str(label["address"])
        if "bridge" not in node and "nat" not in node:
            warnings.append(Problem(path, f"host:{port} became the external {name!r}; give it bridge or nat: true"))
        return name, node


def _slot(ap: _Applier) -> int:
    from .. import cell
    from ..errors import ApplyError

    found = cell.get(ap.lab)
    if found is None:
        raise ApplyError(f"lab {ap.lab} has no cell", element="lab")
    return found.slot
