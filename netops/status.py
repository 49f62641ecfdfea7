"""What `netops.engine` reports: per-node state and drift (`status`), what a deploy did (`up`). Plain dataclasses; computed by netops.observe
with each node's kind (netops.kinds) saying how its state is read."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .inventory import Inventory, LinkState, NamespaceState

#: every state a node can be reported in (the canvas colours nodes by them; netops.kinds serves them)
NODE_STATES = ("absent", "starting", "running", "degraded", "stopped", "failed")


@dataclass
class NodeStatus:
    kind: str
    state: str  # running | degraded | stopped | absent
    interfaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    leases: list[dict[str, Any]] | None = None
    vm: dict[str, Any] | None = None
    usage: dict[str, int] = field(default_factory=dict)  # the node's cgroup now: memory (bytes), pids
    routing: dict[str, Any] | None = None  # routers with routing: (netops.frr_status.router_status)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "state": self.state, "interfaces": self.interfaces,
                               "usage": self.usage}
        if self.routing is not None:
            out["routing"] = self.routing
        if self.leases is not None:
            out["leases"] = self.leases
        if self.vm is not None:
            out["vm"] = self.vm
        return out


@dataclass
class LabStatus:
    lab: str
    nodes: dict[str, NodeStatus] = field(default_factory=dict)
    drift: list[str] = field(default_factory=list)
    # each link by its document path: {"endpoints": [a, b], "state": "up" | "down" (as the user set it, netops.actions)
    # | "stopped" (an end's node is stopped), "cable": what the kernel shows of it: "up" | "down" | "absent"}
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    stopped: list[str] = field(default_factory=list)  # nodes the user stopped (netops.actions)

    def as_dict(self) -> dict[str, Any]:
        return {"lab": self.lab, "nodes": {n: s.as_dict() for n, s in self.nodes.items()}, "drift": self.drift,
                "links": self.links, "stopped": self.stopped}


@dataclass
class UpResult:
    """What `netops.engine.up` did."""

    lab: str
    steps: list[str] = field(default_factory=list)  # descriptions of the steps applied, in order
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.steps)


@dataclass
class ObserveContext:
    """What a kind's `status()` reads: the lab's inventory, its fabric namespace and the connected interfaces."""

    lab: str
    inv: Inventory
    fabric: NamespaceState | None
    connected: set[tuple[str, str | None]]
    down_ifaces: set[tuple[str, str]] = field(default_factory=set)  # node ends the user's downed links keep down


def iface_dict(link: LinkState) -> dict[str, Any]:
    return {"addresses": link.addresses + link.dynamic_addresses, "mac": link.mac, "up": link.up}
