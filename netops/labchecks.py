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
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import kinds, naming
from .errors import Problem
from .model import Node

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

    def runs_in(self) -> str:
        """The node this check runs in or reads (its `from`, `node` or `server`): where a lab across hosts runs it."""
        return next((str(self.spec[k]) for k in ("from", "node", "server") if isinstance(self.spec.get(k), str)), "")

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


def parse_checks(raw: object, path: str = "checks") -> tuple[list[Check], list[Problem]]:
    """The checks of a `checks:` list (None: none), and every problem of their structure, at its path
    (netops.labcheck_parse has the rules of each key)."""
    from .labcheck_parse import parse_checks as parse  # it builds this module's Check and Target

    return parse(raw, path)


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


def for_student(document: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """What a student may see of a normalised `checks:` list: `details` whole, `title` its id, title and points,
    `hidden` nothing."""
    out = []
    for item in document or []:
        seen = item.get("visibility", "details")
        if seen == "details":
            out.append(item)
        elif seen == "title":
            out.append({"id": item.get("id"), "title": item.get("title"), "points": item.get("points", 1),
                        "visibility": "title"})
    return out
