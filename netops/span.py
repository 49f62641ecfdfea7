"""A lab that spans hosts: which segments cross hosts, and what this host deploys of them (issue 13, part 3).

Input contract (pure data; the web tier builds it, netops never asks a database):

    Span(local="lab1", placement={"r1": "lab1", "h1": "lab1", "h2": "lab2"},
         underlays={"lab1": "100.64.0.1", "lab2": "100.64.0.2"},
         vnis={"br-in": 4242}, mtu=1450, underlay_netns=None)

- `spanning_segments(model, placement)` names the segments whose ports sit on more than one host: a segment node
  (a bridge) by its node name, a direct link between nodes on two hosts by `link:<a>:<ifa>--<b>:<ifb>` (endpoints
  sorted, so the id does not depend on the link's order in the document). The web tier allocates one VNI per id.
- `span_problems(model, span)` are the document errors a placement reveals: an interface MTU above `span.mtu` on a
  spanning segment (VXLAN costs 50 bytes; 1450 fits a 1500 underlay, an operator jumbo underlay raises `mtu`),
  a node placed on an unknown host, a spanning segment without a VNI.
- `tunnels(model, span)` is what this host builds: per spanning segment with a local port, one VXLAN device with a
  static flood list (the other hosts' underlay addresses that have ports on it). netops.vxlan creates them.

Without a Span (None) nothing here runs and a lab deploys exactly as on one host.
"""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any

from . import kinds
from .errors import Problem
from .hosts import check_underlay_address
from .model import Endpoint, Link, LinkConditions, Node, Topology
from .naming import _hash, check_host_name

VXLAN_PORT = 4789
VXLAN_OVERHEAD = 50  # outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14)
DEFAULT_MTU = 1450
VNI_MAX = (1 << 24) - 1
NETNS_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")  # a file name in /run/netns, never . or ..
UNDERLAY_NETNS_ENV = "TOPOLAB_UNDERLAY_NETNS"


def underlay_namespace() -> str | None:
    """The agent's underlay namespace setting (`TOPOLAB_UNDERLAY_NETNS`): where its VXLAN sockets live; unset (a
    real host) is the root namespace. Checked by Span like any other value."""
    return os.environ.get(UNDERLAY_NETNS_ENV) or None


@dataclass(frozen=True)
class Span:
    local: str  # this host's name
    placement: dict[str, str]  # node name -> host name (every non-segment node)
    underlays: dict[str, str]  # host name -> underlay IPv4 address
    vnis: dict[str, int] = field(default_factory=dict)  # segment id -> VNI
    mtu: int = DEFAULT_MTU  # lab-interface MTU on spanning segments
    underlay_netns: str | None = None  # where the VXLAN sockets live (None: the root namespace)

    def __post_init__(self) -> None:
        """Everything that reaches the kernel (underlay addresses, VNIs, MTU, the underlay namespace) is checked
        here; host names only name hosts (tunnel names are hashed), but are checked as names all the same."""
        for host in (self.local, *self.underlays, *self.placement.values()):
            check_host_name(host)
        if self.local not in self.underlays:
            raise ValueError(f"this host {self.local!r} has no underlay address")
        seen: dict[ipaddress.IPv4Address, str] = {}
        for host, addr in self.underlays.items():
            if check_underlay_address(addr) != addr:  # unicast IPv4, as the agent's setting; only its canonical form
                raise ValueError(f"underlay address {addr!r} of {host!r} is not in its canonical form")
            ip = ipaddress.IPv4Address(addr)
            if ip in seen:
                raise ValueError(f"hosts {seen[ip]!r} and {host!r} share the underlay address {addr}")
            seen[ip] = host
        by_vni: dict[int, str] = {}
        for seg, vni in self.vnis.items():
            if not isinstance(vni, int) or isinstance(vni, bool) or not 1 <= vni <= VNI_MAX:
                raise ValueError(f"VNI of {seg!r} must be an integer 1-{VNI_MAX}")
            if vni in by_vni:  # one VNI for two segments would join them into one broadcast domain
                raise ValueError(f"segments {by_vni[vni]!r} and {seg!r} share VNI {vni}")
            by_vni[vni] = seg
        if not isinstance(self.mtu, int) or isinstance(self.mtu, bool) or not 576 <= self.mtu <= 65535 - VXLAN_OVERHEAD:
            raise ValueError(f"span MTU {self.mtu!r} out of range")
        if self.underlay_netns is not None and (
                not isinstance(self.underlay_netns, str) or not NETNS_RE.match(self.underlay_netns)):
            raise ValueError(f"underlay namespace {self.underlay_netns!r} is not a namespace name")

    @classmethod
    def from_json(cls, data: dict[str, Any], local: str, *, underlay_netns: str | None = None) -> Span:
        """A Span from its JSON form (the web tier's `Run.span`: placement, underlays, vnis, mtu) for host `local`;
        the underlay namespace is the agent's setting (`underlay_namespace()`) unless given."""
        if not isinstance(data, dict):
            raise ValueError("a span is an object")
        vnis = data.get("vnis") or {}
        return cls(local=local, placement=dict(data.get("placement") or {}), underlays=dict(data.get("underlays") or {}),
                   vnis={str(k): v for k, v in vnis.items()}, mtu=data.get("mtu") or DEFAULT_MTU,
                   underlay_netns=underlay_netns if underlay_netns is not None else underlay_namespace())

    def as_json(self) -> dict[str, Any]:
        return {"local": self.local, "placement": dict(sorted(self.placement.items())),
                "underlays": dict(sorted(self.underlays.items())), "vnis": dict(sorted(self.vnis.items())),
                "mtu": self.mtu, "underlay_netns": self.underlay_netns}

    def local_nodes(self, model: Topology) -> set[str]:
        """The nodes this host creates: its placed nodes, and every segment node with a port here."""
        mine = {n for n in model.nodes if not _segment(model, n) and self.placement.get(n) == self.local}
        for seg, hosts in _segment_hosts(model, self.placement).items():
            if self.local in hosts:
                mine.add(seg)
        return mine


