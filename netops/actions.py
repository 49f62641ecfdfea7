"""Node and link actions on a running lab (issue 18): stop, start and restart a node; set a link down or up;
change a link's delay, jitter, loss and rate live; isolate a node (every link of it down) and reconnect it.

Each action is one operation on the lab (its lock, as deploy and destroy): it changes what the user asks of the
running lab (netops.runtime: nodes stopped, links down) and then applies the deployed document with
`netops.engine.up_locked`, so the planner does the work, as for a deploy, touching only what the change concerns:

- a stopped node has nothing built: its processes (consoles and captures of it too) end, its namespace goes (a VM's
  qemu is powered off, its taps stay); `start` builds it again from the deployed document with its interfaces,
  addresses, routes, links, DHCP server and client and FRR, and plugs its neighbours' ends back in.
- a downed link has its cable pulled (netops.wiring `Shape.cable`): both node ends lose carrier, nothing is
  removed; a redeploy keeps it down and a node restarted behind it comes back with it down.
- `restart` is the kind's (`Kind.restart`: a VM is reset through QMP, a reboot) or else stop then start.
- conditions: the deployed document with the link's new conditions is validated like any document (problems at
  `links.N.delay`), applied in place (netops.plan._conditions) and stored as what runs; the caller (the web app)
  also writes them into the lab's document.

A stopped node and a downed link stay so across redeploys until the user starts or raises them (docs/topology.md,
"Actions on a running lab"); destroy forgets them.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from . import kinds, naming, runtime
from .errors import ApplyError, Problem, TopologyError
from .events import Event, EventSink, emit
from .lock import lab_lock
from .model import Link, Topology
from .span import Span, local_link_keys
from .status import UpResult
from .wiring import link_key

NODE_ACTIONS = ("stop", "start", "restart", "isolate", "reconnect")
LINK_ACTIONS = ("link-down", "link-up", "link-conditions")
ACTIONS = NODE_ACTIONS + LINK_ACTIONS
CONDITION_KEYS = ("delay", "jitter", "loss", "rate")


def deployed_topology(lab: str) -> Topology:
    """The document the lab runs (stored by its last deploy); ApplyError when it is not deployed."""
    from .topology import parse_document

    path = naming.run_dir(naming.check_lab_id(lab)) / "topology.json"
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ApplyError(f"lab {lab} is not deployed; deploy it first", element="lab") from None
    return parse_document(document)


def find_node(topology: Topology, name: object, path: str = "node") -> str:
    if not isinstance(name, str) or name not in topology.nodes:
        raise TopologyError(Problem(path, f"{name!r} is no node of the running lab"))
    return name


def find_link(topology: Topology, endpoints: object, path: str = "link") -> Link:
    """The link of the running document between two endpoints (`["h1:eth0", "sw"]`, in either order)."""
    if (not isinstance(endpoints, (list, tuple)) or len(endpoints) != 2
            or not all(isinstance(e, str) and len(e) <= 80 for e in endpoints)):
        raise TopologyError(Problem(path, "must be the link's two endpoints, as [\"h1:eth0\", \"sw\"]"))
    wanted = sorted(endpoints)
    for lk in topology.links:
        if sorted((str(lk.a), str(lk.b))) == wanted:
            return lk
    raise TopologyError(Problem(path, f"no link {endpoints[0]} - {endpoints[1]} in the running lab"))


def _stored_span(lab: str) -> Span | None:
    from .engine import stored_span  # the kernel side, imported only where an action runs (not the web tier)

    return stored_span(lab)


def up_locked(topology: Topology, lab: str, **kwargs: Any) -> UpResult:
    """The engine's up_locked; on a host running its part of a lab across hosts, on that part (the span it last
    deployed): an action reaches this host's nodes and links only."""
    from .engine import up_locked as up

    kwargs.setdefault("span", _stored_span(lab))
    return up(topology, lab, **kwargs)


