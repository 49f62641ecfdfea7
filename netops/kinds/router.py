"""router: a namespace with ip_forward on; may masquerade (`nat`) and serve DHCP (dnsmasq) on its interfaces."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..inventory import Step
from .base import NamespaceKind, node_of

if TYPE_CHECKING:
    from ..check import Checker
    from ..engine import _Applier
    from ..model import Node
    from ..plan import PlanContext


class Router(NamespaceKind):
    name = "router"
    label = "Router"
    help = "Forwards between networks; NAT and DHCP"
    prefix = "r"
    palette = 0
    keys = ("kind", "description", "interfaces", "routes", "nat", "limits", "ui")
    sections = ("interfaces", "routes", "nat")
    interface_keys = ("address", "dhcp_server")
    serves_dhcp = True
    forwarding = True
    masquerade = True
    actions = {"sysctl.forwarding": "apply_forwarding", "nat.router": "apply_nat"}

    def check(self, checker: Checker, name: str, data: dict[str, Any], path: str) -> dict[str, Any]:
        fields = super().check(checker, name, data, path)
        if data.get("nat") is not None:
            fields["nat"] = checker.check_nat(name, data["nat"], f"{path}.nat")
        return fields

    def document(self, node: Node) -> dict[str, Any]:
        doc = super().document(node)
        if node.nat is not None:
            doc["nat"] = {"masquerade": list(node.nat.masquerade)}
        return doc

    def steps(self, ctx: PlanContext, node: Node) -> list[Step]:
        n = node.name
        steps = super().steps(ctx, node)
        ns = ctx.ns_of[n]
        state = None if n in ctx.fresh_nodes else ctx.inv.ns(ns)
        if state is None or not state.forwarding:
            steps.append(Step("sysctl.forwarding", f"nodes.{n}", n, "enable forwarding", {"namespace": ns}))
        if node.nat and node.nat.masquerade and (n in ctx.fresh_nodes or n not in ctx.inv.nat_applied):
            steps.append(Step("nat.router", f"nodes.{n}.nat", n, "masquerade " + ", ".join(node.nat.masquerade),
                              {"namespace": ns, "masquerade": list(node.nat.masquerade)}))
        return steps

    def apply_forwarding(self, ap: _Applier, step: Step) -> None:
        ns = step.params["namespace"]
        ap.spaces.write_sysctl(ns, "net.ipv4.ip_forward", "1")
        ap.spaces.write_sysctl(ns, "net.ipv6.conf.all.forwarding", "1")

    def apply_nat(self, ap: _Applier, step: Step) -> None:
        from .. import nft

        p = step.params
        nft.apply_router_nat(ap.lab, node_of(step), p["namespace"], p["masquerade"])

    def clab_exec(self, node: Node) -> list[str]:
        return ["sysctl -w net.ipv4.ip_forward=1", "sysctl -w net.ipv6.conf.all.forwarding=1"]
