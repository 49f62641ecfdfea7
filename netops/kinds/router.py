"""router: a namespace with ip_forward on; may masquerade (`nat`), serve DHCP (dnsmasq) on its interfaces and run
OSPF/BGP with FRR (`routing`: netops.routing validates it, netops.frr runs it)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..inventory import Step
from .base import NamespaceKind, node_of

if TYPE_CHECKING:
    from ..check import Checker
    from ..engine import _Applier
    from ..model import Node
    from ..plan import PlanContext
    from ..status import NodeStatus, ObserveContext


class Router(NamespaceKind):
    name = "router"
    label = "Router"
    help = "Forwards between networks; NAT and DHCP"
    prefix = "r"
    palette = 0
    keys = ("kind", "description", "host", "interfaces", "routes", "nat", "routing", "limits", "ui")
    sections = ("interfaces", "routes", "nat", "routing")
    interface_keys = ("address", "dhcp_server")
    serves_dhcp = True
    forwarding = True
    footprint = 32  # with FRR's daemons
    masquerade = True
    actions = {"sysctl.forwarding": "apply_forwarding", "nat.router": "apply_nat", "frr.start": "apply_frr_start",
               "frr.reload": "apply_frr_reload", "remove.frr": "apply_frr_stop"}

    def check(self, checker: Checker, name: str, data: dict[str, Any], path: str) -> dict[str, Any]:
        fields = super().check(checker, name, data, path)
        if data.get("nat") is not None:
            fields["nat"] = checker.check_nat(name, data["nat"], f"{path}.nat")
        if data.get("routing") is not None:  # OSPF/BGP with FRR (netops.routing, netops.frr)
            from .. import routing

            fields["routing"] = routing.check_routing(checker, name, data["routing"], f"{path}.routing")
        return fields

    def document(self, node: Node) -> dict[str, Any]:
        doc = super().document(node)
        if node.nat is not None:
            doc["nat"] = {"masquerade": list(node.nat.masquerade)}
        if node.routing is not None:
            from .. import routing

            doc["routing"] = routing.to_document(node.routing)
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
        return steps + self.frr_steps(ctx, node)

    def frr_steps(self, ctx: PlanContext, node: Node) -> list[Step]:
        """FRR (netops.frr): start where it is not running, reload a changed configuration, stop it where
        routing: left the document."""
        from .. import frr

        n, ns = node.name, ctx.ns_of[node.name]
        roles = {r for r in ctx.inv.processes if frr.is_frr_role(r, n)}
        path = f"nodes.{n}.routing"
        if node.routing is None:
            if roles and n not in ctx.fresh_nodes:
                return [Step("remove.frr", path, n, "stop FRR", {"namespace": ns})]
            return []
        wanted = {frr.role(n, d) for d in node.routing.daemons()}
        if n in ctx.fresh_nodes or frr.role(n, "zebra") not in roles:
            return [Step("frr.start", path, n, "start FRR (" + ", ".join(node.routing.daemons()) + ")",
                         {"namespace": ns})]
        if not wanted <= roles or ctx.inv.frr_applied.get(n) != frr.config_hash(ctx.topology, n):
            return [Step("frr.reload", path, n, "reload FRR", {"namespace": ns})]
        return []

    def apply_frr_start(self, ap: _Applier, step: Step) -> None:
        from .. import frr

        frr.start(ap.lab, ap.topology, node_of(step), step.params["namespace"])

    def apply_frr_reload(self, ap: _Applier, step: Step) -> None:
        from .. import frr

        frr.reload(ap.lab, ap.topology, node_of(step), step.params["namespace"])

    def apply_frr_stop(self, ap: _Applier, step: Step) -> None:
        from .. import frr

        frr.stop(ap.lab, node_of(step))

    def status(self, ctx: ObserveContext, name: str, node: Node) -> tuple[NodeStatus, list[str]]:
        st, drift = super().status(ctx, name, node)
        if node.routing is not None and st.state != "absent":
            from .. import frr_status

            st.routing, frr_drift = frr_status.router_status(ctx.lab, node, ctx.inv.processes)
            drift = drift + frr_drift
            if frr_drift and st.state == "running":
                st.state = "degraded"
        return st, drift

    def apply_forwarding(self, ap: _Applier, step: Step) -> None:
        ns = step.params["namespace"]
        ap.spaces.write_sysctl(ns, "net.ipv4.ip_forward", "1")
        ap.spaces.write_sysctl(ns, "net.ipv6.conf.all.forwarding", "1")

    def apply_nat(self, ap: _Applier, step: Step) -> None:
        from .. import nft

        p = step.params
        nft.apply_router_nat(ap.lab, node_of(step), p["namespace"], p["masquerade"])

    def clab_node(self, node: Node, image: str, labels: dict[str, str], warn: Any) -> dict[str, Any] | None:
        entry = super().clab_node(node, image, labels, warn)
        if entry is not None and node.routing is not None:
            from ..frr import CLAB_IMAGE

            entry["image"] = CLAB_IMAGE
            entry["binds"] = [f"frr/{node.name}/frr.conf:/etc/frr/frr.conf",
                              f"frr/{node.name}/daemons:/etc/frr/daemons"]
            warn(f"nodes.{node.name}.routing",
                 f"FRR runs from the image {CLAB_IMAGE} and bind-mounts frr/{node.name}/frr.conf and "
                 f"frr/{node.name}/daemons, which this file does not carry (their text: netops.frr."
                 "containerlab_files); without them the routing is dropped")
        return entry

    def clab_exec(self, node: Node) -> list[str]:
        return ["sysctl -w net.ipv4.ip_forward=1", "sysctl -w net.ipv6.conf.all.forwarding=1"]
