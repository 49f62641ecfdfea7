"""What a running router's FRR says: its status (lab status, the canvas's adjacency marks) and, for its properties
panel, its routing table and neighbor states.

`router_status(lab, node, processes)` (netops.kinds.router's status): daemons alive, the number of routes, OSPF
neighbors and BGP sessions with their state, and the interface each runs over.

`router_view(lab, node)` asks the router's own FRR instance through vtysh in the lab's cell (as `router_status`
does for status), in two calls: first the table summaries (`show ip route summary json`, `show ipv6 route summary
json`) and the neighbors of the daemons that run (`show ip ospf neighbor json`, `show ipv6 ospf6 neighbor json`,
`show bgp summary json`), then the routes (`show ip route json`, `show ipv6 route json`). The summaries come first
so that a huge table is never asked for whole: a family with more than `LIST_LIMIT` routes is listed by protocol
(`show ip route ospf json`, ...), smallest first, as long as they fit, and the answer says what was left out. At
most `ROUTE_LIMIT` routes are returned (sorted by prefix), with a note when there were more.

The answers are the lab's: a student with a console can stop zebra and answer on its socket, so everything parsed
here is untrusted JSON. Only the fixed command words above reach vtysh's argv (a protocol named by a summary is
looked up in `PROTOCOL_COMMANDS`, never copied), strings are cut to `TEXT_MAX`, numbers must be numbers, lists are
bounded, and the caller sends the result to the browser as JSON data (the panel shows it as text).
"""
from __future__ import annotations

import ipaddress
import json
from typing import Any

from . import frr, kinds
from .capture import deployed_topology
from .errors import ApplyError, Problem, TopologyError
from .model import Node, Topology
from .routing import Routing

ROUTE_LIMIT = 500  # routes returned to the panel
LIST_LIMIT = 2000  # routes asked of zebra at most (a route is about 500 bytes of JSON)
MAX_OUTPUT = 8 << 20  # bytes of vtysh answer read at most
NEXTHOP_LIMIT = 16
NEIGHBOR_LIMIT = 256
TEXT_MAX = 64
#: a protocol as a route summary names it -> the word of `show ip[v6] route <word> json`
PROTOCOL_COMMANDS = {"kernel": "kernel", "connected": "connected", "static": "static", "ospf": "ospf",
                     "ospf6": "ospf6", "ebgp": "bgp", "ibgp": "bgp", "bgp": "bgp", "rip": "rip", "ripng": "ripng",
                     "isis": "isis", "babel": "babel", "eigrp": "eigrp", "sharp": "sharp", "pbr": "pbr"}
FAMILIES = ((4, "ip"), (6, "ipv6"))


def _text(value: object) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)[:TEXT_MAX]


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bool(value: object) -> bool:
    return value is True


# ------------------------------------------------------------------------------------------------ pure: parse


def status_commands(routing: Routing) -> list[str]:
    cmds = ["show ip route summary json"]
    if routing.ospf is not None:
        cmds.append("show ip ospf neighbor json")
    if routing.ospf6 is not None:
        cmds.append("show ipv6 ospf6 neighbor json")
    if routing.bgp is not None:
        cmds.append("show bgp summary json")
    return cmds


def json_answers(text: str) -> list[object]:
    """The JSON objects of `vtysh -c ... -c ...` answers, concatenated, in order; lines that are no JSON (vtysh's
    "% ... is not running") are skipped."""
    decoder = json.JSONDecoder()
    answers: list[object] = []
    i = 0
    while i < len(text):
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        try:
            obj, i = decoder.raw_decode(text, i)
        except ValueError:
            nl = text.find("\n", i)
            i = len(text) if nl < 0 else nl + 1
            continue
        answers.append(obj)
    return answers


def local_interface(node: Node, peer: str) -> str | None:
    """The router's interface a BGP peer is reached on: the interface itself (unnumbered), or the one whose subnet
    holds the peer's address (None: a multihop peer, or no such subnet)."""
    if peer in node.interfaces:
        return peer
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return None
    for name, iface in node.interfaces.items():
        if any(address in a.network for a in iface.addresses if a.version == address.version):
            return name
    return None


