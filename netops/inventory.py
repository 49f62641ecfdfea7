"""The plain data the planner works with: what exists for a lab (`Inventory`, observed by netops.observe) and what
to do about it (`Step`, executed by netops.engine). Pure dataclasses, no I/O."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model import Topology


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
    static_routes: set[tuple[str, str | None]] = field(default_factory=set)  # those netops added (proto static)
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
    # the node each live process belongs to (netops.actions.process_node: its cgroup's node, or for processes
    # of the fabric the node its role names; None for lab-level ones such as a capture on a bridge)
    process_nodes: dict[str, str | None] = field(default_factory=dict)
    process_argv: dict[str, tuple[str, ...]] = field(default_factory=dict)  # role -> its command line
    # what the lab's user asked of the running lab (netops.actions, stored in runtime.json): nodes stopped, links
    # (by netops.wiring.link_key) set down, and the conditions last applied to each link (None: not recorded)
    stopped: set[str] = field(default_factory=set)
    links_down: set[str] = field(default_factory=set)
    conditions_applied: dict[str, Any] | None = None

    def ns(self, name: str) -> NamespaceState | None:
        return self.namespaces.get(name)


@dataclass
class PlanContext:
    """What the planner knows while it plans one lab (netops.plan builds it; kinds and wiring read it)."""

    topology: Topology
    lab: str
    inv: Inventory
    delay_relay: bool
    fabric_ns: str
    fabric_links: dict[str, LinkState]  # what the fabric namespace holds now
    ns_of: dict[str, str]  # node -> its namespace, for kinds with one
    fresh_nodes: set[str]  # nodes built from nothing (or rebuilt)
    present_fabric: set[str]  # fabric links that exist and are kept
    connected: set[tuple[str, str | None]]  # (node, iface) ends of links
    fresh_ifaces: set[tuple[str, str]] = field(default_factory=set)  # node ends of links created by this plan
    stopped: set[str] = field(default_factory=set)  # nodes the user stopped: nothing of theirs is built
    down_ifaces: set[tuple[str, str]] = field(default_factory=set)  # node interfaces kept down (a downed ns-ns link)
    gone_ifaces: set[tuple[str, str]] = field(default_factory=set)  # node ends removed with their link's old shape