@dataclass(frozen=True)
class Tunnel:
    """One VXLAN device this host builds for a spanning segment."""

    segment: str  # segment id (a bridge node name or a link:... id)
    vni: int
    ifname: str  # name in the fabric namespace (hashed, 15 bytes at most)
    local: str  # this host's underlay address
    remotes: tuple[str, ...]  # the other hosts' underlay addresses, sorted: the static flood list
    bridge: str | None  # the segment node's name, or None for a direct link (netops builds a link bridge)


def _segment(model: Topology, node: str) -> bool:
    return kinds.get(model.nodes[node].kind).link_end == "segment"


def link_segment_id(link: Link) -> str:
    a, b = sorted((str(link.a), str(link.b)))
    return f"link:{a}--{b}"


def vxlan_ifname(segment: str) -> str:
    return "x" + _hash(f"vxlan:{segment}", 12)


def _segment_hosts(model: Topology, placement: dict[str, str]) -> dict[str, set[str]]:
    """Hosts with a port on each segment node. Segments wired to each other form one broadcast domain, so their
    hosts are joined (each keeps its own VXLAN; a loop-free bridge-to-bridge link stays local)."""
    hosts: dict[str, set[str]] = {n: set() for n in model.nodes if _segment(model, n)}
    for lk in model.links:
        for here, there in ((lk.a, lk.b), (lk.b, lk.a)):
            if here.node in hosts and there.node not in hosts and there.node in placement:
                hosts[here.node].add(placement[there.node])
    return hosts


def _direct_cross(model: Topology, placement: dict[str, str]) -> list[Link]:
    out = []
    for lk in model.links:
        if _segment(model, lk.a.node) or _segment(model, lk.b.node):
            continue
        ha, hb = placement.get(lk.a.node), placement.get(lk.b.node)
        if ha is not None and hb is not None and ha != hb:
            out.append(lk)
    return out


def spanning_segments(model: Topology, placement: dict[str, str]) -> list[str]:
    """Ids of the segments whose ports sit on several hosts, in a stable order (bridges, then links)."""
    bridges = sorted(seg for seg, hosts in _segment_hosts(model, placement).items() if len(hosts) > 1)
    links = sorted(link_segment_id(lk) for lk in _direct_cross(model, placement))
    return bridges + links


def _ports(model: Topology, segment: str) -> list[Endpoint]:
    """The node interfaces (not segment ends) on a segment."""
    out: list[Endpoint] = []
    for lk in model.links:
        if segment.startswith("link:"):
            if link_segment_id(lk) == segment:
                out += [lk.a, lk.b]
            continue
        for here, there in ((lk.a, lk.b), (lk.b, lk.a)):
            if here.node == segment and not _segment(model, there.node) and there.interface:
                out.append(there)
    return out


