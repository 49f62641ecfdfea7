"""The `routing:` key of a router (OSPFv2, OSPFv3, BGP and raw FRR text): parse, validate, model, normalise.

A router may carry::

    routing:
      loopback: 10.255.0.1/32            # address(es) FRR's zebra puts on `lo`; `lo` may then join an area
      ospf:                              # OSPFv2
        router_id: 10.255.0.1            # optional: default the loopback, else the highest IPv4 address
        areas: {0: {interfaces: [eth0, eth1], passive: [eth2]}}
        cost: {eth1: 10}
        hello: 1                         # optional interval (s) on every OSPF interface; dead > hello
        dead: 4
        redistribute: [connected, static, bgp]
      ospf6: {...}                       # OSPFv3, the same keys; its interfaces need an IPv6 address
      bgp:
        asn: 65001
        router_id: 10.255.0.1
        neighbors: [{address: 10.0.12.2, asn: 65002}, {interface: eth1, asn: external}]
        networks: [10.1.0.0/24]
        redistribute: [connected, static, ospf]
      frr_config: |                      # raw FRR text appended to the generated frr.conf
        ...

`check_routing()` is called by netops.topology's checker for a router (the checker collects problems with dotted
paths); `check_lab()` checks what spans routers (router ids that collide). `to_document()` gives the normalised
form. Nothing here does I/O; netops.frr turns a `Routing` into FRR's configuration.

`static` in `redistribute` means the node's `routes:` (installed by the engine, so FRR sees them as kernel routes).
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .model import IPInterface, IPNetwork, Node

if TYPE_CHECKING:
    from .check import Checker as _Checker

#: a static route of FRR's (staticd's) at the start of a frr_config line
STATIC_ROUTE_RE = re.compile(r"^[ \t]*ip(?:v6)?[ \t]+route[ \t]", re.MULTILINE)
ROUTING_KEYS = ("loopback", "ospf", "ospf6", "bgp", "frr_config")
OSPF_KEYS = ("router_id", "areas", "cost", "hello", "dead", "redistribute")
AREA_KEYS = ("interfaces", "passive")
BGP_KEYS = ("asn", "router_id", "neighbors", "networks", "redistribute")
NEIGHBOR_KEYS = ("address", "interface", "asn", "description", "multihop", "update_source")
OSPF_REDISTRIBUTE = ("connected", "static", "bgp")
BGP_REDISTRIBUTE = ("connected", "static", "ospf")
ASN_RANGE = (1, 4294967295)
#: AS_TRANS (RFC 6793) and the last ASN of each range (RFC 7300) cannot be a router's ASN
RESERVED_ASNS = {23456: "AS_TRANS (RFC 6793)", 65535: "reserved (RFC 7300)", 4294967295: "reserved (RFC 7300)"}
AREA_MAX = 4294967295
COST_RANGE = (1, 65535)
INTERVAL_RANGE = (1, 65535)
MULTIHOP_RANGE = (1, 255)
MAX_NEIGHBORS = 256
MAX_NETWORKS = 1024
MAX_DESCRIPTION = 80
FRR_CONFIG_MAX_BYTES = 64 * 1024
#: first words refused at the start of a frr_config line: they leave configuration mode or act outside it (files,
#: sessions, the terminal), so they could break out of the text's place in frr.conf when vtysh applies it
FRR_CONFIG_REFUSED = ("end", "do", "write", "copy", "configure", "enable", "disable", "quit", "start-shell",
                      "terminal", "clear", "exec-timeout")
_DOTTED_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}\Z")
_DESCRIPTION_RE = re.compile(r"^[ -~]{1,80}\Z")  # printable ASCII, one line


# ------------------------------------------------------------------------------------------------ model


@dataclass(frozen=True)
class Area:
    id: int | str  # 0..4294967295, or dotted ('0.0.0.0') as the user wrote it
    interfaces: tuple[str, ...] = ()
    passive: tuple[str, ...] = ()

    @property
    def dotted(self) -> str:
        return self.id if isinstance(self.id, str) else str(ipaddress.IPv4Address(self.id))


@dataclass(frozen=True)
class Ospf:
    router_id: ipaddress.IPv4Address | None  # as given; see effective_router_id()
    areas: tuple[Area, ...] = ()
    cost: dict[str, int] = field(default_factory=dict)
    hello: int | None = None
    dead: int | None = None
    redistribute: tuple[str, ...] = ()

    def interfaces(self) -> dict[str, Area]:
        return {name: area for area in self.areas for name in (*area.interfaces, *area.passive)}


@dataclass(frozen=True)
class Neighbor:
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    interface: str | None = None  # BGP unnumbered (IPv6 link-local)
    asn: int | str = 0  # a number, or "internal"/"external"
    description: str | None = None
    multihop: int | None = None
    update_source: str | None = None

    @property
    def peer(self) -> str:
        return str(self.address) if self.address is not None else str(self.interface)


@dataclass(frozen=True)
class Bgp:
    asn: int
    router_id: ipaddress.IPv4Address | None = None
    neighbors: tuple[Neighbor, ...] = ()
    networks: tuple[IPNetwork, ...] = ()
    redistribute: tuple[str, ...] = ()


@dataclass(frozen=True)
class Routing:
    loopback: tuple[IPInterface, ...] = ()
    ospf: Ospf | None = None
    ospf6: Ospf | None = None
    bgp: Bgp | None = None
    frr_config: str | None = None

    def daemons(self) -> tuple[str, ...]:
        """The FRR daemons this router needs, zebra first; staticd when `frr_config` has static routes (`ip route`,
        `ipv6 route`: FRR 8.4 hands them to staticd, and without it vtysh drops them without failing)."""
        static = self.frr_config is not None and STATIC_ROUTE_RE.search(self.frr_config) is not None
        return ("zebra",) + tuple(d for d, on in (("ospfd", self.ospf is not None), ("ospf6d", self.ospf6 is not None),
                                                  ("bgpd", self.bgp is not None), ("staticd", static)) if on)

    @property
    def needs_ipv6(self) -> bool:
        """IPv6 must stay on in the namespace (OSPFv3 and BGP unnumbered run on link-local addresses)."""
        return (self.ospf6 is not None or any(a.version == 6 for a in self.loopback)
                or (self.bgp is not None and any(n.interface or (n.address and n.address.version == 6)
                                                 for n in self.bgp.neighbors)))


def effective_router_id(node: Node, protocol: Ospf | Bgp | None) -> ipaddress.IPv4Address | None:
    """The router id FRR is given: the protocol's own, else the first IPv4 loopback, else the node's highest
    IPv4 interface address (what FRR would pick itself), else None."""
    if protocol is not None and protocol.router_id is not None:
        return protocol.router_id
    routing: Routing | None = node.routing
    if routing is not None:
        for addr in routing.loopback:
            if addr.version == 4:
                return addr.ip
    v4 = [a.ip for i in node.interfaces.values() for a in i.addresses if a.version == 4]
    return max(v4) if v4 else None


# ------------------------------------------------------------------------------------------------ checking


def _describe(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "empty" if value is None else repr(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Routing:
    """Checks one router's `routing:` with the document checker `c` (which records problems)."""

    def __init__(self, c: _Checker, node: str, path: str):
        self.c = c
        self.node = node
        self.path = path
        declared = c.interfaces.get(node, {})
        self.declared = declared
        self.ifaces = {n: i for n, i in declared.items() if i is not None}
        self.loopback: tuple[IPInterface, ...] = ()

    def check(self, raw: object) -> Routing | None:
        data = self.c.mapping(raw, self.path, "ospf, ospf6, bgp, frr_config")
        if data is None:
            return None
        before = len(self.c.problems)
        self.c.unknown_keys(data, ROUTING_KEYS, self.path)
        if data.get("loopback") is not None:
            self.loopback = self.check_loopback(data["loopback"], f"{self.path}.loopback")
        ospf = self.check_ospf(data["ospf"], f"{self.path}.ospf", 4) if data.get("ospf") is not None else None
        ospf6 = self.check_ospf(data["ospf6"], f"{self.path}.ospf6", 6) if data.get("ospf6") is not None else None
        bgp = self.check_bgp(data["bgp"], f"{self.path}.bgp") if data.get("bgp") is not None else None
        text = check_frr_config(self.c, data["frr_config"], f"{self.path}.frr_config") \
            if data.get("frr_config") is not None else None
        if len(self.c.problems) != before:
            return None
        if not (ospf or ospf6 or bgp or text is not None or self.loopback):
            self.c.add(self.path, "is empty: give ospf, ospf6, bgp or frr_config (or leave routing out)")
            return None
        return Routing(loopback=self.loopback, ospf=ospf, ospf6=ospf6, bgp=bgp, frr_config=text)

    # ---- helpers

    def interface_names(self, raw: object, path: str, *, allow_lo: bool = False) -> list[str]:
        if not isinstance(raw, list):
            self.c.add(path, f"must be a list of {self.node}'s interface names, not {_describe(raw)}")
            return []
        names: list[str] = []
        for i, name in enumerate(raw):
            if allow_lo and name == "lo" and self.loopback:
                pass
            elif not isinstance(name, str) or name not in self.declared:
                hint = " (give routing.loopback to use lo)" if name == "lo" else ""
                self.c.add(f"{path}.{i}", f"{name!r} is not an interface of {self.node}{hint}")
                continue
            if name in names:
                self.c.add(f"{path}.{i}", f"{name!r} is listed twice")
                continue
            names.append(name)
        return names

    def router_id(self, raw: object, path: str) -> ipaddress.IPv4Address | None:
        try:
            rid = ipaddress.IPv4Address(raw) if isinstance(raw, str) and _DOTTED_RE.match(raw) else None
        except ValueError:
            rid = None
        if rid is None or rid.is_unspecified or rid.is_multicast or int(rid) == 0xFFFFFFFF:
            self.c.add(path, f"{raw!r} is not a router id (a dotted IPv4 address like '10.255.0.1', not 0.0.0.0)")
            return None
        return rid

    def keywords(self, raw: object, path: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        if not isinstance(raw, list):
            self.c.add(path, f"must be a list of {', '.join(allowed)}, not {_describe(raw)}")
            return ()
        out: list[str] = []
        for i, item in enumerate(raw):
            if item not in allowed:
                self.c.add(f"{path}.{i}", f"{item!r} is not one of {', '.join(allowed)}")
            elif item in out:
                self.c.add(f"{path}.{i}", f"{item!r} is listed twice")
            else:
                out.append(item)
        return tuple(out)

    def check_loopback(self, raw: object, path: str) -> tuple[IPInterface, ...]:
        from .check_iface import parse_interface_address as _parse_interface_address

        items = [(path, raw)] if isinstance(raw, str) else [(f"{path}.{i}", v) for i, v in enumerate(raw)] \
            if isinstance(raw, list) and raw else None
        if items is None:
            self.c.add(path, f"{raw!r} must be an address like '10.255.0.1/32' or a list of them")
            return ()
        out: list[IPInterface] = []
        for item_path, value in items:
            try:
                addr = _parse_interface_address(value)
            except ValueError as exc:
                self.c.add(item_path, str(exc))
                continue
            if addr.network.prefixlen != addr.max_prefixlen:
                self.c.add(item_path, f"{value!r}: a loopback address is a host address (/32 or /128)")
                continue
            out.append(addr)
        return tuple(out)

    # ---- OSPF

    def check_ospf(self, raw: object, path: str, version: int) -> Ospf | None:
        what = "OSPFv2" if version == 4 else "OSPFv3"
        data = self.c.mapping(raw, path, "router_id, areas, cost, hello, dead, redistribute")
        if data is None:
            return None
        before = len(self.c.problems)
        self.c.unknown_keys(data, OSPF_KEYS, path)
        rid = self.router_id(data["router_id"], f"{path}.router_id") if data.get("router_id") is not None else None
        areas: list[Area] = []
        seen_area: dict[str, str] = {}
        in_area: dict[str, str] = {}
        raw_areas = data.get("areas")
        if raw_areas is None or raw_areas == {}:
            self.c.add(f"{path}.areas", "is required: at least one area with interfaces, like {0: {interfaces: [eth0]}}")
        elif self.c.mapping(raw_areas, f"{path}.areas", "area id -> {interfaces, passive}") is not None:
            for key, body in raw_areas.items():
                apath = f"{path}.areas.{key}"
                area_id = self.area_id(key, apath)
                if area_id is None:
                    continue
                dotted = area_id if isinstance(area_id, str) else str(ipaddress.IPv4Address(area_id))
                if dotted in seen_area:
                    self.c.add(apath, f"area {key!r} is the same area as {seen_area[dotted]}")
                    continue
                seen_area[dotted] = apath
                area = self.check_area(area_id, body, apath, version, in_area)
                if area is not None:
                    areas.append(area)
        cost: dict[str, int] = {}
        if data.get("cost") is not None and self.c.mapping(data["cost"], f"{path}.cost", "interface -> cost"):
            for name, value in data["cost"].items():
                cpath = f"{path}.cost.{name}"
                if name not in in_area:
                    self.c.add(cpath, f"{name!r} is not an {what} interface of {self.node} (put it in an area)")
                elif (n := self.c.int_in(value, cpath, COST_RANGE)) is not None:
                    cost[name] = n
        hello = self.c.int_in(data["hello"], f"{path}.hello", INTERVAL_RANGE, " s") \
            if data.get("hello") is not None else None
        dead = self.c.int_in(data["dead"], f"{path}.dead", INTERVAL_RANGE, " s") \
            if data.get("dead") is not None else None
        if dead is not None and dead <= (hello or 10):
            self.c.add(f"{path}.dead", f"{dead!r} must be longer than the hello interval ({hello or 10} s)")
        redistribute = self.keywords(data["redistribute"], f"{path}.redistribute", OSPF_REDISTRIBUTE) \
            if data.get("redistribute") is not None else ()
        if rid is None and len(self.c.problems) == before:
            v4 = [a for a in self.loopback if a.version == 4] or \
                [a for i in self.ifaces.values() for a in i.addresses if a.version == 4]
            if not v4:
                self.c.add(f"{path}.router_id", f"is required: {self.node} has no IPv4 address to derive one from")
        if len(self.c.problems) != before:
            return None
        return Ospf(router_id=rid, areas=tuple(areas), cost=cost, hello=hello, dead=dead,
                    redistribute=redistribute)

    def area_id(self, key: object, path: str) -> int | str | None:
        if _is_int(key) and 0 <= key <= AREA_MAX:  # type: ignore[operator]
            return key  # type: ignore[return-value]
        if isinstance(key, str) and key.isascii() and key.isdigit() and int(key) <= AREA_MAX:
            return int(key)
        if isinstance(key, str) and _DOTTED_RE.match(key):
            try:
                return str(ipaddress.IPv4Address(key))
            except ValueError:
                pass
        self.c.add(path, f"{key!r} is not an area id (0 to {AREA_MAX}, or dotted like '0.0.0.1')")
        return None

    def check_area(self, area_id: int | str, raw: object, path: str, version: int,
                   in_area: dict[str, str]) -> Area | None:
        data = self.c.mapping(raw, path, "interfaces, passive")
        if data is None:
            return None
        self.c.unknown_keys(data, AREA_KEYS, path)
        lists: dict[str, list[str]] = {}
        for key in AREA_KEYS:
            lists[key] = self.interface_names(data[key], f"{path}.{key}", allow_lo=True) \
                if data.get(key) is not None else []
        if not lists["interfaces"] and not lists["passive"]:
            self.c.add(path, "needs interfaces (or passive interfaces)")
            return None
        for key, names in lists.items():
            for name in names:
                ipath = f"{path}.{key}.{(data.get(key) or []).index(name)}"
                if name in in_area:
                    self.c.add(ipath, f"{name!r} is already in {in_area[name]}")
                    continue
                in_area[name] = path
                if name == "lo":
                    addrs = [a for a in self.loopback if a.version == version]
                    if not addrs:
                        self.c.add(ipath, f"lo has no IPv{version} loopback address (routing.loopback)")
                    continue
                iface = self.ifaces.get(name)
                if iface is None or iface.dhcp:
                    continue  # an invalid interface is reported already; a DHCP address is one
                if not any(a.version == version for a in iface.addresses):
                    self.c.add(ipath, f"{name!r} has no IPv{version} address, so OSPF{'v3' if version == 6 else ''} "
                                      "cannot run on it")
        return Area(id=area_id, interfaces=tuple(lists["interfaces"]), passive=tuple(lists["passive"]))

    # ---- BGP

    def check_bgp(self, raw: object, path: str) -> Bgp | None:
        data = self.c.mapping(raw, path, "asn, router_id, neighbors, networks, redistribute")
        if data is None:
            return None
        before = len(self.c.problems)
        self.c.unknown_keys(data, BGP_KEYS, path)
        asn = check_asn(self.c, data.get("asn"), f"{path}.asn", required=True)
        rid = self.router_id(data["router_id"], f"{path}.router_id") if data.get("router_id") is not None else None
        neighbors: list[Neighbor] = []
        raw_n = data.get("neighbors")
        if raw_n is not None:
            if not isinstance(raw_n, list) or len(raw_n) > MAX_NEIGHBORS:
                self.c.add(f"{path}.neighbors", f"must be a list of at most {MAX_NEIGHBORS} neighbors")
            else:
                peers: dict[str, str] = {}
                for i, item in enumerate(raw_n):
                    npath = f"{path}.neighbors.{i}"
                    n = self.check_neighbor(item, npath, asn)
                    if n is None:
                        continue
                    if n.peer in peers:
                        self.c.add(npath, f"{n.peer!r} is already a neighbor ({peers[n.peer]})")
                        continue
                    peers[n.peer] = npath
                    neighbors.append(n)
        networks: list[IPNetwork] = []
        if data.get("networks") is not None:
            if not isinstance(data["networks"], list) or len(data["networks"]) > MAX_NETWORKS:
                self.c.add(f"{path}.networks", f"must be a list of at most {MAX_NETWORKS} networks like '10.1.0.0/24'")
            else:
                for i, value in enumerate(data["networks"]):
                    net = self.c.route_network(value, f"{path}.networks.{i}")
                    if net is not None and net in networks:
                        self.c.add(f"{path}.networks.{i}", f"{value!r} is listed twice")
                    elif net is not None:
                        networks.append(net)
        redistribute = self.keywords(data["redistribute"], f"{path}.redistribute", BGP_REDISTRIBUTE) \
            if data.get("redistribute") is not None else ()
        if rid is None and len(self.c.problems) == before:
            v4 = [a for a in self.loopback if a.version == 4] or \
                [a for i in self.ifaces.values() for a in i.addresses if a.version == 4]
            if not v4:
                self.c.add(f"{path}.router_id", f"is required: {self.node} has no IPv4 address to derive one from")
        if len(self.c.problems) != before or asn is None:
            return None
        return Bgp(asn=asn, router_id=rid, neighbors=tuple(neighbors), networks=tuple(networks),
                   redistribute=redistribute)

    def check_neighbor(self, raw: object, path: str, own_asn: int | None) -> Neighbor | None:
        from .check_iface import parse_ip as _parse_ip

        data = self.c.mapping(raw, path, "address or interface, asn")
        if data is None:
            return None
        before = len(self.c.problems)
        self.c.unknown_keys(data, NEIGHBOR_KEYS, path)
        address = interface = None
        if (data.get("address") is None) == (data.get("interface") is None):
            self.c.add(path, "needs either address (the peer's IP) or interface (BGP unnumbered), not both")
        elif data.get("address") is not None:
            try:
                address = _parse_ip(data["address"], "an IP address (the peer's)")
            except ValueError as exc:
                self.c.add(f"{path}.address", str(exc))
        else:
            name = data["interface"]
            if not isinstance(name, str) or name not in self.declared:
                self.c.add(f"{path}.interface", f"{name!r} is not an interface of {self.node}")
            else:
                interface = name
        raw_asn = data.get("asn")
        asn: int | str | None
        if raw_asn in ("internal", "external"):
            asn = raw_asn
        else:
            asn = check_asn(self.c, raw_asn, f"{path}.asn", required=True, what="the peer's ASN, or internal/external")
        description = data.get("description")
        if description is not None and (not isinstance(description, str) or not _DESCRIPTION_RE.match(description)):
            self.c.add(f"{path}.description", f"must be one line of printable ASCII, at most {MAX_DESCRIPTION} characters")
        multihop = self.c.int_in(data["multihop"], f"{path}.multihop", MULTIHOP_RANGE) \
            if data.get("multihop") is not None else None
        source = data.get("update_source")
        if source is not None and not (isinstance(source, str) and (source in self.declared or
                                                                     (source == "lo" and self.loopback))):
            self.c.add(f"{path}.update_source", f"{source!r} is not an interface of {self.node}"
                                                f"{' (give routing.loopback to use lo)' if source == 'lo' else ''}")
        if address is not None and multihop is None and source is None and len(self.c.problems) == before:
            self.check_connected(address, f"{path}.address")
        if len(self.c.problems) != before or asn is None:
            return None
        return Neighbor(address=address, interface=interface, asn=asn, description=description,
                        multihop=multihop, update_source=source)

    def check_connected(self, address: Any, path: str) -> None:
        if any(i.dhcp for i in self.ifaces.values()) or None in self.declared.values():
            return  # a DHCP subnet (or an invalid interface, reported already) may hold it
        nets = [a for i in self.ifaces.values() for a in i.addresses if a.version == address.version]
        if any(address == a.ip for a in nets):
            self.c.add(path, f"'{address}' is {self.node}'s own address")
        elif not any(address in a.network for a in nets):
            self.c.add(path, f"'{address}' is on no subnet of {self.node}'s interfaces (give multihop or "
                             "update_source for a session that is not directly connected)")


def check_asn(c: _Checker, raw: object, path: str, *, required: bool = False, what: str = "an ASN") -> int | None:
    low, high = ASN_RANGE
    if raw is None:
        if required:
            c.add(path, f"is required ({what}, {low} to {high})")
        return None
    if not _is_int(raw) or not low <= raw <= high:  # type: ignore[operator]
        c.add(path, f"{raw!r} is out of range: {what} is an integer from {low} to {high}")
        return None
    if raw in RESERVED_ASNS:
        c.add(path, f"{raw!r} is {RESERVED_ASNS[raw]}, not usable as a router's ASN")
        return None
    return raw  # type: ignore[return-value]


def check_frr_config(c: _Checker, raw: object, path: str) -> str | None:
    """Raw FRR text: one string of at most 64 KiB, printable ASCII lines (tabs allowed), no line that leaves
    configuration mode or acts outside it. A `!` comment is plain text whatever it holds."""
    if not isinstance(raw, str):
        c.add(path, f"must be text (a multi-line string), not {_describe(raw)}")
        return None
    size = len(raw.encode("utf-8", "surrogatepass"))
    if size > FRR_CONFIG_MAX_BYTES:
        c.add(path, f"is {size} bytes; at most {FRR_CONFIG_MAX_BYTES} bytes are allowed")
        return None
    text = raw.replace("\r\n", "\n")
    for number, line in enumerate(text.split("\n"), 1):
        bad = next((ch for ch in line if not (" " <= ch <= "~" or ch == "\t")), None)
        if bad is not None:
            c.add(path, f"line {number}: character {bad!r} is not allowed (printable ASCII and tabs only)")
            return None
        words = line.split()
        if words and not words[0].startswith("!") and words[0].lower() in FRR_CONFIG_REFUSED:
            c.add(path, f"line {number}: {words[0]!r} is not allowed here: it would act outside the "
                        "configuration (frr_config only configures)")
            return None
        if words[:2] == ["log", "file"] or words[:1] == ["hostname"]:
            c.add(path, f"line {number}: {' '.join(words[:2])!r} is set by Topolab")
            return None
    return text.rstrip("\n") + "\n" if text.strip() else ""


def check_routing(c: _Checker, node: str, raw: object, path: str) -> Routing | None:
    return _Routing(c, node, path).check(raw)


def check_lab(c: _Checker, nodes: dict[str, Node]) -> None:
    """What spans routers: a router id (given or derived) used by two routers for the same protocol."""
    for proto in ("ospf", "ospf6", "bgp"):
        seen: dict[ipaddress.IPv4Address, str] = {}
        for name, node in nodes.items():
            routing: Routing | None = node.routing
            p = getattr(routing, proto, None) if routing is not None else None
            if p is None:
                continue
            rid = effective_router_id(node, p)
            if rid is None:
                continue
            path = f"nodes.{name}.routing.{proto}.router_id"
            if rid in seen:
                how = "" if p.router_id is not None else " (derived from its addresses; set router_id)"
                c.add(path, f"router id {rid}{how} is already used by {seen[rid]}")
            else:
                seen[rid] = name


# ------------------------------------------------------------------------------------------------ writing


def to_document(r: Routing) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if r.loopback:
        doc["loopback"] = str(r.loopback[0]) if len(r.loopback) == 1 else [str(a) for a in r.loopback]
    for key in ("ospf", "ospf6"):
        o: Ospf | None = getattr(r, key)
        if o is None:
            continue
        od: dict[str, Any] = {}
        if o.router_id is not None:
            od["router_id"] = str(o.router_id)
        od["areas"] = {a.id: {k: list(getattr(a, k)) for k in AREA_KEYS if getattr(a, k)} for a in o.areas}
        if o.cost:
            od["cost"] = dict(o.cost)
        for k in ("hello", "dead"):
            if getattr(o, k) is not None:
                od[k] = getattr(o, k)
        if o.redistribute:
            od["redistribute"] = list(o.redistribute)
        doc[key] = od
    if r.bgp is not None:
        b = r.bgp
        bd: dict[str, Any] = {"asn": b.asn}
        if b.router_id is not None:
            bd["router_id"] = str(b.router_id)
        if b.neighbors:
            bd["neighbors"] = [_neighbor_document(n) for n in b.neighbors]
        if b.networks:
            bd["networks"] = [str(n) for n in b.networks]
        if b.redistribute:
            bd["redistribute"] = list(b.redistribute)
        doc["bgp"] = bd
    if r.frr_config is not None:
        doc["frr_config"] = r.frr_config
    return doc


def _neighbor_document(n: Neighbor) -> dict[str, Any]:
    d: dict[str, Any] = {"address": str(n.address)} if n.address is not None else {"interface": n.interface}
    d["asn"] = n.asn
    for key in ("description", "multihop", "update_source"):
        if getattr(n, key) is not None:
            d[key] = getattr(n, key)
    return d
