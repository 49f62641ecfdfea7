"""What the user asked of a running lab beyond its document (netops.actions): nodes stopped, links set down, and
the link conditions last applied. Kept by the agent in `runtime.json` of the lab's run dir (root, 0600), read by
netops.observe into the Inventory, so the planner keeps a stopped node stopped and a downed link down across
redeploys, and status reports them as asked, not as drift. Destroy removes the run dir, and with it this state.
"""
from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import naming
from .cell import FABRIC_CGROUP

if TYPE_CHECKING:
    from .inventory import Inventory
    from .model import Topology

FILE = "runtime.json"


@dataclass
class Runtime:
    stopped: set[str] = field(default_factory=set)  # node names
    links_down: set[str] = field(default_factory=set)  # netops.wiring.link_key of each link set down
    conditions: dict[str, Any] | None = None  # link key -> conditions last applied (netops.plan.conditions_of)

    def as_json(self) -> dict[str, Any]:
        return {"stopped": sorted(self.stopped), "links_down": sorted(self.links_down),
                "conditions": self.conditions}


def process_node(role: str, cgroup_node: str | None) -> str | None:
    """The node a process of the lab belongs to: its cgroup's node (consoles, captures, daemons of a namespace);
    for one of the fabric, the node its role names (`qemu:<node>`, `delayd:<node>:<iface>`); else None (a
    capture on a bridge: the lab's, no node's)."""
    if cgroup_node and cgroup_node != FABRIC_CGROUP:
        return cgroup_node
    parts = role.split(":")
    if len(parts) >= 3 or (len(parts) == 2 and parts[0] == "qemu"):
        return parts[1]
    return None


def read(lab: str, span: Any = None) -> Runtime:
    """What the user asked of the running lab. `span` (netops.span.Span): of a lab across hosts, this host's part,
    which is what this host's run dir holds."""
    path = naming.run_dir(lab) / FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return Runtime()
    except ValueError as exc:
        raise OSError(errno.EINVAL, f"{path}: corrupt ({exc})") from exc
    conditions = data.get("conditions")
    return Runtime(set(data.get("stopped") or ()), set(data.get("links_down") or ()),
                   dict(conditions) if isinstance(conditions, dict) else None)


def write(lab: str, runtime: Runtime) -> None:
    write_private(naming.run_dir(lab) / FILE, json.dumps(runtime.as_json(), sort_keys=True))


def write_private(path: Path, text: str) -> None:
    """Write a file of the agent's (root, 0600) atomically, never through a link planted in its place."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


#: what an action asks of the running lab: a change made to its Runtime before netops.engine plans
RuntimeChange = Callable[[Runtime], None]


def of_inventory(inv: Inventory) -> Runtime:
    return Runtime(set(inv.stopped), set(inv.links_down),
                   None if inv.conditions_applied is None else dict(inv.conditions_applied))


def to_inventory(runtime: Runtime, inv: Inventory) -> None:
    inv.stopped, inv.links_down = set(runtime.stopped), set(runtime.links_down)
    inv.conditions_applied = None if runtime.conditions is None else dict(runtime.conditions)


def after_up(runtime: Runtime, topology: Topology, conditions: dict[str, Any] | None) -> Runtime:
    """The runtime state once `topology` is applied: only nodes and links it still has, with the conditions now
    applied (`conditions` None after a failure: every link is then shaped afresh by the next deploy)."""
    from .wiring import link_key

    keys = {link_key(lk) for lk in topology.links}
    applied = conditions if conditions is not None else {k: None for k in keys}
    return Runtime(runtime.stopped & set(topology.nodes), runtime.links_down & keys, applied)