def check(topology: Topology, action: object) -> dict[str, Any]:
    """The action as the agent runs it, checked against the running document without touching anything (the web
    tier refuses a bad one before a run exists): TopologyError naming `action`, `node`, `link` or
    `conditions.<key>`."""
    if not isinstance(action, dict) or action.get("action") not in ACTIONS:
        raise TopologyError(Problem("action", f"must be one of {', '.join(ACTIONS)}"))
    name = action["action"]
    allowed = {"action", "node"} if name in NODE_ACTIONS else (
        {"action", "link", "conditions"} if name == "link-conditions" else {"action", "link"})
    unknown = sorted(set(action) - allowed)
    if unknown:
        raise TopologyError([Problem(k, f"unknown field; {name} takes {', '.join(sorted(allowed))}")
                             for k in unknown])
    if name in NODE_ACTIONS:
        node = find_node(topology, action.get("node"))
        if name in ("stop", "start", "restart"):
            _stoppable(topology, node)
        return {"action": name, "node": node}
    link = find_link(topology, action.get("link"))
    out: dict[str, Any] = {"action": name, "link": [str(link.a), str(link.b)]}
    if name == "link-conditions":
        _conditions_document(topology, link, action.get("conditions"))
        out["conditions"] = {k: v for k, v in action["conditions"].items() if v not in (None, "")}
    return out


def _stoppable(topology: Topology, node: str) -> None:
    kind = kinds.get(topology.nodes[node].kind)
    if not kind.stoppable:
        raise TopologyError(Problem("node", f"{node} is a {kind.label.lower()}: it runs nothing to stop; set its "
                                            "links down instead"))


def _links_of(topology: Topology, node: str) -> set[str]:
    return {link_key(lk) for lk in topology.links_of(node)}


# ------------------------------------------------------------------------------------------------ node actions


def stop_node(lab: str, node: str, *, on_event: EventSink = None) -> UpResult:
    topology = deployed_topology(lab)
    find_node(topology, node)
    _stoppable(topology, node)
    with lab_lock(lab):
        return _stop(topology, lab, node, on_event)


def start_node(lab: str, node: str, *, on_event: EventSink = None) -> UpResult:
    topology = deployed_topology(lab)
    find_node(topology, node)
    _stoppable(topology, node)
    with lab_lock(lab):
        return _start(topology, lab, node, on_event)


def restart_node(lab: str, node: str, *, on_event: EventSink = None) -> UpResult:
    """The kind's restart in place (a VM's reset) when it has one and the node runs; else stop, then start."""
    topology = deployed_topology(lab)
    find_node(topology, node)
    _stoppable(topology, node)
    with lab_lock(lab):
        if node not in runtime.read(lab).stopped and kinds.get(topology.nodes[node].kind).restart(lab, node):
            emit(on_event, Event("run.step", f"restart {node}", node=node, step=1, total=1,
                                 data={"path": f"nodes.{node}", "action": "node.restart"}))
            emit(on_event, Event("node.state", node=node, state="running"))
            return UpResult(lab, [f"restart {node}"])
        stopped = _stop(topology, lab, node, on_event)
        started = _start(topology, lab, node, on_event)
        return UpResult(lab, stopped.steps + started.steps, stopped.seconds + started.seconds)


def _stop(topology: Topology, lab: str, node: str, on_event: EventSink) -> UpResult:
    result = up_locked(topology, lab, on_event=on_event, change=lambda rt: rt.stopped.add(node))
    emit(on_event, Event("node.state", node=node, state="stopped"))
    return result


def _start(topology: Topology, lab: str, node: str, on_event: EventSink) -> UpResult:
    result = up_locked(topology, lab, on_event=on_event, change=lambda rt: rt.stopped.discard(node))
    emit(on_event, Event("node.state", node=node, state="running"))
    return result


def isolate(lab: str, node: str, *, on_event: EventSink = None) -> UpResult:
    """Every link of `node` down (its cables pulled); `reconnect` raises them again."""
    return _set_links(lab, lambda topology: _links_of(topology, find_node(topology, node)), up=False,
                      on_event=on_event)


def reconnect(lab: str, node: str, *, on_event: EventSink = None) -> UpResult:
    return _set_links(lab, lambda topology: _links_of(topology, find_node(topology, node)), up=True,
                      on_event=on_event)


# ------------------------------------------------------------------------------------------------ link actions


def set_link(lab: str, endpoints: Sequence[str], *, up: bool, on_event: EventSink = None) -> UpResult:
    return _set_links(lab, lambda topology: {link_key(find_link(topology, list(endpoints)))}, up=up,
                      on_event=on_event)


