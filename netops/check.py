"""The checker of topology documents: one pass collects every problem and builds the model from what is valid.

The document-wide rules (version, name, nodes, links, endpoints, conditions) are here, the rules of interfaces,
addresses, routes and NAT in netops.check_iface, and each kind's own keys in its module of netops.kinds: the
checker asks the node's kind which keys it allows and lets it check them.
"""
from __future__ import annotations

import copy
from collections.abc import Collection
from typing import Any

from . import kinds, labchecks, naming, routing, units
from . import limits as cell_limits
from .check_iface import InterfaceChecks, describe, ifname_problem, is_int, parse_interface_address, parse_ip
from .errors import Problem
from .model import Endpoint, Interface, Link, LinkConditions, Node, Topology
from .yamlsafe import join as _join

MAX_NODES = 2000
MAX_LINKS = 4000
MAX_NAME_CHARS = 64
MAX_DESCRIPTION_CHARS = 10_000
VERSION = 1

TOP_KEYS = ("version", "name", "description", "nodes", "links", "checks", "ui")
LINK_KEYS = ("endpoints", "delay", "jitter", "loss", "rate", "ui")


__all__ = ["Checker", "describe", "ifname_problem", "is_int", "parse_interface_address", "parse_ip", "MAX_NODES",
           "MAX_LINKS", "MAX_NAME_CHARS", "MAX_DESCRIPTION_CHARS", "VERSION"]