def parse_status(commands: list[str], text: str) -> dict[str, Any]:
    """The JSON answers of `vtysh -c ... -c ...` (one object per command, concatenated) -> a summary:
    routes, ospf/ospf6 neighbors (id, interface, state), bgp sessions (peer, state, prefixes received)."""
    answers = json_answers(text)
    out: dict[str, Any] = {"routes": None, "ospf": [], "ospf6": [], "bgp": []}
    for cmd, ans in zip(commands, answers, strict=False):
        if not isinstance(ans, dict):
            continue
        if "route summary" in cmd:
            out["routes"] = ans.get("routesTotal")
        elif "ip ospf neighbor" in cmd:
            for rid, entries in (ans.get("neighbors") or {}).items():
                for e in entries if isinstance(entries, list) else [entries]:
                    out["ospf"].append({"id": rid, "interface": str(e.get("ifaceName", "")).split(":")[0],
                                        "state": str(e.get("nbrState") or e.get("state") or "")})
        elif "ospf6 neighbor" in cmd:
            for e in ans.get("neighbors") or []:
                out["ospf6"].append({"id": e.get("neighborId"), "interface": e.get("interfaceName"),
                                     "state": str(e.get("state", ""))})
        elif "bgp summary" in cmd:
            for af, body in ans.items():
                for peer, p in ((body or {}).get("peers") or {}).items() if isinstance(body, dict) else ():
                    out["bgp"].append({"peer": peer, "af": af, "asn": p.get("remoteAs"),
                                       "state": p.get("state"), "prefixes": p.get("pfxRcd")})
    return out


def router_status(lab: str, node: Node, processes: dict[str, int]) -> tuple[dict[str, Any], list[str]]:
    """(status, drift) of a router's FRR instance: daemons alive, neighbors, sessions, routes."""
    routing: Routing = node.routing
    path = f"nodes.{node.name}.routing"
    alive = {d: frr.role(node.name, d) in processes for d in routing.daemons()}
    drift = [f"{path}: FRR daemon {d} is not running" for d, ok in alive.items() if not ok]
    status: dict[str, Any] = {"daemons": alive, "routes": None, "ospf": [], "ospf6": [], "bgp": []}
    if alive.get("zebra"):
        cmds = [c for c in status_commands(routing)
                if not (("ospf neighbor" in c and not alive.get("ospfd")) or ("ospf6" in c and not alive.get("ospf6d"))
                        or ("bgp" in c and not alive.get("bgpd")))]
        status.update(parse_status(cmds, frr.ask(lab, node.name, cmds, timeout=10).decode(errors="replace")))
        for session in status["bgp"]:  # the canvas marks the link a session runs over
            session["interface"] = local_interface(node, str(session["peer"]))
    return status, drift


def parse_summary(answer: object) -> tuple[int, dict[str, int]]:
    """(routes in the RIB, {protocol word: routes}) of a `show ip route summary json` answer."""
    if not isinstance(answer, dict):
        return 0, {}
    by_word: dict[str, int] = {}
    for entry in answer.get("routes") or []:
        if not isinstance(entry, dict):
            continue
        word = PROTOCOL_COMMANDS.get(str(entry.get("type")))
        count = _int(entry.get("rib"))
        if word is not None and count:
            by_word[word] = by_word.get(word, 0) + count
    total = _int(answer.get("routesTotal"))
    return (total if total is not None else sum(by_word.values())), by_word


def plan_listing(total: int, by_word: dict[str, int], budget: int) -> tuple[list[str] | None, list[str]]:
    """What to ask zebra for one family: (None: the whole table | the protocol words to list, those left out)."""
    if total <= budget:
        return None, []
    listed, left = [], []
    for word, count in sorted(by_word.items(), key=lambda kv: (kv[1], kv[0])):
        if count <= budget:
            listed.append(word)
            budget -= count
        else:
            left.append(word)
    return listed, left


def parse_routes(answer: object, family: int) -> list[dict[str, Any]]:
    """The rows of a `show ip[v6] route [protocol] json` answer: one per RIB entry."""
    rows: list[dict[str, Any]] = []
    if not isinstance(answer, dict):
        return rows
    for prefix, entries in answer.items():
        for e in entries if isinstance(entries, list) else []:
            if not isinstance(e, dict):
                continue
            hops = []
            for nh in (e.get("nexthops") or [])[:NEXTHOP_LIMIT] if isinstance(e.get("nexthops"), list) else []:
                if isinstance(nh, dict):
                    hops.append({"via": _text(nh.get("ip")), "interface": _text(nh.get("interfaceName")),
                                 "active": _bool(nh.get("active")), "fib": _bool(nh.get("fib")),
                                 "connected": _bool(nh.get("directlyConnected"))})
            rows.append({"prefix": str(prefix)[:TEXT_MAX], "family": family, "protocol": _text(e.get("protocol")),
                         "selected": _bool(e.get("selected")), "installed": _bool(e.get("installed")),
                         "distance": _int(e.get("distance")), "metric": _int(e.get("metric")),
                         "uptime": _text(e.get("uptime")), "nexthops": hops})
    return rows