def _set_links(lab: str, which: Any, *, up: bool, on_event: EventSink) -> UpResult:
    """Set the links `which(topology)` names (document keys) down or up. On a host running a part of a lab across
    hosts, the links of its part: a direct link across hosts is its end's link to the link bridge here (each host
    holding an end pulls its own side), a link it does not hold is left alone and not reported."""
    topology = deployed_topology(lab)
    wanted: set[str] = which(topology)
    span = _stored_span(lab)
    held = {k: k for k in wanted} if span is None else local_link_keys(topology, span, wanted)
    keys = set(held.values())

    def change(rt: runtime.Runtime) -> None:
        if up:
            rt.links_down -= keys
        else:
            rt.links_down |= keys

    with lab_lock(lab):
        result = up_locked(topology, lab, on_event=on_event, change=change)
    for lk in topology.links:
        if link_key(lk) in held:
            emit(on_event, Event("link.state", f"link {lk.a} - {lk.b} {'up' if up else 'down'}",
                                 state="up" if up else "down",
                                 data={"path": lk.path, "endpoints": [str(lk.a), str(lk.b)]}))
    return result


def with_conditions(topology: Topology, link: Link, conditions: object) -> dict[str, Any]:
    """The running document with `link`'s conditions replaced by `conditions` (document keys: delay, jitter, loss,
    rate; a key set to None, or left out, is removed). Problems name `conditions.<key>`."""
    if not isinstance(conditions, dict):
        raise TopologyError(Problem("conditions", "must be an object of delay, jitter, loss and rate"))
    unknown = [k for k in conditions if k not in CONDITION_KEYS]
    if unknown:
        raise TopologyError([Problem(f"conditions.{k}", "is not a link condition (delay, jitter, loss, rate)")
                             for k in unknown])
    document = json.loads(json.dumps(topology.document))
    entry = document["links"][link.index]
    for key in CONDITION_KEYS:
        entry.pop(key, None)
        if conditions.get(key) not in (None, ""):
            entry[key] = conditions[key]
    return dict(document)


def _conditions_document(topology: Topology, link: Link, conditions: object) -> Topology:
    """The running topology with `link`'s new conditions, validated; problems of the link's keys named
    `conditions.<key>`."""
    from .topology import parse_document

    document = with_conditions(topology, link, conditions)
    prefix = f"{link.path}."
    try:
        return parse_document(document)
    except TopologyError as exc:  # the link's own keys are the caller's `conditions`
        raise TopologyError([Problem("conditions." + p.path[len(prefix):] if p.path.startswith(prefix) else p.path,
                                     p.message) for p in exc.problems]) from None


def set_conditions(lab: str, endpoints: Sequence[str], conditions: object, *,
                   on_event: EventSink = None) -> tuple[UpResult, dict[str, Any]]:
    """Apply new conditions to one link of the running lab, in place; returns what ran and the new document."""
    topology = deployed_topology(lab)
    link = find_link(topology, list(endpoints))
    changed = _conditions_document(topology, link, conditions)
    with lab_lock(lab):
        result = up_locked(changed, lab, on_event=on_event)
    return result, changed.document


# ------------------------------------------------------------------------------------------------ dispatch


def run(lab: str, action: dict[str, Any], *, on_event: EventSink = None) -> dict[str, Any]:
    """One action as the web app's runs store it: {"action": NAME, "node": ...} or {"action": NAME, "link": [a, b],
    "conditions": {...}}. Returns {"steps": [...], "document": the new running document or None}."""
    name = action.get("action")
    if name in NODE_ACTIONS:
        func = {"stop": stop_node, "start": start_node, "restart": restart_node, "isolate": isolate,
                "reconnect": reconnect}[name]
        node = action.get("node")
        if not isinstance(node, str):
            raise TopologyError(Problem("node", "must name a node of the running lab"))
        result = func(lab, node, on_event=on_event)
        return {"steps": result.steps, "document": None}
    if name in ("link-down", "link-up"):
        result = set_link(lab, action.get("link") or [], up=name == "link-up", on_event=on_event)
        return {"steps": result.steps, "document": None}
    if name == "link-conditions":
        result, document = set_conditions(lab, action.get("link") or [], action.get("conditions"),
                                          on_event=on_event)
        return {"steps": result.steps, "document": document}
    raise TopologyError(Problem("action", f"{name!r} is not an action ({', '.join(ACTIONS)})"))
