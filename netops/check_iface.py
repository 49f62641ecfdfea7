"""The checks of a node's interfaces, addresses, MACs, DHCP servers, routes and NAT (a part of netops.check.Checker)."""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from . import naming, units
from .errors import Problem
from .model import DhcpServer, Interface, IPAddress, IPInterface, Nat, Route
from .yamlsafe import join as _join

if TYPE_CHECKING:
    from .kinds import Kind

IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]+\Z")
MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(?:\1[0-9a-fA-F]{2}){4}\Z")
MTU_RANGE = (68, 9000)
DEFAULT_LEASE_S = 3600
INTERFACE_KEYS = ("address", "mac", "mtu", "dhcp_server")
DHCP_SERVER_KEYS = ("range", "lease_time", "gateway", "dns")
ROUTE_KEYS = ("to", "via")
NAT_KEYS = ("masquerade",)


class InterfaceChecks:
    """Checks of the parts of a node with interfaces; mixed into netops.check.Checker, whose state they share."""

    images: Collection[str] | None
    problems: list[Problem]
    interfaces: dict[str, dict[str, Interface | None]]
    macs: dict[str, str]

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def mapping(self, value: object, path: str, what: str) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.add(path, f"must be a mapping ({what}), not {describe(value)}")
        return None

    def unknown_keys(self, data: dict[str, Any], allowed: Collection[str], path: str, where: str = "") -> None:
        for key in data:
            if key not in allowed:
                self.add(_join(path, key), f"unknown key {key!r}{where}")

    def int_in(self, value: object, path: str, bounds: tuple[int, int], unit: str = "") -> int | None:
        low, high = bounds
        if not is_int(value) or not low <= value <= high:  # type: ignore[operator]
            self.add(path, f"{value!r} must be an integer from {low} to {high}{unit}")
            return None
        return value  # type: ignore[return-value]

    def interfaces_and_routes(self, name: str, kind: Kind, data: dict[str, Any], path: str) -> dict[str, Any]:
        """`interfaces` and `routes` of a node with interfaces: the Node fields they give."""
        fields: dict[str, Any] = {"interfaces": self.check_interfaces(name, kind, data.get("interfaces"),
                                                                    _join(path, "interfaces"))}
        if data.get("routes") is not None:
            fields["routes"] = self.check_routes(name, data["routes"], _join(path, "routes"))
        return fields

    # ---- interfaces

    def check_interfaces(self, node: str, kind: Kind, raw: object, path: str) -> dict[str, Interface]:
        self.interfaces[node] = {}
        if raw is None:
            return {}
        data = self.mapping(raw, path, "interface name -> settings")
        if data is None:
            return {}
        result: dict[str, Interface] = {}
        for if_name, if_raw in data.items():
            if_path = _join(path, if_name)
            problem = ifname_problem(if_name)
            if problem:
                self.add(if_path, problem)
                continue
            iface = self.check_interface(kind, if_name, if_raw, if_path)
            self.interfaces[node][if_name] = iface
            if iface is not None:
                result[if_name] = iface
        return result

    def check_interface(self, kind: Kind, name: str, raw: object, path: str) -> Interface | None:
        if raw is None:
            return Interface(name=name)
        data = self.mapping(raw, path, "address, mac, mtu, dhcp_server")
        if data is None:
            return None
        before = len(self.problems)
        self.unknown_keys(data, INTERFACE_KEYS, path)
        address_problems = len(self.problems)
        addresses, dhcp = self.check_addresses(data.get("address"), _join(path, "address"))
        address_ok = len(self.problems) == address_problems
        mac = self.check_mac(data.get("mac"), _join(path, "mac")) if data.get("mac") is not None else None
        mtu = self.int_in(data["mtu"], _join(path, "mtu"), MTU_RANGE) if data.get("mtu") is not None else None
        dhcp_server = None
        if data.get("dhcp_server") is not None and address_ok:  # a bad address is reported once, not twice
            dhcp_server = self.check_dhcp_server(kind, addresses, data["dhcp_server"], _join(path, "dhcp_server"))
        if len(self.problems) != before:
            return None
        return Interface(name=name, addresses=addresses, dhcp=dhcp, mac=mac, mtu=mtu, dhcp_server=dhcp_server)

    def check_addresses(self, raw: object, path: str) -> tuple[tuple[IPInterface, ...], bool]:
        if raw is None:
            return (), False
        if raw == "dhcp":
            return (), True
        items = [(path, raw)] if isinstance(raw, str) else None
        if isinstance(raw, list):
            if not raw:
                self.add(path, "must not be an empty list")
            items = [(_join(path, i), v) for i, v in enumerate(raw)]
        if items is None:
            self.add(path, f"{raw!r} must be 'dhcp', an address like '10.0.1.1/24', or a list of addresses")
            return (), False
        result: list[IPInterface] = []
        for item_path, value in items:
            if value == "dhcp":
                self.add(item_path, "'dhcp' cannot be combined with static addresses")
                continue
            try:
                iface = parse_interface_address(value)
            except ValueError as exc:
                self.add(item_path, str(exc))
                continue
            if any(iface.ip == other.ip for other in result):
                self.add(item_path, f"{value!r} is listed twice")
                continue
            result.append(iface)
        return tuple(result), False

    def check_mac(self, raw: object, path: str) -> str | None:
        if not isinstance(raw, str) or not MAC_RE.match(raw):
            self.add(path, f"{raw!r} is not a MAC address like '52:54:00:aa:bb:cc'")
            return None
        mac = raw.lower().replace("-", ":")
        if int(mac[:2], 16) & 1:
            self.add(path, f"{raw!r} is a multicast address; use a unicast MAC (even first octet)")
            return None
        if mac == "00:00:00:00:00:00":
            self.add(path, f"{raw!r} is not a usable MAC address")
            return None
        if mac in self.macs:
            self.add(path, f"{raw!r} is already used by {self.macs[mac]}")
            return None
        self.macs[mac] = path
        return mac

    def check_dhcp_server(
        self, kind: Kind, addresses: tuple[IPInterface, ...], raw: object, path: str
    ) -> DhcpServer | None:
        if not kind.serves_dhcp:
            self.add(path, "only router interfaces can serve DHCP")
            return None
        data = self.mapping(raw, path, "range, lease_time, gateway, dns")
        if data is None:
            return None
        self.unknown_keys(data, DHCP_SERVER_KEYS, path)
        v4 = [a for a in addresses if a.version == 4]
        if not v4:
            self.add(path, "needs a static IPv4 address on the same interface")
            return None
        before = len(self.problems)
        start = end = None
        own: IPInterface | None = None
        rng = data.get("range")
        range_path = _join(path, "range")
        if rng is None:
            self.add(range_path, "is required, like '10.0.1.100-10.0.1.150'")
        elif not isinstance(rng, str) or rng.count("-") != 1:
            self.add(range_path, f"{rng!r} is not a range like '10.0.1.100-10.0.1.150'")
        else:
            try:
                start, end = (parse_ip(part, "an IPv4 address") for part in rng.split("-"))
            except ValueError:
                self.add(range_path, f"{rng!r} is not a range of two IPv4 addresses like '10.0.1.100-10.0.1.150'")
        if start is not None and end is not None:
            own = next((a for a in v4 if start in a.network and end in a.network), None)
            if start.version != 4 or end.version != 4:
                self.add(range_path, f"{rng!r} is not a range of two IPv4 addresses")
            elif own is None:
                nets = ", ".join(str(a.network) for a in v4)
                self.add(range_path, f"{rng!r} is not inside the interface's subnet ({nets})")
            elif start > end:
                self.add(range_path, f"{rng!r} starts after it ends")
            elif start <= own.network.network_address <= end or (
                own.network.prefixlen < 31 and start <= own.network.broadcast_address <= end
            ):
                self.add(range_path, f"{rng!r} includes the network or broadcast address of {own.network}")
            elif start <= own.ip <= end:
                self.add(range_path, f"{rng!r} includes the interface's own address {own.ip}")
        lease = DEFAULT_LEASE_S
        if data.get("lease_time") is not None:
            try:
                lease = units.parse_lease_seconds(data["lease_time"])
            except ValueError as exc:
                self.add(_join(path, "lease_time"), str(exc))
        gateway = None
        if data.get("gateway") is not None:
            try:
                gateway = parse_ip(data["gateway"], "an IPv4 address")
                if gateway.version != 4:
                    raise ValueError(f"{data['gateway']!r} is not an IPv4 address")
                if own is not None and gateway not in own.network:
                    raise ValueError(f"{data['gateway']!r} is not inside {own.network}")
            except ValueError as exc:
                self.add(_join(path, "gateway"), str(exc))
                gateway = None
        dns: list[ipaddress.IPv4Address] = []
        if data.get("dns") is not None:
            if not isinstance(data["dns"], list):
                self.add(_join(path, "dns"), f"must be a list of IPv4 addresses, not {describe(data['dns'])}")
            else:
                for i, value in enumerate(data["dns"]):
                    try:
                        ip = parse_ip(value, "an IPv4 address")
                        if ip.version != 4:
                            raise ValueError(f"{value!r} is not an IPv4 address")
                        assert isinstance(ip, ipaddress.IPv4Address)
                        dns.append(ip)
                    except ValueError as exc:
                        self.add(_join(path, f"dns.{i}"), str(exc))
        if len(self.problems) != before or start is None or end is None:
            return None
        return DhcpServer(start=start, end=end, lease_time=lease, gateway=gateway, dns=tuple(dns))  # type: ignore[arg-type]

    # ---- routes and nat

    def check_routes(self, node: str, raw: object, path: str) -> tuple[Route, ...]:
        if not isinstance(raw, list):
            self.add(path, f"must be a list of {{to, via}}, not {describe(raw)}")
            return ()
        declared = self.interfaces.get(node, {})
        ifaces = [i for i in declared.values() if i is not None]
        # With a dhcp interface any next hop may be connected; with an invalid interface we cannot tell (and
        # the interface is reported already).
        unknowable = any(i.dhcp for i in ifaces) or None in declared.values()
        connected = [a.network for i in ifaces for a in i.addresses]
        routes: list[Route] = []
        seen: dict[Any, str] = {}
        for i, item in enumerate(raw):
            route_path = _join(path, i)
            data = self.mapping(item, route_path, "to, via")
            if data is None:
                continue
            self.unknown_keys(data, ROUTE_KEYS, route_path)
            to_raw, via_raw = data.get("to"), data.get("via")
            via = None
            if via_raw is None:
                self.add(_join(route_path, "via"), "is required (the next hop's address)")
            else:
                try:
                    via = parse_ip(via_raw, "an IP address (the next hop)")
                except ValueError as exc:
                    self.add(_join(route_path, "via"), str(exc))
            to = None
            if to_raw is None:
                self.add(_join(route_path, "to"), "is required ('default' or a network like '10.0.2.0/24')")
            elif to_raw == "default":
                if via is not None:
                    to = ipaddress.ip_network("0.0.0.0/0" if via.version == 4 else "::/0")
            else:
                to = self.route_network(to_raw, _join(route_path, "to"))
            if to is None or via is None:
                continue
            if to.version != via.version:
                self.add(_join(route_path, "via"), f"{via_raw!r} is not of the same IP family as {str(to)!r}")
                continue
            if not unknowable and not any(via in net for net in connected):
                self.add(
                    _join(route_path, "via"),
                    f"{via_raw!r} is not on a subnet of {node}'s interfaces",
                )
                continue
            if to in seen:
                self.add(_join(route_path, "to"), f"{to_raw!r} is already routed by {seen[to]}")
                continue
            seen[to] = route_path
            routes.append(Route(to=to, via=via))
        return tuple(routes)

    def route_network(self, raw: object, path: str) -> Any:
        if not isinstance(raw, str) or "/" not in raw:
            self.add(path, f"{raw!r} is not 'default' or a network like '10.0.2.0/24'")
            return None
        try:
            return ipaddress.ip_network(raw.strip())
        except ValueError:
            pass
        try:
            net = ipaddress.ip_network(raw.strip(), strict=False)
        except ValueError:
            self.add(path, f"{raw!r} is not 'default' or a network like '10.0.2.0/24'")
            return None
        self.add(path, f"{raw!r} has host bits set; the network is '{net}'")
        return None

    def check_nat(self, node: str, raw: object, path: str) -> Nat | None:
        data = self.mapping(raw, path, "masquerade: [interfaces]")
        if data is None:
            return None
        self.unknown_keys(data, NAT_KEYS, path)
        names = data.get("masquerade")
        mpath = _join(path, "masquerade")
        if not isinstance(names, list) or not names:
            self.add(mpath, f"{names!r} must be a non-empty list of this node's interface names")
            return None
        declared = self.interfaces.get(node, {})
        result: list[str] = []
        for i, name in enumerate(names):
            if not isinstance(name, str) or name not in declared:
                self.add(_join(mpath, i), f"{name!r} is not an interface of {node}")
            elif name in result:
                self.add(_join(mpath, i), f"{name!r} is listed twice")
            else:
                result.append(name)
        return Nat(masquerade=tuple(result))

    # ---- links


