"""The validated topology model: plain dataclasses that everything below the parser works with.

`netops.topology.parse_document()` turns a YAML/JSON document (DESIGN.md, "The topology document") into a
`Topology`; every value here has already been validated, so code that consumes it never re-checks user text.
The original document is kept in `Topology.document` (normalised, `ui` included) for export and diffing.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

@dataclass(frozen=True)
class DhcpServer:
    """dnsmasq serving one interface's subnet: addresses `start`..`end`, gateway = the interface's own address."""

    start: ipaddress.IPv4Address
    end: ipaddress.IPv4Address
    lease_time: int = 3600  # seconds
    gateway: ipaddress.IPv4Address | None = None  # default: the interface address
    dns: tuple[ipaddress.IPv4Address, ...] = ()


@dataclass(frozen=True)
class Interface:
    name: str  # the name inside the node, as the user gave it (eth0); at most 15 bytes
    addresses: tuple[IPInterface, ...] = ()  # static addresses
    dhcp: bool = False  # `address: dhcp` -> a real DHCP client runs on it
    mac: str | None = None  # lower-case "52:54:00:aa:bb:cc"
    mtu: int | None = None
    dhcp_server: DhcpServer | None = None


@dataclass(frozen=True)
class Route:
    to: IPNetwork  # `default` is 0.0.0.0/0 (or ::/0 when `via` is IPv6)
    via: IPAddress


@dataclass(frozen=True)
class Nat:
    masquerade: tuple[str, ...] = ()  # interface names of the node; SNAT of everything leaving them


@dataclass(frozen=True)
class NodeLimits:
    """What a node's cgroup may use at most, lowering the operator's defaults (None: the default)."""

    memory: int | None = None  # bytes
    pids: int | None = None
    cpu: float | None = None  # CPUs


@dataclass(frozen=True)
class Node:
    name: str
    kind: str  # a kind of the registry (netops.kinds)
    interfaces: dict[str, Interface] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    nat: Nat | None = None  # routers only
    # vm
    image: str | None = None  # a name in the image library, never a path
    memory: int | None = None  # MiB
    cpus: int | None = None
    # external
    bridge: str | None = None  # an existing bridge in the host's root namespace
    nat_external: bool = False  # `nat: true` on an external: host masquerade through the lab's own nft table
    address: IPInterface | None = None  # external with nat: the gateway address on the host side of the door
    # bridge: IGMP/MLD snooping (off by default: a lab seldom has a querier; see engine.do_bridge_create)
    multicast_snooping: bool = False
    # router: OSPF/BGP/raw FRR text (a netops.routing.Routing; FRR runs in the namespace when present)
    routing: Any = None
    ui: dict[str, Any] | None = None  # canvas data; ignored by netops
    description: str | None = None
    host: str | None = None  # the lab host it must run on (netops.placement); None: placed when the lab deploys
    limits: NodeLimits | None = None  # hosts, routers, VMs: the node's cgroup (netops.cell)
    # values of the kind's plain settings (netops.kinds `Kind.settings`), by key; a new kind's options live here
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Endpoint:
    node: str
    interface: str | None = None  # None for bridges and externals

    def __str__(self) -> str:
        return f"{self.node}:{self.interface}" if self.interface else self.node


@dataclass(frozen=True)
class LinkConditions:
    delay_ms: float | None = None
    jitter_ms: float | None = None
    loss_pct: float | None = None
    rate_bps: int | None = None  # bits per second

    def any(self) -> bool:
        return any(v is not None for v in (self.delay_ms, self.jitter_ms, self.loss_pct, self.rate_bps))


@dataclass(frozen=True)
class Link:
    index: int  # position in `links`, for error paths (`links.3`)
    a: Endpoint
    b: Endpoint
    conditions: LinkConditions = LinkConditions()
    ui: dict[str, Any] | None = None  # canvas data; ignored by netops

    @property
    def path(self) -> str:
        return f"links.{self.index}"


@dataclass
class Topology:
    name: str
    nodes: dict[str, Node]
    links: list[Link]
    version: int = 1
    document: dict[str, Any] = field(default_factory=dict)  # normalised document, for export and diffing
    description: str | None = None
    ui: dict[str, Any] | None = None  # canvas data for the whole lab; ignored by netops
    checks: tuple[Any, ...] = ()  # netops.labchecks.Check: what "working" means for this lab

    def node(self, name: str) -> Node:
        return self.nodes[name]

    @cached_property
    def _ports(self) -> dict[str, dict[str, int]]:
        """node -> {the other end of each of its links, as text: its rank in name order} (computed once; a
        Topology's links do not change after the checker made it)."""
        ends: dict[str, list[str]] = {}
        for lk in self.links:
            ends.setdefault(lk.a.node, []).append(str(lk.b))
            ends.setdefault(lk.b.node, []).append(str(lk.a))
        return {n: {e: i for i, e in enumerate(sorted(es))} for n, es in ends.items()}

    def port_count(self, node: str) -> int:
        """How many links end at `node`."""
        return len(self._ports.get(node, {}))

    def port_rank(self, node: str, peer: Endpoint) -> tuple[int, int]:
        """(rank of the link to `peer` among `node`'s links in name order, how many links `node` has)."""
        ports = self._ports.get(node, {})
        return ports.get(str(peer), 0), len(ports)

    def links_of(self, node: str) -> list[Link]:
        return [lk for lk in self.links if lk.a.node == node or lk.b.node == node]

    def peer_of(self, node: str, interface: str) -> Endpoint | None:
        """What `node:interface` is wired to, or None when unconnected."""
        for lk in self.links:
            if lk.a == Endpoint(node, interface):
                return lk.b
            if lk.b == Endpoint(node, interface):
                return lk.a
        return None
