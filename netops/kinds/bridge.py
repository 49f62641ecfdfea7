"""bridge: a learning switch inside the lab (a bridge in the lab's fabric namespace), linked by its bare name."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import check_iface as _check
from ..naming import SWITCH_PORTS
from .base import SegmentKind

if TYPE_CHECKING:
    from ..check import Checker
    from ..model import Node


class Bridge(SegmentKind):
    name = "bridge"
    label = "Switch"
    help = "A bridge inside the lab"
    prefix = "br"
    palette = 1
    keys = ("kind", "description", "multicast_snooping", "ui")
    sections = ("bridge",)
    # past one bridge's ports, a tree: a root bridge and leaf bridges of naming.SWITCH_PORTS ports each
    tree_of_bridges = True
    max_links = 16 * SWITCH_PORTS
    max_links_reason = (f"a switch is built as a tree of at most 16 bridges of {SWITCH_PORTS} ports; split its "
                        "links over two switches joined by a link")
    actions = {"bridge.trunk": "apply_trunk"}

    def check(self, checker: Checker, name: str, data: dict[str, Any], path: str) -> dict[str, Any]:
        if data.get("multicast_snooping") is None:
            return {}
        snooping = data["multicast_snooping"]
        if isinstance(snooping, bool):
            return {"multicast_snooping": snooping}
        checker.add(f"{path}.multicast_snooping", f"{snooping!r} must be true or false")
        return {}

    def document(self, node: Node) -> dict[str, Any]:
        return {"multicast_snooping": True} if node.multicast_snooping else {}

    def clab_node(self, node: Node, image: str, labels: dict[str, str], warn: Any) -> dict[str, Any] | None:
        problem = _check.ifname_problem(node.name)
        if problem:
            warn(f"nodes.{node.name}", f"containerlab names the host bridge after the node: {problem}")
        else:
            warn(f"nodes.{node.name}",
                 f"containerlab expects the bridge to exist on the host (ip link add {node.name} type bridge)")
        return {"kind": "bridge"}

    def clab_claims(self, clab_kind: object, labels: dict[str, Any], forwarding: bool) -> bool:
        return clab_kind == "bridge"