def ifname_problem(name: object) -> str | None:
    """Why `name` cannot be a Linux interface name (as the kernel and we accept it), or None when it can."""
    if not isinstance(name, str):
        return f"{name!r} is not an interface name (a string is expected)"
    if not name or len(name.encode()) > naming.IFNAME_MAX:
        return f"{name!r} must be 1 to {naming.IFNAME_MAX} bytes long"
    if not IFNAME_RE.match(name):
        return f"{name!r} may only contain letters, digits, '_', '.' and '-'"
    if name.startswith("-"):
        return f"{name!r} must not start with '-'"
    if name in (".", ".."):
        return f"{name!r} is not a valid interface name"
    if name == "lo":
        return "'lo' is the loopback interface and cannot be declared"
    return None


# --------------------------------------------------------------------------------------------------- loading


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_interface_address(value: object) -> IPInterface:
    """A host address with prefix ('10.0.1.1/24', '2001:db8::1/64'); refuses network/broadcast/special addresses."""
    if not isinstance(value, str) or "%" in value:
        raise ValueError(f"{value!r} is not an IPv4/IPv6 interface address")
    if "/" not in value:
        raise ValueError(f"{value!r} needs a prefix length, like '10.0.1.1/24'")
    try:
        iface = ipaddress.ip_interface(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4/IPv6 interface address") from None
    ip, net = iface.ip, iface.network
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback:
        raise ValueError(f"{value!r} is not a unicast address usable on an interface")
    small = net.prefixlen >= (31 if ip.version == 4 else 127)
    if not small and ip == net.network_address:
        raise ValueError(f"{value!r} is the network address of {net}; use a host address")
    if ip.version == 4 and not small and ip == net.broadcast_address:
        raise ValueError(f"{value!r} is the broadcast address of {net}; use a host address")
    return iface


def parse_ip(value: object, what: str = "an IP address") -> IPAddress:
    if not isinstance(value, str) or "%" in value:
        raise ValueError(f"{value!r} is not {what}")
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not {what}") from None



def describe(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "empty"
    return f"{value!r}"


# --------------------------------------------------------------------------------------------------- writing
