"""Lab checks: the top-level `checks:` of a document says what "working" means (docs/topology.md, "Checks").

    parse_checks(raw, path="checks") -> (checks, problems)   the structure of each check, strictly, at its path
    cross_check(checks, nodes, known) -> problems            the nodes, interfaces and targets they name exist
    to_document(checks) -> list                              the normalised `checks:` of the document
    score(outcomes) -> dict                                  points earned of points possible, per check

Pure code (no kernel): the checker (netops.check) calls `parse_checks` and `cross_check` for a document; the runner
(netops.labcheck_run) executes parsed checks against a deployed lab. A template's checks may be run against a
student's lab whose nodes were renamed or removed since: there the runner reports "no node h2 in this lab" as a
failed check, not as an invalid document.

Regular expressions (`command.output_matches`) are compiled and matched with RE2 (google-re2), which runs in time
linear in the input: a pattern that backtracks catastrophically under Python's `re` (`(a+)+$`) is harmless. RE2
refuses backreferences and look-around, which is the price; patterns are at most MAX_REGEX_CHARS long, and the
output they are matched against is capped (netops.labcheck_run.MAX_OUTPUT).
"""
from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import re2

from . import kinds, naming
from .check_iface import describe, ifname_problem, is_int, parse_ip
from .errors import Problem
from .model import Node, Topology
from .yamlsafe import join as _join

MAX_CHECKS = 200
CHECK_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}\Z")
MAX_TITLE_CHARS = 200
POINTS_RANGE = (0, 1000)
MAX_WAIT_S = 600
VISIBILITIES = ("details", "title", "hidden")
COMMON_KEYS = ("id", "title", "points", "wait", "visibility")
MAX_ARGV = 64
MAX_ARG_CHARS = 1024
MAX_REGEX_CHARS = 1000
COMMAND_TIMEOUT_RANGE = (1, 60)
PING_COUNT_RANGE = (1, 10)

#: kind -> (its keys, the required ones)
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ping": (("from", "to", "expect", "count"), ("from", "to")),
    "address": (("node", "interface", "in"), ("node", "interface", "in")),
    "route": (("node", "to", "via", "present"), ("node", "to")),
    "nat": (("node", "interface"), ("node", "interface")),
    "dhcp_lease": (("server", "interface", "count_at_least"), ("server",)),
    "tcp": (("from", "to", "port", "expect"), ("from", "to", "port")),
    "ospf_neighbor": (("node", "neighbor", "interface", "state"), ("node",)),
    "bgp_session": (("node", "peer", "state"), ("node", "peer")),
    "command": (("node", "run", "exit", "output_matches", "timeout"), ("node", "run")),
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "ping": {"expect": "success", "count": 2}, "tcp": {"expect": "open"}, "route": {"present": True},
    "dhcp_lease": {"count_at_least": 1}, "command": {"exit": 0, "timeout": 10}, "ospf_neighbor": {"state": "Full"},
    "bgp_session": {"state": "Established"}}
EXPECT = {"ping": ("success", "failure"), "tcp": ("open", "closed")}


@dataclass(frozen=True)
class Target:
    """Where a ping or tcp check goes: an address, or a node (and interface) whose address is looked up."""

    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    node: str | None = None
    interface: str | None = None

    def __str__(self) -> str:
        if self.ip is not None:
            return str(self.ip)
        return f"{self.node}:{self.interface}" if self.interface else str(self.node)


@dataclass(frozen=True)
class Check:
    """One validated check. `spec` holds the kind's values, already parsed (see KINDS for the keys)."""

    id: str
    title: str
    kind: str
    spec: dict[str, Any]
    points: int = 1
    wait: float = 0.0
    visibility: str = "details"
    index: int = 0  # position in `checks`, for paths

    @property
    def path(self) -> str:
        return f"checks.{self.index}"

    def nodes(self) -> list[str]:
        """The nodes this check names (highlighted on the canvas when it fails)."""
        out = [self.spec[k] for k in ("from", "node", "server") if isinstance(self.spec.get(k), str)]
        for key in ("to", "peer", "neighbor"):
            value = self.spec.get(key)
            if isinstance(value, Target) and value.node:
                out.append(value.node)
            elif isinstance(value, str) and naming.NODE_NAME_RE.match(value):
                out.append(value)
        return list(dict.fromkeys(out))

    def interfaces(self) -> list[tuple[str, str]]:
        """(node, interface) pairs this check names: the links on them are highlighted when it fails."""
        out = []
        node = self.spec.get("node") or self.spec.get("server")
        if isinstance(node, str) and isinstance(self.spec.get("interface"), str):
            out.append((node, self.spec["interface"]))
        to = self.spec.get("to")
        if isinstance(to, Target) and to.node and to.interface:
            out.append((to.node, to.interface))
        return out