class Checker(InterfaceChecks):
    """One validation pass: collects every problem, and builds the model from the parts that are valid."""

    def __init__(self, images: Collection[str] | None):
        self.images = images
        self.problems: list[Problem] = []
        self.kinds: dict[str, kinds.Kind | None] = {}  # node name -> kind (None when the node itself is invalid)
        self.interfaces: dict[str, dict[str, Interface | None]] = {}
        self.macs: dict[str, str] = {}  # mac -> path of its first use
        self.miswired: set[str] = set()  # nodes named by a wrong endpoint: their interfaces are not "unconnected"

    # ---- document

    def check(self, data: object) -> tuple[Topology | None, list[Problem]]:
        if not isinstance(data, dict):
            self.add("", f"the document must be a mapping with version, name, nodes and links, not {describe(data)}")
            return None, self.problems
        self.unknown_keys(data, TOP_KEYS, "")
        if "version" not in data:
            self.add("version", f"is required (version: {VERSION})")
        elif not is_int(data["version"]) or data["version"] != VERSION:
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
            self.add("links", f"must be a list of links, not {describe(raw_links)}")
        elif len(raw_links) > MAX_LINKS:
            self.add("links", f"a lab has at most {MAX_LINKS} links, this one has {len(raw_links)}")
            return None, self.problems
        else:
            links = self.check_links(raw_links)
        checks, problems = labchecks.check_section(data.get("checks"), nodes, self.kinds)  # netops.labchecks
        self.problems.extend(problems)

        if self.problems or name is None:
            return None, self.problems
        return Topology(name=name, nodes=nodes, links=links, version=VERSION, description=description, ui=ui,
                        checks=tuple(checks)), []

    def check_name(self, data: dict[str, Any]) -> str | None:
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

    def check_description(self, data: dict[str, Any], path: str) -> str | None:
        if "description" not in data or data["description"] is None:
            return None
        text = data["description"]
        if not isinstance(text, str) or len(text) > MAX_DESCRIPTION_CHARS:
            self.add(_join(path, "description"), f"must be a string of at most {MAX_DESCRIPTION_CHARS} characters")
            return None
        return text

    def check_ui(self, data: dict[str, Any], path: str) -> dict[str, Any] | None:
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
        kind_name = data.get("kind") if data is not None else None
        names = ", ".join(kinds.names())
        if data is not None:
            if "kind" not in data:
                self.add(_join(path, "kind"), f"is required (one of {names})")
            elif not kinds.known(kind_name):
                self.add(_join(path, "kind"), f"{kind_name!r} is not a node kind (one of {names})")
        if not name_ok:
            if isinstance(name, str):
                self.kinds[name] = None  # links to it are not reported again as "unknown node"
            return None
        assert isinstance(name, str)
        if data is None or not kinds.known(kind_name):
            self.kinds[name] = None
            return None
        assert isinstance(kind_name, str)
        kind = kinds.get(kind_name)
        self.kinds[name] = kind
        before = len(self.problems)
        for key in data:
            if key not in kind.keys:
                other = kinds.with_key(key)
                hint = f" (only {', '.join(k + 's' for k in other)} have it)" if other else ""
                self.add(_join(path, key), f"unknown key {key!r} for a {kind.name} node{hint}")

        description = self.check_description(data, path)
        ui = self.check_ui(data, path)
        fields = kind.check(self, name, data, path)
        if "host" in kind.keys and data.get("host") is not None:
            try:
                fields["host"] = naming.check_host_name(data["host"])
            except ValueError:
                self.add(_join(path, "host"), f"must be a lab host's name ({naming.HOST_NAME_RULE})")
        if "limits" in kind.keys and data.get("limits") is not None:  # the node's cgroup (netops.cell)
            limits, problems = cell_limits.check_limits(data["limits"], _join(path, "limits"),
                                                        vm_memory_mib=fields.get("memory"))
            for problem_path, message in problems:
                self.add(problem_path, message)
            if limits is not None:
                fields["limits"] = limits
        if len(self.problems) != before:
            return None
        return Node(name=name, kind=kind.name, ui=ui, description=description, **fields)

    def check_links(self, raw_links: list[Any]) -> list[Link]:
        links: list[Link] = []
        used: dict[Endpoint, str] = {}
        for index, raw in enumerate(raw_links):
            link = self.check_link(index, raw, used)
            if link is not None:
                links.append(link)
        ends: dict[str, int] = {}
        for link in links:
            for end in (link.a, link.b):
                ends[end.node] = ends.get(end.node, 0) + 1
        for node, count in sorted(ends.items()):
            kind = self.kinds.get(node)
            if kind is not None and kind.max_links is not None and count > kind.max_links:
                self.add(f"nodes.{node}", f"{count} links end here, at most {kind.max_links} may: "
                                          f"{kind.max_links_reason}")
        for node, ifaces in self.interfaces.items():
            kind = self.kinds.get(node)
            if kind is None or not kind.interfaces or node in self.miswired:
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
        a, b = (endpoints + [None, None])[:2]
        if len(endpoints) == 2 and a is not None and b is not None:
            if a == b:
                self.add(_join(ep_path, 1), f"a link cannot connect {str(a)!r} to itself")
            else:
                ka, kb = self.kinds[a.node], self.kinds[b.node]
                assert ka is not None and kb is not None  # endpoints of invalid nodes are None
                problem = ka.link_problem(kb, a.node, b.node) or kb.link_problem(ka, b.node, a.node)
                if problem:
                    self.add(ep_path, problem)
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
        if a is not None and b is not None and a != b and conditions.any():
            ends = {self.kinds[a.node].link_end, self.kinds[b.node].link_end}  # type: ignore[union-attr]
            if "ns" not in ends and ends != {"segment"}:  # shaped on a namespace's interface, or between bridges
                key = next(k for k in ("delay", "jitter", "loss", "rate") if data.get(k) is not None)
                self.add(_join(path, key), "link conditions need a host or router at one end of the link "
                                           "(or two bridges)")
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
        if kind.interfaces and not sep:
            problem = f"{text!r}: a {kind.name} is connected through an interface, like '{node}:eth0'"
        elif kind.interfaces and iface not in self.interfaces.get(node, {}):
            problem = f"{text!r}: {node} has no interface {iface!r} (declare it under nodes.{node}.interfaces)"
        elif not kind.interfaces and sep:
            problem = f"{text!r}: a {kind.name} is connected by its bare name {node!r}, without an interface"
        if problem:
            self.add(path, problem)
            self.miswired.add(node)
            return None
        return Endpoint(node, iface if kind.interfaces else None)

    def check_conditions(self, data: dict[str, Any], path: str) -> LinkConditions:
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

