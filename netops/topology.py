"""Read, validate and write topology documents (DESIGN.md, "The topology document"; reference: docs/topology.md).

    parse_document(source, images=None) -> Topology      raises TopologyError with every problem found
    validate_document(source, images=None) -> [Problem]  empty when valid
    load_file(path) -> Topology
    load_yaml(text) -> (data, [Problem])                 the safe loader alone (used by the containerlab importer)
    to_document(topology) -> dict                        the normalised document (also Topology.document)
    dump_yaml(topology_or_document) -> str

A source is YAML text (JSON is YAML), bytes, or an already-loaded dict. Text is read with a SafeLoader subclass
that refuses anchors/aliases (no billion laughs) and duplicate keys, and resolves only YAML 1.2-like scalars
(`true`/`false`, decimal numbers), so `on`, `52:54:00:12:34:56` or `2024-01-01` stay strings.

Every problem carries the dotted path of the element it concerns, from the document root
(`nodes.r1.interfaces.eth0.address`, `links.3.endpoints.1`), and a message that quotes the bad value.
Wrong types give problems, never exceptions. The normalised document has a fixed key order, so
parse -> dump -> parse -> dump gives identical text.
"""
from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

import yaml

from . import limits as cell_limits
from . import naming, routing, units
from .errors import Problem, TopologyError
from .model import (
    INTERFACE_KINDS,
    NODE_KINDS,
    DhcpServer,
    Endpoint,
    Interface,
    IPAddress,
    IPInterface,
    Link,
    LinkConditions,
    Nat,
    Node,
    Route,
    Topology,
)

MAX_TEXT_BYTES = 2 * 1024 * 1024
MAX_NODES = 2000
MAX_LINKS = 4000
MAX_NAME_CHARS = 64
MAX_DESCRIPTION_CHARS = 10_000
VERSION = 1

IMAGE_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}\Z")
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]+\Z")
MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(?:\1[0-9a-fA-F]{2}){4}\Z")
MTU_RANGE = (68, 9000)
MEMORY_RANGE = (16, 65536)  # MiB
CPUS_RANGE = (1, 16)
DEFAULT_LEASE_S = 3600

# Allowed keys, in the order the normalised document writes them.
TOP_KEYS = ("version", "name", "description", "nodes", "links", "ui")
NODE_KEYS: dict[str, tuple[str, ...]] = {
    "host": ("kind", "description", "interfaces", "routes", "limits", "ui"),
    "router": ("kind", "description", "interfaces", "routes", "nat", "routing", "limits", "ui"),
    "vm": ("kind", "description", "image", "memory", "cpus", "interfaces", "routes", "limits", "ui"),
    "bridge": ("kind", "description", "multicast_snooping", "ui"),
    "external": ("kind", "description", "bridge", "nat", "address", "ui"),
}
INTERFACE_KEYS = ("address", "mac", "mtu", "dhcp_server")
DHCP_SERVER_KEYS = ("range", "lease_time", "gateway", "dns")
ROUTE_KEYS = ("to", "via")
NAT_KEYS = ("masquerade",)
LINK_KEYS = ("endpoints", "delay", "jitter", "loss", "rate", "ui")

Source = str | bytes | dict


# --------------------------------------------------------------------------------------------------- public API


def parse_document(source: Source, *, images: Collection[str] | None = None) -> Topology:
    """The validated `Topology` of a document; raises `TopologyError` carrying every problem found."""
    data, problems = _load(source)
    if problems:
        raise TopologyError(problems)
    topology, problems = _Checker(images).check(data)
    if problems or topology is None:
        raise TopologyError(problems or [Problem("", "the document is invalid")])
    topology.document = to_document(topology)
    return topology


def validate_document(source: Source, *, images: Collection[str] | None = None) -> list[Problem]:
    """Every problem of a document, in document order; an empty list when it is valid."""
    try:
        parse_document(source, images=images)
    except TopologyError as exc:
        return exc.problems
    return []