def _route_key(row: dict[str, Any]) -> tuple[int, int, int, str]:
    try:
        net = ipaddress.ip_network(row["prefix"], strict=False)
        return (net.version, int(net.network_address), net.prefixlen, row["protocol"] or "")
    except ValueError:
        return (row["family"], 1 << 128, 0, row["prefix"])


def parse_ospf_neighbors(answer: object) -> list[dict[str, Any]]:
    """`show ip ospf neighbor json` -> [{id, address, interface, state, role, up, dead}]."""
    out: list[dict[str, Any]] = []
    neighbors = answer.get("neighbors") if isinstance(answer, dict) else None
    for rid, entries in neighbors.items() if isinstance(neighbors, dict) else ():
        for e in entries if isinstance(entries, list) else [entries]:
            if isinstance(e, dict):
                out.append({"id": str(rid)[:TEXT_MAX], "address": _text(e.get("address") or e.get("ifaceAddress")),
                            "interface": (_text(e.get("ifaceName")) or "").split(":")[0] or None,
                            "state": _text(e.get("nbrState") or e.get("state")) or "", "role": _text(e.get("role")),
                            "up": _text(e.get("upTime")), "dead": _text(e.get("deadTime"))})
    return out[:NEIGHBOR_LIMIT]


def parse_ospf6_neighbors(answer: object) -> list[dict[str, Any]]:
    """`show ipv6 ospf6 neighbor json` -> [{id, interface, state, role, up, dead}]."""
    neighbors = answer.get("neighbors") if isinstance(answer, dict) else None
    return [{"id": _text(e.get("neighborId")), "address": None, "interface": _text(e.get("interfaceName")),
             "state": _text(e.get("state")) or "", "role": _text(e.get("interfaceState")),
             "up": _text(e.get("duration")), "dead": _text(e.get("deadTime"))}
            for e in (neighbors if isinstance(neighbors, list) else [])[:NEIGHBOR_LIMIT] if isinstance(e, dict)]


def parse_bgp_summary(answer: object, node: Node) -> list[dict[str, Any]]:
    """`show bgp summary json` -> [{peer, interface, af, asn, state, up, received, sent}] (interface: where the
    session runs, local_interface)."""
    out: list[dict[str, Any]] = []
    for af, body in answer.items() if isinstance(answer, dict) else ():
        peers = body.get("peers") if isinstance(body, dict) else None
        for peer, p in peers.items() if isinstance(peers, dict) else ():
            if not isinstance(p, dict):
                continue
            name = str(peer)[:TEXT_MAX]
            out.append({"peer": name, "interface": local_interface(node, name), "af": str(af)[:TEXT_MAX],
                        "asn": _int(p.get("remoteAs")), "state": _text(p.get("state")) or "",
                        "up": _text(p.get("peerUptime")), "received": _int(p.get("pfxRcd")),
                        "sent": _int(p.get("pfxSnt")), "description": _text(p.get("desc"))})
    return out[:NEIGHBOR_LIMIT]


def _is_bgp_summary(answer: object) -> bool:
    return isinstance(answer, dict) and any(isinstance(v, dict) and "peers" in v for v in answer.values())


# ------------------------------------------------------------------------------------------------ kernel


def view_target(topology: Topology, name: str) -> Node:
    """The router `name` of `topology` whose FRR a panel may ask (pure: the web tier checks with it before it asks
    the agent); TopologyError at `nodes.<name>` (or its `.routing`) otherwise."""
    node = topology.nodes.get(name) if isinstance(name, str) else None
    if node is None:
        raise TopologyError([Problem(f"nodes.{name}", f"there is no node {str(name)[:40]!r} in the deployed lab")])
    if node.routing is None:
        if "routing" in kinds.get(node.kind).keys:
            raise TopologyError([Problem(f"nodes.{name}.routing", f"{name} has no routing: (no OSPF or BGP), so "
                                                                  "no FRR runs there: nothing to show")])
        raise TopologyError([Problem(f"nodes.{name}", f"{name} is a {node.kind}, not a router: only routers with "
                                                      "routing: run FRR")])
    return node


def _ask(lab: str, node: str, commands: list[str]) -> list[object]:
    out = frr.ask(lab, node, commands, timeout=10, max_output=MAX_OUTPUT)
    if len(out) >= MAX_OUTPUT:
        raise ApplyError(f"FRR of {node} answered more than {MAX_OUTPUT >> 20} MiB", element=f"nodes.{node}.routing")
    return json_answers(out.decode(errors="replace"))