def span_problems(model: Topology, span: Span) -> list[Problem]:
    """What cannot deploy with this placement, each at its document path."""
    problems: list[Problem] = []
    for name in sorted(model.nodes):
        if _segment(model, name):
            continue
        host = span.placement.get(name)
        if host is None:
            problems.append(Problem(f"nodes.{name}.host", "node is not placed on any host"))
        elif host not in span.underlays:
            problems.append(Problem(f"nodes.{name}.host", f"host {host!r} is not a known lab host"))
    seg_hosts = _segment_hosts(model, span.placement)
    for name in sorted(seg_hosts):
        if len(seg_hosts[name]) > 1 and kinds.get(model.nodes[name].kind).uplink:
            problems.append(Problem(f"nodes.{name}", "an uplink cannot span hosts (each host would bridge its own "
                                                     "network into it); place the nodes on it on one host"))
    for lk in model.links:
        if _segment(model, lk.a.node) and _segment(model, lk.b.node) and (
                seg_hosts[lk.a.node] or seg_hosts[lk.b.node]) and not seg_hosts[lk.a.node] & seg_hosts[lk.b.node]:
            problems.append(Problem(lk.path, "a link between two switches needs a host with ports on both"))
    for seg in spanning_segments(model, span.placement):
        if seg not in span.vnis:
            problems.append(Problem(_segment_path(model, seg), "segment spans hosts but has no VNI"))
        for ep in _ports(model, seg):
            iface = model.nodes[ep.node].interfaces.get(ep.interface or "")
            if iface is not None and iface.mtu is not None and iface.mtu > span.mtu:
                problems.append(Problem(
                    f"nodes.{ep.node}.interfaces.{ep.interface}.mtu",
                    f"MTU {iface.mtu} does not fit the VXLAN tunnel between hosts (at most {span.mtu}; "
                    f"the operator may declare a jumbo underlay)"))
    return problems


def _segment_path(model: Topology, seg: str) -> str:
    if not seg.startswith("link:"):
        return f"nodes.{seg}"
    for lk in model.links:
        if link_segment_id(lk) == seg:
            return lk.path
    return "links"


def tunnels(model: Topology, span: Span) -> list[Tunnel]:
    """The VXLAN devices this host builds. Raises KeyError when a spanning segment has no VNI (span_problems says
    so first)."""
    out: list[Tunnel] = []
    local_ip = span.underlays[span.local]
    seg_hosts = _segment_hosts(model, span.placement)
    for seg in spanning_segments(model, span.placement):
        if seg.startswith("link:"):
            lk = next(lk for lk in model.links if link_segment_id(lk) == seg)
            hosts = {span.placement[lk.a.node], span.placement[lk.b.node]}
            bridge = None
        else:
            hosts, bridge = seg_hosts[seg], seg
        if span.local not in hosts:
            continue
        remotes = tuple(sorted({span.underlays[h] for h in hosts if h != span.local},
                               key=ipaddress.IPv4Address))
        out.append(Tunnel(seg, span.vnis[seg], vxlan_ifname(seg), local_ip, remotes, bridge))
    return out


def spanning_ports(model: Topology, span: Span) -> dict[tuple[str, str], int]:
    """(node, interface) of this host's lab interfaces on spanning segments -> the MTU they get (span.mtu unless the
    document asks less)."""
    out: dict[tuple[str, str], int] = {}
    for seg in spanning_segments(model, span.placement):
        for ep in _ports(model, seg):
            if span.placement.get(ep.node) != span.local or not ep.interface:
                continue
            iface = model.nodes[ep.node].interfaces.get(ep.interface)
            given = iface.mtu if iface is not None else None
            out[(ep.node, ep.interface)] = min(given, span.mtu) if given else span.mtu
    return out


def _switch_kind() -> str:
    """The kind of the link bridge a direct link across hosts gets on each host: the plain switch (a segment that
    is no uplink), asked of the registry, never named."""
    return next(k.name for k in kinds.all_kinds() if k.link_end == "segment" and not k.uplink and not k.namespace)