def load_file(path: str | Path, *, images: Collection[str] | None = None) -> Topology:
    """Parse a YAML/JSON file; files over 2 MiB are refused without being read whole."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_TEXT_BYTES + 1)
    return parse_document(data, images=images)


def load_yaml(source: str | bytes) -> tuple[Any, list[Problem]]:
    """Safely load YAML/JSON text (size limit, no anchors/aliases, no duplicate keys): (data, problems)."""
    return _load(source)


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


class _Refused(Exception):
    def __init__(self, message: str, mark: Any = None):
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        super().__init__(message + where)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without anchors/aliases and with YAML 1.2-like implicit scalars."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        # Refusing every anchor refuses every alias too: an alias needs an anchor defined before it.
        event = self.peek_event()
        if getattr(event, "anchor", None) and not isinstance(event, yaml.AliasEvent):
            raise _Refused(f"anchors and aliases (&{event.anchor}) are not allowed", event.start_mark)
        return super().compose_node(parent, index)


_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL_TAG, _INT_TAG, _FLOAT_TAG, _TIMESTAMP_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_StrictLoader.add_implicit_resolver(_INT_TAG, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))
_StrictLoader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?[0-9]+[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _load(source: Source) -> tuple[Any, list[Problem]]:
    if isinstance(source, dict):
        return source, []
    if isinstance(source, bytes):
        if len(source) > MAX_TEXT_BYTES:
            return None, [Problem("", f"the document is larger than {MAX_TEXT_BYTES} bytes")]
        try:
            text = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, [Problem("", f"the document is not UTF-8 text (byte {exc.start})")]
    elif isinstance(source, str):
        text = source
        if len(text) > MAX_TEXT_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
            return None, [Problem("", f"the document is larger than {MAX_TEXT_BYTES} bytes")]
    else:
        return None, [Problem("", f"expected YAML or JSON text or a mapping, got {type(source).__name__}")]
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, [Problem("", "the document is empty")]
        problems = _duplicate_keys(node)
        if problems:
            return None, problems
        return loader.construct_document(node), []
    except _Refused as exc:
        return None, [Problem("", str(exc))]
    except yaml.YAMLError as exc:
        return None, [Problem("", f"not valid YAML: {' '.join(str(exc).split())}")]
    except RecursionError:
        return None, [Problem("", "the document is nested too deeply")]
    finally:
        loader.dispose()


def _duplicate_keys(root: yaml.Node) -> list[Problem]:
    """Duplicate and merge (`<<`) keys anywhere in a composed YAML tree, each named by its path."""
    problems: list[Problem] = []
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[tuple[str, str]] = set()
            for key, value in node.value:
                label = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
                key_path = _join(path, label)
                if key.tag == _MERGE_TAG:
                    problems.append(Problem(key_path, "merge keys (<<) are not allowed"))
                    continue
                if isinstance(key, yaml.ScalarNode):
                    if (key.tag, key.value) in seen:
                        problems.append(
                            Problem(key_path, f"duplicate key {key.value!r} (line {key.start_mark.line + 1})")
                        )
                    seen.add((key.tag, key.value))
                stack.append((value, key_path))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                stack.append((item, _join(path, str(i))))
    problems.sort(key=lambda p: p.path)
    return problems


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


# --------------------------------------------------------------------------------------------------- checking


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_interface_address(value: object) -> IPInterface:
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


def _parse_ip(value: object, what: str = "an IP address") -> IPAddress:
    if not isinstance(value, str) or "%" in value:
        raise ValueError(f"{value!r} is not {what}")
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not {what}") from None


class _Checker:
    """One validation pass: collects every problem, and builds the model from the parts that are valid."""

    def __init__(self, images: Collection[str] | None):
        self.images = images
        self.problems: list[Problem] = []
        self.kinds: dict[str, str | None] = {}  # node name -> kind (None when the node itself is invalid)
        self.interfaces: dict[str, dict[str, Interface | None]] = {}
        self.macs: dict[str, str] = {}  # mac -> path of its first use
        self.miswired: set[str] = set()  # nodes named by a wrong endpoint: their interfaces are not "unconnected"

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def mapping(self, value: object, path: str, what: str) -> dict | None:
        if isinstance(value, dict):
            return value
        self.add(path, f"must be a mapping ({what}), not {_describe(value)}")
        return None

    def unknown_keys(self, data: dict, allowed: Collection[str], path: str, where: str = "") -> None:
        for key in data:
            if key not in allowed:
                self.add(_join(path, key), f"unknown key {key!r}{where}")

    def int_in(self, value: object, path: str, bounds: tuple[int, int], unit: str = "") -> int | None:
        low, high = bounds
        if not _is_int(value) or not low <= value <= high:  # type: ignore[operator]
            self.add(path, f"{value!r} must be an integer from {low} to {high}{unit}")
            return None
        return value  # type: ignore[return-value]

    # ---- document

    def check(self, data: object) -> tuple[Topology | None, list[Problem]]:
        if not isinstance(data, dict):
            self.add("", f"the document must be a mapping with version, name, nodes and links, not {_describe(data)}")
            return None, self.problems
        self.unknown_keys(data, TOP_KEYS, "")
        if "version" not in data:
            self.add("version", f"is required (version: {VERSION})")
        elif not _is_int(data["version"]) or data["version"] != VERSION:
            self.add("version", f"{data['version']!r} is not a supported version (only {VERSION})")
        name = self.check_name(data)
        description = self.check_description(data, "")
        ui = self.check_ui(data, "")

        nodes: dict[str, Node] = {}
        raw_nodes = data.get("nodes", {})
        if raw_nodes is None:
            raw_nodes = {}
        if self.mapping(raw_nodes, "nodes", "node name -> node") is not None:
            if len(raw_nodes) > MAX_NODES:
                self.add("nodes", f"a lab has at most {MAX_NODES} nodes, this one has {len(raw_nodes)}")
                return None, self.problems
            for node_name, raw in raw_nodes.items():
                node = self.check_node(node_name, raw)
                if node is not None:
                    nodes[node.name] = node

        routing.check_lab(self, nodes)
        links: list[Link] = []
        raw_links = data.get("links", [])
        if raw_links is None:
            raw_links = []
        if not isinstance(raw_links, list):
            self.add("links", f"must be a list of links, not {_describe(raw_links)}")
        elif len(raw_links) > MAX_LINKS:
            self.add("links", f"a lab has at most {MAX_LINKS} links, this one has {len(raw_links)}")
            return None, self.problems
        else:
            links = self.check_links(raw_links)

        if self.problems or name is None:
            return None, self.problems
        return Topology(name=name, nodes=nodes, links=links, version=VERSION, description=description, ui=ui), []

    def check_name(self, data: dict) -> str | None:
        if "name" not in data:
            self.add("name", "is required")
            return None
        name = data["name"]
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS:
            self.add("name", f"{name!r} must be a string of 1 to {MAX_NAME_CHARS} characters")
            return None
        if not name.isprintable():
            self.add("name", f"{name!r} must not contain control characters")
            return None
        try:
            naming.check_lab_id(naming.derive_lab_id(name))
        except Exception:  # noqa: BLE001 - any failure to derive an id is a problem with the name
            self.add("name", f"{name!r} cannot derive a lab id")
            return None
        return name

    def check_description(self, data: dict, path: str) -> str | None:
        if "description" not in data or data["description"] is None:
            return None
        text = data["description"]
        if not isinstance(text, str) or len(text) > MAX_DESCRIPTION_CHARS:
            self.add(_join(path, "description"), f"must be a string of at most {MAX_DESCRIPTION_CHARS} characters")
            return None
        return text

    def check_ui(self, data: dict, path: str) -> dict | None:
        if "ui" not in data or data["ui"] is None:
            return None
        ui = self.mapping(data["ui"], _join(path, "ui"), "canvas data such as {x, y}")
        return copy.deepcopy(ui) if ui is not None else None

    # ---- nodes

    def check_node(self, name: object, raw: object) -> Node | None:
        path = _join("nodes", name)
        name_ok = isinstance(name, str) and bool(naming.NODE_NAME_RE.match(name))
        if not name_ok:
            self.add(
                path,
                f"{name!r} is not a valid node name (a letter, then up to 31 letters, digits, '_' or '-')",
            )
        data = self.mapping(raw, path, "kind and the node's settings")
        kind = data.get("kind") if data is not None else None
        if data is not None:
            if "kind" not in data:
                self.add(_join(path, "kind"), f"is required (one of {', '.join(NODE_KINDS)})")
            elif kind not in NODE_KINDS:
                self.add(_join(path, "kind"), f"{kind!r} is not a node kind (one of {', '.join(NODE_KINDS)})")
        if not name_ok:
            if isinstance(name, str):
                self.kinds[name] = None  # links to it are not reported again as "unknown node"
            return None
        assert isinstance(name, str)
        if data is None or kind not in NODE_KINDS:
            self.kinds[name] = None
            return None
        self.kinds[name] = kind
        before = len(self.problems)
        allowed = NODE_KEYS[kind]
        for key in data:
            if key not in allowed:
                other = [k for k, keys in NODE_KEYS.items() if key in keys]
                hint = f" (only {', '.join(k + 's' for k in other)} have it)" if other else ""
                self.add(_join(path, key), f"unknown key {key!r} for a {kind} node{hint}")

        description = self.check_description(data, path)
        ui = self.check_ui(data, path)
        interfaces: dict[str, Interface] = {}
        routes: tuple[Route, ...] = ()
        nat: Nat | None = None
        fields: dict[str, Any] = {}
        if "interfaces" in allowed:
            interfaces = self.check_interfaces(name, kind, data.get("interfaces"), _join(path, "interfaces"))
        if "routes" in allowed and data.get("routes") is not None:
            routes = self.check_routes(name, data["routes"], _join(path, "routes"))
        if kind == "router" and data.get("nat") is not None:
            nat = self.check_nat(name, data["nat"], _join(path, "nat"))
        if kind == "router" and data.get("routing") is not None:
            fields["routing"] = routing.check_routing(self, name, data["routing"], _join(path, "routing"))
        if kind == "vm":
            fields = self.check_vm(data, path)
        if kind == "external":
            fields = self.check_external(data, path)
        if "limits" in allowed and data.get("limits") is not None:
            limits, problems = cell_limits.check_limits(data["limits"], _join(path, "limits"),
                                                        vm_memory_mib=fields.get("memory"))
            for problem_path, message in problems:
                self.add(problem_path, message)
            if limits is not None:
                fields["limits"] = limits
        if kind == "bridge" and data.get("multicast_snooping") is not None:
            snooping = data["multicast_snooping"]
            if isinstance(snooping, bool):
                fields["multicast_snooping"] = snooping
            else:
                self.add(_join(path, "multicast_snooping"), f"{snooping!r} must be true or false")
        if len(self.problems) != before:
            return None
        return Node(
            name=name,
            kind=kind,
            interfaces=interfaces,
            routes=routes,
            nat=nat,
            ui=ui,
            description=description,
            **fields,
        )

    def check_vm(self, data: dict, path: str) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        image = data.get("image")
        if "image" not in data:
            self.add(_join(path, "image"), "is required (a name in the image library)")
        elif not isinstance(image, str) or not IMAGE_RE.match(image) or ".." in image:
            self.add(
                _join(path, "image"),
                f"{image!r} is not an image name (a-z, 0-9, '.', '_', '-', up to 64 characters, no '..')",
            )
        elif self.images is not None and image not in self.images:
            self.add(_join(path, "image"), f"{image!r} is not in the image library")
        else:
            fields["image"] = image
        if data.get("memory") is not None:
            fields["memory"] = self.int_in(data["memory"], _join(path, "memory"), MEMORY_RANGE, " MiB")
        if data.get("cpus") is not None:
            fields["cpus"] = self.int_in(data["cpus"], _join(path, "cpus"), CPUS_RANGE)
        return fields

    def check_external(self, data: dict, path: str) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        bridge, nat, address = data.get("bridge"), data.get("nat"), data.get("address")
        if bridge is not None:
            problem = ifname_problem(bridge)
            if problem:
                self.add(_join(path, "bridge"), f"{problem} (the name of an existing host bridge)")
            else:
                fields["bridge"] = bridge
        if nat is not None and not isinstance(nat, bool):
            self.add(_join(path, "nat"), f"{nat!r} must be true or false")
            return fields  # whether address belongs here depends on nat: nothing more to say
        if bridge is not None and nat:
            self.add(_join(path, "nat"), "an external has either bridge or nat: true, not both")
            return fields
        if bridge is None and not nat:
            self.add(path, "an external needs either bridge: <an existing host bridge> or nat: true")
        if nat:
            fields["nat_external"] = True
        if address is None:
            if nat:
                self.add(_join(path, "address"), "is required with nat: true (the host-side gateway, like '203.0.113.1/24')")
        elif not nat:
            self.add(_join(path, "address"), "is only allowed with nat: true")
        else:
            try:
                fields["address"] = _parse_interface_address(address)
            except ValueError as exc:
                self.add(_join(path, "address"), str(exc))
        return fields

    # ---- interfaces

    def check_interfaces(self, node: str, kind: str, raw: object, path: str) -> dict[str, Interface]:
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
            iface = self.check_interface(node, kind, if_name, if_raw, if_path)
            self.interfaces[node][if_name] = iface
            if iface is not None:
                result[if_name] = iface
        return result

    def check_interface(self, node: str, kind: str, name: str, raw: object, path: str) -> Interface | None:
        if raw is None:
            return Interface(name=name)
        data = self.mapping(raw, path, "address, mac, mtu, dhcp_server")
        if data is None:
            return None
        before = len(self.problems)
        self.unknown_keys(data, INTERFACE_KEYS, path)
        address_problems = len(self.problems)
        addresses, dhcp = self.check_addresses(kind, data.get("address"), _join(path, "address"))
        address_ok = len(self.problems) == address_problems
        mac = self.check_mac(data.get("mac"), _join(path, "mac")) if data.get("mac") is not None else None
        mtu = self.int_in(data["mtu"], _join(path, "mtu"), MTU_RANGE) if data.get("mtu") is not None else None
        dhcp_server = None
        if data.get("dhcp_server") is not None and address_ok:  # a bad address is reported once, not twice
            dhcp_server = self.check_dhcp_server(kind, addresses, data["dhcp_server"], _join(path, "dhcp_server"))
        if len(self.problems) != before:
            return None
        return Interface(name=name, addresses=addresses, dhcp=dhcp, mac=mac, mtu=mtu, dhcp_server=dhcp_server)

    def check_addresses(self, kind: str, raw: object, path: str) -> tuple[tuple[IPInterface, ...], bool]:
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
                iface = _parse_interface_address(value)
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
        self, kind: str, addresses: tuple[IPInterface, ...], raw: object, path: str
    ) -> DhcpServer | None:
        if kind != "router":
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
                start, end = (_parse_ip(part, "an IPv4 address") for part in rng.split("-"))
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
                gateway = _parse_ip(data["gateway"], "an IPv4 address")
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
                self.add(_join(path, "dns"), f"must be a list of IPv4 addresses, not {_describe(data['dns'])}")
            else:
                for i, value in enumerate(data["dns"]):
                    try:
                        ip = _parse_ip(value, "an IPv4 address")
                        if ip.version != 4:
                            raise ValueError(f"{value!r} is not an IPv4 address")
                        dns.append(ip)  # type: ignore[arg-type]
                    except ValueError as exc:
                        self.add(_join(path, f"dns.{i}"), str(exc))
        if len(self.problems) != before or start is None or end is None:
            return None
        return DhcpServer(start=start, end=end, lease_time=lease, gateway=gateway, dns=tuple(dns))  # type: ignore[arg-type]

    # ---- routes and nat

    def check_routes(self, node: str, raw: object, path: str) -> tuple[Route, ...]:
        if not isinstance(raw, list):
            self.add(path, f"must be a list of {{to, via}}, not {_describe(raw)}")
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
                    via = _parse_ip(via_raw, "an IP address (the next hop)")
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

    def check_links(self, raw_links: list) -> list[Link]:
        links: list[Link] = []
        used: dict[Endpoint, str] = {}
        for index, raw in enumerate(raw_links):
            link = self.check_link(index, raw, used)
            if link is not None:
                links.append(link)
        for node, ifaces in self.interfaces.items():
            if self.kinds.get(node) not in INTERFACE_KINDS or node in self.miswired:
                continue
            for if_name in ifaces:
                if Endpoint(node, if_name) not in used:
                    self.add(f"nodes.{node}.interfaces.{if_name}", "not connected to any link")
        return links

    def check_link(self, index: int, raw: object, used: dict[Endpoint, str]) -> Link | None:
        path = _join("links", index)
        data = self.mapping(raw, path, "endpoints and optional conditions")
        if data is None:
            return None
        before = len(self.problems)
        self.unknown_keys(data, LINK_KEYS, path)
        ep_path = _join(path, "endpoints")
        raw_eps = data.get("endpoints")
        endpoints: list[Endpoint | None] = []
        if raw_eps is None:
            self.add(ep_path, "is required: two endpoints like [r1:eth0, br-in]")
        elif not isinstance(raw_eps, list) or len(raw_eps) != 2:
            self.add(ep_path, f"{raw_eps!r} must be a list of exactly two endpoints")
        else:
            for i, text in enumerate(raw_eps):
                endpoints.append(self.check_endpoint(text, _join(ep_path, i)))
        if len(endpoints) == 2 and endpoints[0] is not None and endpoints[1] is not None:
            a, b = endpoints
            if a == b:
                self.add(_join(ep_path, 1), f"a link cannot connect {str(a)!r} to itself")
            elif self.kinds.get(a.node) == "external" and self.kinds.get(b.node) == "external":
                self.add(
                    ep_path,
                    f"links two externals ({a.node!r} and {b.node!r}); connect an external to a bridge or an interface",
                )
        # Every valid interface endpoint counts as connected, even when the other end is wrong: one mistake in a
        # link is reported once, not again as "not connected to any link".
        for i, ep in enumerate(endpoints):
            if ep is None or ep.interface is None or (i == 1 and ep == endpoints[0]):
                continue
            if ep in used:
                self.add(_join(ep_path, i), f"{str(ep)!r} is already used by {used[ep]}")
            else:
                used[ep] = path
        conditions = self.check_conditions(data, path)
        ui = self.check_ui(data, path)
        if len(self.problems) != before or len(endpoints) != 2 or None in endpoints:
            return None
        return Link(index=index, a=endpoints[0], b=endpoints[1], conditions=conditions, ui=ui)  # type: ignore[arg-type]

    def check_endpoint(self, text: object, path: str) -> Endpoint | None:
        if not isinstance(text, str) or not text:
            self.add(path, f"{text!r} is not an endpoint like 'r1:eth0' or 'br-in'")
            return None
        node, sep, iface = text.partition(":")
        if node not in self.kinds:
            self.add(path, f"{text!r}: unknown node {node!r}")
            return None
        kind = self.kinds[node]
        if kind is None:  # the node itself is invalid and already reported
            return None
        problem = None
        if kind in INTERFACE_KINDS and not sep:
            problem = f"{text!r}: a {kind} is connected through an interface, like '{node}:eth0'"
        elif kind in INTERFACE_KINDS and iface not in self.interfaces.get(node, {}):
            problem = f"{text!r}: {node} has no interface {iface!r} (declare it under nodes.{node}.interfaces)"
        elif kind not in INTERFACE_KINDS and sep:
            problem = f"{text!r}: a {kind} is connected by its bare name {node!r}, without an interface"
        if problem:
            self.add(path, problem)
            self.miswired.add(node)
            return None
        return Endpoint(node, iface if kind in INTERFACE_KINDS else None)

    def check_conditions(self, data: dict, path: str) -> LinkConditions:
        values: dict[str, Any] = {}
        parsers = {
            "delay": ("delay_ms", units.parse_duration_ms),
            "jitter": ("jitter_ms", units.parse_duration_ms),
            "loss": ("loss_pct", units.parse_loss_pct),
            "rate": ("rate_bps", units.parse_rate_bps),
        }
        for key, (field, parse) in parsers.items():
            if data.get(key) is None:
                continue
            try:
                values[field] = parse(data[key])
            except ValueError as exc:
                self.add(_join(path, key), str(exc))
        if data.get("jitter") is not None and data.get("delay") is None:
            self.add(_join(path, "jitter"), "needs a delay on the same link")
        return LinkConditions(**values)


def _describe(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "empty"
    return f"{value!r}"


# --------------------------------------------------------------------------------------------------- writing


def to_document(topology: Topology) -> dict[str, Any]:
    """The normalised document of a validated topology: canonical values, fixed key order, `ui` kept."""
    doc: dict[str, Any] = {"version": topology.version, "name": topology.name}
    if topology.description is not None:
        doc["description"] = topology.description
    doc["nodes"] = {name: _node_document(node) for name, node in topology.nodes.items()}
    doc["links"] = [_link_document(link) for link in topology.links]
    if topology.ui is not None:
        doc["ui"] = copy.deepcopy(topology.ui)
    return doc


def _node_document(node: Node) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": node.kind}
    if node.description is not None:
        doc["description"] = node.description
    if node.kind == "vm":
        if node.image is not None:
            doc["image"] = node.image
        if node.memory is not None:
            doc["memory"] = node.memory
        if node.cpus is not None:
            doc["cpus"] = node.cpus
    if node.kind in INTERFACE_KINDS:
        doc["interfaces"] = {name: _interface_document(i) for name, i in node.interfaces.items()}
    if node.routes:
        doc["routes"] = [
            {"to": "default" if r.to.prefixlen == 0 else str(r.to), "via": str(r.via)} for r in node.routes
        ]
    if node.nat is not None:
        doc["nat"] = {"masquerade": list(node.nat.masquerade)}
    if node.routing is not None:
        doc["routing"] = routing.to_document(node.routing)
    if node.multicast_snooping:
        doc["multicast_snooping"] = True
    if node.limits is not None:
        doc["limits"] = cell_limits.limits_document(node.limits)
    if node.kind == "external":
        if node.bridge is not None:
            doc["bridge"] = node.bridge
        if node.nat_external:
            doc["nat"] = True
        if node.address is not None:
            doc["address"] = str(node.address)
    if node.ui is not None:
        doc["ui"] = copy.deepcopy(node.ui)
    return doc


def _interface_document(iface: Interface) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if iface.dhcp:
        doc["address"] = "dhcp"
    elif len(iface.addresses) == 1:
        doc["address"] = str(iface.addresses[0])
    elif iface.addresses:
        doc["address"] = [str(a) for a in iface.addresses]
    if iface.mac is not None:
        doc["mac"] = iface.mac
    if iface.mtu is not None:
        doc["mtu"] = iface.mtu
    if iface.dhcp_server is not None:
        server = iface.dhcp_server
        sd: dict[str, Any] = {"range": f"{server.start}-{server.end}"}
        if server.lease_time != DEFAULT_LEASE_S:
            sd["lease_time"] = server.lease_time
        if server.gateway is not None:
            sd["gateway"] = str(server.gateway)
        if server.dns:
            sd["dns"] = [str(d) for d in server.dns]
        doc["dhcp_server"] = sd
    return doc


def _link_document(link: Link) -> dict[str, Any]:
    doc: dict[str, Any] = {"endpoints": [str(link.a), str(link.b)]}
    c = link.conditions
    if c.delay_ms is not None:
        doc["delay"] = units.format_duration(c.delay_ms)
    if c.jitter_ms is not None:
        doc["jitter"] = units.format_duration(c.jitter_ms)
    if c.loss_pct is not None:
        doc["loss"] = units.format_loss(c.loss_pct)
    if c.rate_bps is not None:
        doc["rate"] = units.format_rate(c.rate_bps)
    if link.ui is not None:
        doc["ui"] = copy.deepcopy(link.ui)
    return doc


class _Dumper(yaml.SafeDumper):
    """Block style, except that short collections holding only scalars are written inline (`[r1:eth0, br-in]`)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _leaf(value: Any) -> bool:
    return not isinstance(value, (dict, list, tuple))


def _inline(items: list) -> bool:
    """Write a collection inline when it holds only scalars and stays short (so lines never wrap)."""
    return all(_leaf(v) for v in items) and sum(len(str(v)) + 2 for v in items) <= 80


def _represent_dict(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    flow = _inline([*data.keys(), *data.values()])
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=_inline(data))


_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(list, _represent_list)


def dump_yaml(topology_or_document: Topology | dict[str, Any]) -> str:
    """YAML text of a topology (its normalised document) or of a document mapping, in the mapping's key order."""
    doc = to_document(topology_or_document) if isinstance(topology_or_document, Topology) else topology_or_document
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