def router_view(lab: str, name: str, *, limit: int = ROUTE_LIMIT) -> dict[str, Any]:
    """The routing table and neighbor states of router `name` of the deployed lab `lab`, from its FRR instance.

    TopologyError (at `nodes.<name>`) when the deployed lab has no such node or it runs no FRR; ApplyError when
    FRR does not answer in time."""
    node = view_target(deployed_topology(lab), name)
    routing = node.routing
    alive = {d: d in frr.running(lab, name) for d in routing.daemons()}
    out: dict[str, Any] = {"node": name, "daemons": alive, "routes": [], "routes_total": 0, "truncated": False,
                           "notes": [], "ospf": [], "ospf6": [], "bgp": []}
    if not alive["zebra"]:
        out["notes"].append(f"FRR is not running on {name} (zebra is down): deploy the lab again")
        return out
    asked = [f"show {word} route summary json" for _, word in FAMILIES]
    daemons = (("ospfd", "show ip ospf neighbor json"), ("ospf6d", "show ipv6 ospf6 neighbor json"),
               ("bgpd", "show bgp summary json"))
    asked += [cmd for daemon, cmd in daemons if alive.get(daemon)]
    answers = _ask(lab, name, asked)
    summaries, rest = answers[:2], answers[2:]
    for answer in rest:  # by shape: a daemon that is not configured yet may answer nothing
        if _is_bgp_summary(answer):
            out["bgp"] = parse_bgp_summary(answer, node)
        elif isinstance(answer, dict) and isinstance(answer.get("neighbors"), dict):
            out["ospf"] = parse_ospf_neighbors(answer)
        elif isinstance(answer, dict) and isinstance(answer.get("neighbors"), list):
            out["ospf6"] = parse_ospf6_neighbors(answer)
    for daemon in ("ospfd", "ospf6d", "bgpd"):
        if daemon in alive and not alive[daemon]:
            out["notes"].append(f"FRR's {daemon} is not running on {name}: its neighbors are unknown")

    listing: list[tuple[int, str]] = []
    budget = LIST_LIMIT
    whole = True  # every table listed whole: then the rows, not the summaries asked a moment before, are the total
    for (family, word), summary in zip(FAMILIES, summaries + [None] * (2 - len(summaries)), strict=True):
        total, by_word = parse_summary(summary)
        out["routes_total"] += total
        words, left = plan_listing(total, by_word, budget)
        if words is None:
            listing.append((family, f"show {word} route json"))
            budget -= total
            continue
        listing += [(family, f"show {word} route {w} json") for w in words]
        budget -= sum(by_word[w] for w in words)
        whole = False
        out["truncated"] = True
        out["notes"].append(f"the IPv{family} table has {total} routes: listed only "
                            f"{', '.join(words) or 'none'}; not {', '.join(left)} (see `show {word} route` in vtysh)")
    rows: list[dict[str, Any]] = []
    if listing:
        tables = _ask(lab, name, [cmd for _, cmd in listing])
        for (family, _), answer in zip(listing, tables, strict=False):
            rows += parse_routes(answer, family)
        if whole:  # a route that came or went between the summary and the listing (found by a CI run: 528 vs 529)
            out["routes_total"] = len(rows)
    kept, cut = keep_routes(rows, limit)
    if cut:
        out["truncated"] = True
        out["notes"].append(f"showing {len(kept)} of {len(rows)} routes: " + ", ".join(
            f"{have} of {total} {proto}" for proto, (have, total) in sorted(cut.items()))
            + " (all of them: `show ip route` in vtysh)")
    out["routes"] = kept
    return out


def keep_routes(rows: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], dict[str, tuple[int, int]]]:
    """At most `limit` rows, sorted by prefix, and {protocol: (kept, of)} for the protocols cut. The protocols with
    fewest routes are kept whole first, so a flood of one kind (a student's 10 000 kernel routes) does not hide
    the OSPF and BGP routes the panel is for."""
    by_proto: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_proto.setdefault(row["protocol"] or "?", []).append(row)
    kept: list[dict[str, Any]] = []
    cut: dict[str, tuple[int, int]] = {}
    for proto, group in sorted(by_proto.items(), key=lambda kv: (len(kv[1]), kv[0])):
        room = limit - len(kept)
        group.sort(key=_route_key)
        if len(group) > room:
            cut[proto] = (room, len(group))
        kept += group[:room]
    kept.sort(key=_route_key)
    return kept, cut
