"""The rules of each key of a `checks:` list (netops.labchecks, docs/topology.md "Checks"): one pass collects every
problem with its path and builds the checks that are valid. Patterns are compiled with RE2 (see netops.labchecks)."""
from __future__ import annotations

import ipaddress
import math
from typing import Any

import re2

from . import naming
from .check_iface import describe, ifname_problem, is_int, parse_ip
from .errors import Problem
from .labchecks import (
    CHECK_ID_RE,
    COMMAND_TIMEOUT_RANGE,
    COMMON_KEYS,
    DEFAULTS,
    EXPECT,
    KINDS,
    MAX_ARG_CHARS,
    MAX_ARGV,
    MAX_CHECKS,
    MAX_REGEX_CHARS,
    MAX_TITLE_CHARS,
    MAX_WAIT_S,
    PING_COUNT_RANGE,
    POINTS_RANGE,
    VISIBILITIES,
    Check,
    Target,
)
from .yamlsafe import join as _join


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