@dataclass
class Outcome:
    """What running one check found."""

    id: str
    title: str
    passed: bool
    message: str  # what was seen
    points: int
    visibility: str = "details"
    seconds: float = 0.0
    nodes: list[str] = field(default_factory=list)
    links: list[int] = field(default_factory=list)  # indexes of `links` to highlight
    error: bool = False  # the check could not be run at all (not "the lab is wrong")
    attempts: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "passed": self.passed, "message": self.message,
                "points": self.points, "earned": self.points if self.passed else 0, "visibility": self.visibility,
                "seconds": round(self.seconds, 3), "nodes": self.nodes, "links": self.links, "error": self.error, "attempts": self.attempts}


def score(outcomes: list[Outcome]) -> dict[str, Any]:
    """{earned, possible, percent, passed, failed, checks: [outcome dicts]} of one run of a lab's checks."""
    possible = sum(o.points for o in outcomes)
    earned = sum(o.points for o in outcomes if o.passed)
    return {"earned": earned, "possible": possible,
            "percent": round(100.0 * earned / possible, 1) if possible else (100.0 if outcomes else 0.0),
            "passed": sum(1 for o in outcomes if o.passed), "failed": sum(1 for o in outcomes if not o.passed),
            "checks": [o.as_dict() for o in outcomes]}


# ------------------------------------------------------------------------------------------------ parsing