def _builds_link(model: Topology, span: Span, lk: Link, seg_hosts: dict[str, set[str]]) -> bool:
    """Whether this host builds a link between two of its local nodes. A link joining two segments is built on
    one host only (the first, by name, that has both): built on each, two VXLANs would close a loop."""
    if not (_segment(model, lk.a.node) and _segment(model, lk.b.node)):
        return True
    both = seg_hosts.get(lk.a.node, set()) & seg_hosts.get(lk.b.node, set())
    return bool(both) and min(both) == span.local


def local_topology(model: Topology, span: Span) -> Topology:
    """The part of `model` this host builds, as a Topology of its own that netops.plan plans as usual:

    - its placed nodes, and every segment with a port here (a spanning one gets its VXLAN from netops.vxlan);
    - the links between those (a segment-to-segment link on one host only, see `_builds_link`);
    - a direct link to a node on another host becomes a link from the local end to a link bridge, a switch node
      named by the segment id (`link:a:x--b:y`, which no document node can be called), where the tunnel is
      attached; its conditions are applied on the host of the link's first end only, both directions there as
      for any link to a switch (so a delay is counted once each way);
    - the lab interfaces on spanning segments get the span's MTU (spanning_ports).
    Link indexes (and so their paths) stay those of the document."""
    mine = span.local_nodes(model)
    seg_hosts = _segment_hosts(model, span.placement)
    mtus = spanning_ports(model, span)
    nodes: dict[str, Node] = {}
    for name in model.nodes:
        if name not in mine:
            continue
        node = model.nodes[name]
        if any((name, i) in mtus for i in node.interfaces):
            node = replace(node, interfaces={i: replace(f, mtu=mtus.get((name, i), f.mtu))
                                             for i, f in node.interfaces.items()})
        nodes[name] = node
    cross = {lk.index for lk in _direct_cross(model, span.placement)}
    links: list[Link] = []
    for lk in model.links:
        if lk.a.node in mine and lk.b.node in mine:
            if _builds_link(model, span, lk, seg_hosts):
                links.append(lk)
            continue
        if lk.index not in cross:
            continue
        here = lk.a if lk.a.node in mine else lk.b if lk.b.node in mine else None
        if here is None:
            continue
        seg = link_segment_id(lk)
        nodes[seg] = Node(name=seg, kind=_switch_kind())
        shaped = span.placement.get(lk.a.node) == span.local
        links.append(Link(lk.index, here, Endpoint(seg), lk.conditions if shaped else LinkConditions(), lk.ui))
    return Topology(model.name, nodes, links, model.version, model.document, model.description, model.ui,
                    model.checks)


def link_bridges(model: Topology, span: Span) -> set[str]:
    """Names of the link bridge nodes `local_topology` adds (segment ids of direct links across hosts)."""
    return {link_segment_id(lk) for lk in _direct_cross(model, span.placement)
            if span.local in (span.placement.get(lk.a.node), span.placement.get(lk.b.node))}


def link_hosts(model: Topology, placement: dict[str, str], link: Link) -> set[str]:
    """The hosts whose part (`local_topology`) holds `link`: both ends' hosts for a direct link across hosts, the
    host of its node end for a link to a segment, and for a segment-to-segment link the one host that builds it
    (`_builds_link`). Empty when no host holds it (an end placed nowhere)."""
    seg_hosts = _segment_hosts(model, placement)

    def hosts_of(node: str) -> set[str]:
        if _segment(model, node):
            return set(seg_hosts.get(node, set()))
        return {placement[node]} if node in placement else set()

    a, b = hosts_of(link.a.node), hosts_of(link.b.node)
    if _segment(model, link.a.node) and _segment(model, link.b.node):
        both = a & b
        return {min(both)} if both else set()
    if _segment(model, link.a.node) or _segment(model, link.b.node):
        return a & b
    return a | b if a and b else set()


def local_link_keys(model: Topology, span: Span, keys: set[str]) -> dict[str, str]:
    """{document key: key in this host's part} (netops.wiring.link_key) of the document's links whose keys are
    `keys` and that this host holds: a direct link across hosts is the local end's link to its link bridge here,
    so an action that sets it down names that one; a link this host does not hold is left out."""
    from .wiring import link_key

    by_index = {lk.index: lk for lk in model.links}
    return {link_key(by_index[lk.index]): link_key(lk) for lk in local_topology(model, span).links
            if lk.index in by_index and link_key(by_index[lk.index]) in keys}
