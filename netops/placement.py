"""Which lab host each node of a lab runs on, when a lab spans hosts (issue 13, part 2). Pure: the web tier gives
the hosts it knows (from their heartbeats) and the placement of the running lab; netops never asks a database.

    place(model, [Seat("lab1", free_mib=8000), Seat("lab2", free_mib=8000)], previous={"r1": "lab1"})
        -> Placement(hosts={"r1": "lab1", "h1": "lab1", "h2": "lab2", ...}, problems=[])

The rules, in order (a demanding user's expectations, not an optimiser; written here because no library places
graph nodes on machines by these rules, and it is short):

1. A node's `host:` pins it. An unknown host or a host that is down is a problem at `nodes.<n>.host`.
2. A node that runs already stays where it runs (`previous`), as long as its host is up: a redeploy never moves
   a running node.
3. An uplink (a kind with `uplink`) runs on one host: its `host:`, else where it ran, else the host with the most
   room. Every node wired to an uplink runs on the uplink's host (the host's network is there); a `host:` that says
   otherwise is a problem at that node's path.
4. The nodes of one switch stay together where they fit: the switches, the biggest first, put their unplaced
   nodes on the host that holds most of that switch's nodes already, if it has room for all of them, else on the
   host with the most room, and spill onto the next hosts by room only when none has room for all. Few links
   cross hosts that way, and each crossing costs a VXLAN tunnel.
5. What is left (nodes wired only directly) goes next to a neighbour that has room, else to the host with the
   most room.

Room is memory in MiB: the web tier derives a host's `free_mib` from its heartbeat; a node's footprint is what it
holds when it runs (Kind.footprint_mib: a namespace and its daemons, or a VM's memory and qemu's own). A node that
fits nowhere is a problem at `nodes.<n>` naming the room each host has left. Ties go to the host name that sorts
first, so one input gives one placement.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import kinds
from .errors import Problem
from .model import Topology


@dataclass(frozen=True)
class Seat:
    """A lab host as placement sees it."""

    name: str
    free_mib: int  # memory it can still give to lab nodes
    up: bool = True


@dataclass
class Placement:
    hosts: dict[str, str] = field(default_factory=dict)  # node -> host, for every node of a kind with `host`
    problems: list[Problem] = field(default_factory=list)


def placed(model: Topology, node: str) -> bool:
    """Whether the node runs on one host (its kind has the `host` key; a switch runs wherever its ports are)."""
    return "host" in kinds.get(model.nodes[node].kind).keys


def place(model: Topology, seats: list[Seat], previous: dict[str, str] | None = None) -> Placement:
    out = Placement()
    known = {s.name: s for s in seats}
    free = {s.name: s.free_mib for s in seats if s.up}
    previous = previous or {}
    nodes = [n for n in model.nodes if placed(model, n)]
    cost = {n: kinds.get(model.nodes[n].kind).footprint_mib(model.nodes[n]) for n in nodes}
    neighbours: dict[str, set[str]] = {n: set() for n in model.nodes}
    for lk in model.links:
        neighbours[lk.a.node].add(lk.b.node)
        neighbours[lk.b.node].add(lk.a.node)

    def put(n: str, host: str) -> None:
        out.hosts[n] = host
        free[host] -= cost[n]

    def roomiest(need: int = 0) -> str | None:
        fitting = [h for h in sorted(free) if free[h] >= need]
        return max(fitting, key=lambda h: free[h]) if fitting else None

    # 1. pinned by the document
    for n in nodes:
        host = model.nodes[n].host
        if host is None:
            continue
        if host not in known:
            names = ", ".join(sorted(known)) or "none"
            out.problems.append(Problem(f"nodes.{n}.host", f"there is no lab host {host!r} (known: {names})"))
        elif host not in free:
            out.problems.append(Problem(f"nodes.{n}.host", f"lab host {host!r} is down"))
        else:
            put(n, host)
    if out.problems:
        return out
    # 2. running nodes stay
    for n in nodes:
        if n not in out.hosts and previous.get(n) in free:
            put(n, previous[n])
    # 3. uplinks and what is wired to them
    for up in [n for n in nodes if kinds.get(model.nodes[n].kind).uplink]:
        if up not in out.hosts:
            host = roomiest()
            if host is None:
                break
            put(up, host)
        for n in sorted(neighbours[up]):
            if n not in cost:
                continue
            if n not in out.hosts:
                put(n, out.hosts[up])
            elif out.hosts[n] != out.hosts[up]:
                out.problems.append(Problem(
                    f"nodes.{n}.host", f"is wired to uplink {up}, which runs on {out.hosts[up]}: nodes on an "
                    f"uplink run on its host"))
    # 4. switches, biggest first
    segments = sorted((n for n in model.nodes if not placed(model, n)), key=lambda s: (-len(neighbours[s]), s))
    for seg in segments:
        todo = sorted(n for n in neighbours[seg] if n in cost and n not in out.hosts)
        if not todo:
            continue
        need = sum(cost[n] for n in todo)
        holding: dict[str, int] = {}
        for n in neighbours[seg]:
            if n in out.hosts:
                holding[out.hosts[n]] = holding.get(out.hosts[n], 0) + 1
        home = next((h for h in sorted(holding, key=lambda h: (-holding[h], h)) if free.get(h, -1) >= need), None)
        home = home or roomiest(need)
        for n in todo:
            host = home if home is not None and free[home] >= cost[n] else roomiest(cost[n])
            if host is None:
                break  # reported below
            put(n, host)
    # 5. the rest
    for n in nodes:
        if n in out.hosts:
            continue
        near = sorted({out.hosts[m] for m in neighbours[n] if m in out.hosts and free[out.hosts[m]] >= cost[n]})
        host = near[0] if near else roomiest(cost[n])
        if host is None:
            left = ", ".join(f"{h} {free[h]} MiB" for h in sorted(free)) or "no host is up"
            out.problems.append(Problem(f"nodes.{n}", f"no lab host has room for it ({cost[n]} MiB; left: {left})"))
            continue
        put(n, host)
    return out