class _Parser:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def text(self, value: object, path: str, limit: int) -> str | None:
        if not isinstance(value, str) or not 1 <= len(value) <= limit or not value.isprintable():
            self.add(path, f"{describe(value)} must be a line of text of 1 to {limit} characters")
            return None
        return value

    def node(self, value: object, path: str) -> str | None:
        if not isinstance(value, str) or not naming.NODE_NAME_RE.match(value):
            self.add(path, f"{describe(value)} is not a node name")
            return None
        return value

    def ifname(self, value: object, path: str) -> str | None:
        problem = ifname_problem(value)
        if problem:
            self.add(path, problem)
            return None
        return str(value)

    def integer(self, value: object, path: str, low: int, high: int) -> int | None:
        if not is_int(value) or not low <= value <= high:  # type: ignore[operator]
            self.add(path, f"{describe(value)} must be an integer from {low} to {high}")
            return None
        assert isinstance(value, int)
        return value

    def choice(self, value: object, path: str, choices: tuple[str, ...]) -> str | None:
        if value not in choices:
            self.add(path, f"{describe(value)} must be one of {', '.join(choices)}")
            return None
        return str(value)

    def ip(self, value: object, path: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            return parse_ip(value)
        except ValueError as exc:
            self.add(path, str(exc))
            return None

    def target(self, value: object, path: str) -> Target | None:
        """`10.0.2.1`, `h2` or `h2:eth0`."""
        if isinstance(value, str):
            try:
                return Target(ip=ipaddress.ip_address(value.strip()))
            except ValueError:
                pass
            node, sep, iface = value.partition(":")
            if naming.NODE_NAME_RE.match(node) and (not sep or ifname_problem(iface) is None):
                return Target(node=node, interface=iface if sep else None)
        self.add(path, f"{describe(value)} is not an address, a node or node:interface (like 10.0.2.1, h2, h2:eth0)")
        return None

    def in_spec(self, value: object, path: str) -> tuple[str, Any] | None:
        """`address.in`: a range `a-b`, a network `10.0.1.0/24`, or one address."""
        if isinstance(value, str) and value.count("-") == 1:
            a, b = (p.strip() for p in value.split("-"))
            try:
                start, end = ipaddress.ip_address(a), ipaddress.ip_address(b)
            except ValueError:
                start = end = None  # type: ignore[assignment]
            if start is not None and end is not None:
                if start.version != end.version or int(start) > int(end):
                    self.add(path, f"{value!r}: the range must go from a lower to a higher address of one family")
                    return None
                return ("range", (start, end))
        elif isinstance(value, str) and "/" in value:
            try:
                return ("network", ipaddress.ip_network(value.strip(), strict=False))
            except ValueError:
                pass
        elif isinstance(value, str):
            try:
                return ("exact", ipaddress.ip_address(value.strip()))
            except ValueError:
                pass
        self.add(path, f"{describe(value)} is not a range (10.0.1.100-10.0.1.150), a network (10.0.1.0/24) or "
                       "an address")
        return None

    def network(self, value: object, path: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        if value == "default":
            return ipaddress.IPv4Network("0.0.0.0/0")
        try:
            if isinstance(value, str) and "/" in value:
                return ipaddress.ip_network(value.strip())
        except ValueError as exc:
            self.add(path, f"{value!r} is not 'default' or a network like '10.0.2.0/24' ({exc})")
            return None
        self.add(path, f"{describe(value)} is not 'default' or a network like '10.0.2.0/24'")
        return None

    def regex(self, value: object, path: str) -> str | None:
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_REGEX_CHARS:
            self.add(path, f"must be a regular expression of 1 to {MAX_REGEX_CHARS} characters")
            return None
        try:
            re2.compile(value)
        except re2.error as exc:  # RE2 has no backreferences or look-around
            self.add(path, f"{value!r} is not a regular expression RE2 accepts ({exc})")
            return None
        return value

    def argv(self, value: object, path: str) -> list[str] | None:
        if (not isinstance(value, list) or not 1 <= len(value) <= MAX_ARGV
                or not all(isinstance(a, str) and len(a) <= MAX_ARG_CHARS and "\0" not in a for a in value)
                or not value[0]):
            self.add(path, f"must be a command as a list of 1 to {MAX_ARGV} strings (like [ip, route]), each "
                           f"at most {MAX_ARG_CHARS} characters, the first not empty")
            return None
        return list(value)

    # ---- one check

    def check(self, index: int, raw: object, ids: dict[str, str]) -> Check | None:
        path = _join("checks", index)
        if not isinstance(raw, dict):
            self.add(path, f"must be a mapping with id, title and one check (like ping: ...), not {describe(raw)}")
            return None
        before = len(self.problems)
        found = [k for k in raw if k in KINDS]
        for key in raw:
            if key not in KINDS and key not in COMMON_KEYS:
                self.add(_join(path, key), f"unknown key {key!r} (a check has {', '.join(COMMON_KEYS)} and one of "
                                           f"{', '.join(KINDS)})")
        if len(found) != 1:
            self.add(path, f"needs exactly one of {', '.join(KINDS)}" + (f", not {', '.join(found)}" if found else ""))
        check_id = None
        if "id" not in raw:
            self.add(_join(path, "id"), "is required (a short name like lan-ping)")
        elif not isinstance(raw["id"], str) or not CHECK_ID_RE.match(raw["id"]):
            self.add(_join(path, "id"), f"{describe(raw['id'])} must be a letter, then up to 63 letters, digits, "
                                        "'_' or '-'")
        elif raw["id"] in ids:
            self.add(_join(path, "id"), f"{raw['id']!r} is already the id of {ids[raw['id']]}")
        else:
            check_id = raw["id"]
            ids[check_id] = path
        title = self.text(raw.get("title"), _join(path, "title"), MAX_TITLE_CHARS) if "title" in raw else None
        if "title" not in raw:
            self.add(_join(path, "title"), "is required (what the check proves, for people)")
        points = 1
        if raw.get("points") is not None:
            points = self.integer(raw["points"], _join(path, "points"), *POINTS_RANGE) or 0
        wait = 0.0
        if raw.get("wait") is not None:
            value = raw["wait"]
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or not 0 <= value <= MAX_WAIT_S):
                self.add(_join(path, "wait"), f"{describe(value)} must be a number of seconds from 0 to {MAX_WAIT_S}")
            else:
                wait = float(value)
        visibility = "details"
        if raw.get("visibility") is not None:
            visibility = self.choice(raw["visibility"], _join(path, "visibility"), VISIBILITIES) or "details"
        spec: dict[str, Any] = {}
        if len(found) == 1:
            spec = self.spec(found[0], raw[found[0]], _join(path, found[0]))
        if len(self.problems) != before or check_id is None or title is None:
            return None
        return Check(id=check_id, title=title, kind=found[0], spec=spec, points=points, wait=wait,
                     visibility=visibility, index=index)

    def spec(self, kind: str, raw: object, path: str) -> dict[str, Any]:
        keys, required = KINDS[kind]
        if not isinstance(raw, dict):
            self.add(path, f"must be a mapping ({', '.join(required)}, ...), not {describe(raw)}")
            return {}
        for key in raw:
            if key not in keys:
                self.add(_join(path, key), f"unknown key {key!r} for a {kind} check (it has {', '.join(keys)})")
        for key in required:
            if raw.get(key) is None:
                self.add(_join(path, key), "is required")
        spec: dict[str, Any] = {}
        for key, value in dict(raw).items():
            if key not in keys or value is None:
                continue
            where = _join(path, key)
            parsed = self.value(kind, key, value, where)
            if parsed is not None:
                spec[key] = parsed
        for key, value in DEFAULTS.get(kind, {}).items():
            spec.setdefault(key, value)
        return spec

    def value(self, kind: str, key: str, value: object, where: str) -> Any:
        if key in ("from", "node", "server"):
            return self.node(value, where)
        if key == "interface":
            return self.ifname(value, where)
        if key == "to" and kind in ("ping", "tcp"):
            return self.target(value, where)
        if key == "to":
            return self.network(value, where)
        if key == "expect":
            return self.choice(value, where, EXPECT[kind])
        if key == "count":
            return self.integer(value, where, *PING_COUNT_RANGE)
        if key == "count_at_least":
            return self.integer(value, where, 0, 100_000)
        if key == "port":
            return self.integer(value, where, 1, 65535)
        if key == "exit":
            return self.integer(value, where, 0, 255)
        if key == "timeout":
            return self.integer(value, where, *COMMAND_TIMEOUT_RANGE)
        if key == "in":
            return self.in_spec(value, where)
        if key == "via":
            return self.ip(value, where)
        if key == "present":
            if not isinstance(value, bool):
                self.add(where, f"{describe(value)} must be true or false")
                return None
            return value
        if key == "run":
            return self.argv(value, where)
        if key == "output_matches":
            return self.regex(value, where)
        if key in ("peer", "neighbor"):  # an address (a router id) or a node name
            try:
                return parse_ip(value)
            except ValueError:
                if isinstance(value, str) and naming.NODE_NAME_RE.match(value):
                    return value
            self.add(where, f"{describe(value)} is not an address or a node name")
            return None
        if key == "state":
            return self.text(value, where, 32)
        raise AssertionError(f"no parser for {kind}.{key}")  # KINDS and value() disagree


def parse_checks(raw: object, path: str = "checks") -> tuple[list[Check], list[Problem]]:
    """The checks of a `checks:` list (None: none), and every problem of their structure, at its path."""
    parser = _Parser()
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        return [], [Problem(path, f"must be a list of checks, not {describe(raw)}")]
    if len(raw) > MAX_CHECKS:
        return [], [Problem(path, f"a lab has at most {MAX_CHECKS} checks, this one has {len(raw)}")]
    ids: dict[str, str] = {}
    checks = [c for i, item in enumerate(raw) if (c := parser.check(i, item, ids)) is not None]
    return checks, parser.problems


# ------------------------------------------------------------------------------------------------ cross-check


def lab_networks(nodes: Mapping[str, Node]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The subnets of every address the lab's nodes have (static addresses; DHCP ranges lie in their server's)."""
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for node in nodes.values():
        for iface in node.interfaces.values():
            nets.extend(a.network for a in iface.addresses)
        if node.address is not None:
            nets.append(node.address.network)
    return list(dict.fromkeys(nets))


def has_uplink(nodes: Mapping[str, Node]) -> bool:
    return any(kinds.get(n.kind).uplink for n in nodes.values())


def target_refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, nodes: Mapping[str, Node]) -> str | None:
    """Why a ping/tcp check may not go to `ip`, or None. A check must not be a way to probe the host: a lab without
    an uplink reaches only its own subnets, so only those are targets; a lab with one may reach beyond, but never
    loopback, multicast or unspecified addresses."""
    if ip.is_loopback or ip.is_multicast or ip.is_unspecified:
        return f"{ip} is not a unicast address a lab node can be checked against"
    if any(ip in net for net in lab_networks(nodes)):
        return None
    if has_uplink(nodes):
        return None
    return f"{ip} is not an address of this lab (in none of its subnets), and the lab has no uplink"


def _node_problem(name: str, nodes: Mapping[str, Node], known: Collection[str], *, namespace: bool = False,
                  interfaces: bool = False) -> str | None:
    if name not in known:
        return f"unknown node {name!r}"
    node = nodes.get(name)
    if node is None:
        return None  # invalid itself: reported at its own path
    kind = kinds.get(node.kind)
    if namespace and not kind.namespace:
        return f"{name} is a {kind.name}: this check runs inside a node's namespace (a node like a host or router)"
    if interfaces and not kind.interfaces:
        return f"{name} is a {kind.name}, which has no interfaces"
    return None


def cross_check(checks: list[Check], nodes: Mapping[str, Node], known: Collection[str]) -> list[Problem]:
    """Problems of checks that name nodes or interfaces the lab does not have, or targets it cannot reach."""
    problems: list[Problem] = []

    def add(path: str, message: str | None) -> None:
        if message:
            problems.append(Problem(path, message))

    for check in checks:
        base = f"{check.path}.{check.kind}"
        spec = check.spec
        in_ns = check.kind in ("ping", "tcp", "route", "nat", "command", "ospf_neighbor", "bgp_session",
                               "dhcp_lease")
        for key in ("from", "node", "server"):
            if key in spec:
                add(f"{base}.{key}", _node_problem(spec[key], nodes, known, namespace=in_ns, interfaces=True))
        owner = str(spec.get("node") or spec.get("server") or "")
        if "interface" in spec and owner in nodes and spec["interface"] not in nodes[owner].interfaces:
            add(f"{base}.interface", f"{owner} has no interface {spec['interface']!r}")
        to = spec.get("to")
        if isinstance(to, Target):
            if to.ip is not None:
                add(f"{base}.to", target_refusal(to.ip, nodes))
            else:
                assert to.node is not None
                add(f"{base}.to", _node_problem(to.node, nodes, known, interfaces=True))
                if to.interface and to.node in nodes and to.interface not in nodes[to.node].interfaces:
                    add(f"{base}.to", f"{to.node} has no interface {to.interface!r}")
        for key in ("peer", "neighbor"):
            if isinstance(spec.get(key), str):
                add(f"{base}.{key}", _node_problem(spec[key], nodes, known, interfaces=True))
        server = nodes.get(spec.get("server", ""))
        if check.kind == "dhcp_lease" and server is not None:
            served = [n for n, i in server.interfaces.items() if i.dhcp_server is not None]
            if not served:
                add(f"{base}.server", f"{server.name} serves DHCP on no interface (no dhcp_server)")
            elif "interface" in spec and spec["interface"] in server.interfaces and spec["interface"] not in served:
                add(f"{base}.interface", f"{server.name}'s {spec['interface']} has no dhcp_server")
        router = nodes.get(spec.get("node", ""))
        if check.kind in ("ospf_neighbor", "bgp_session") and router is not None:
            protocol = "ospf" if check.kind == "ospf_neighbor" else "bgp"
            if router.routing is None or getattr(router.routing, protocol, None) is None:
                add(f"{base}.node", f"{router.name} does not run {protocol.upper()} (no routing.{protocol})")
    return problems


def check_section(raw: object, nodes: Mapping[str, Node], known: Collection[str]) -> tuple[list[Check], list[Problem]]:
    """What the document checker calls: parse, then cross-check against the document's nodes."""
    checks, problems = parse_checks(raw)
    return checks, problems + cross_check(checks, nodes, known)


def of(topology: Topology) -> list[Check]:
    """The checks of a validated topology."""
    return list(getattr(topology, "checks", ()) or ())


# ------------------------------------------------------------------------------------------------ writing


def _value_document(value: Any) -> Any:
    if isinstance(value, Target):
        return str(value)
    if isinstance(value, tuple) and len(value) == 2 and value[0] in ("range", "network", "exact"):
        how, v = value
        return f"{v[0]}-{v[1]}" if how == "range" else str(v)
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network,
                          ipaddress.IPv6Network)):
        return "default" if str(value) == "0.0.0.0/0" else str(value)
    if isinstance(value, list):
        return list(value)
    return value


def check_document(check: Check) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": check.id, "title": check.title}
    if check.points != 1:
        doc["points"] = check.points
    if check.wait:
        doc["wait"] = int(check.wait) if check.wait == int(check.wait) else check.wait
    if check.visibility != "details":
        doc["visibility"] = check.visibility
    keys = KINDS[check.kind][0]
    doc[check.kind] = {k: _value_document(check.spec[k]) for k in keys if k in check.spec}
    return doc


def to_document(checks: list[Check] | tuple[Check, ...]) -> list[dict[str, Any]]:
    return [check_document(c) for c in checks]


def for_student(document: list[dict[str, Any]] | None, visibility_of: str = "visibility") -> list[dict[str, Any]]:
    """What a student may see of a normalised `checks:` list: `details` whole, `title` its id, title and points,
    `hidden` nothing."""
    out = []
    for item in document or []:
        seen = item.get(visibility_of, "details")
        if seen == "details":
            out.append(item)
        elif seen == "title":
            out.append({"id": item.get("id"), "title": item.get("title"), "points": item.get("points", 1),
                        "visibility": "title"})
    return out
