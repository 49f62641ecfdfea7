"""Lab hosts, the pure part: a host's name and underlay address as an operator gives them, and what a host runs.

- A host name (TOPOLAB_HOST) is netops.naming's HOST_NAME_RE: one DNS label, lower case (1-63 characters
  `[a-z0-9-]`, not starting or ending with `-`), the same rule as a node's `host:` key. It
  names the host's Celery queue (`agent.<host>`), its parts of runs across hosts and its row in the web tier, so
  nothing that could be a path, an option or a second word gets through (`../x`, `-Q`, `A B`).
- `default_host_name` makes one from the machine's host name (`Lab-1.example.org` -> `lab-1`), so a single machine
  needs nothing configured.
- The underlay address (TOPOLAB_UNDERLAY_ADDRESS) is the IPv4 address other hosts reach this one's VXLAN tunnels
  at: a unicast address (loopback is fine on one machine, its default).
- `nodes_running` counts the nodes this host runs from the node namespaces that exist (one directory listing),
  minus those the user stopped (netops.runtime): cheap enough for a heartbeat every few seconds.
"""
from __future__ import annotations

import ipaddress
import re

from .naming import HOST_NAME_RE, check_host_name

__all__ = ["check_host_name", "check_underlay_address", "count_nodes", "default_host_name", "nodes_running"]

HOST_NAME_MAX = 63
DEFAULT_UNDERLAY = "127.0.0.1"


def default_host_name(hostname: str) -> str:
    """A valid host name made from the machine's (`socket.gethostname()`): its first label, lower case, other
    characters as '-', without leading dashes, at most 63 characters; `localhost` when nothing is left."""
    label = hostname.strip().split(".", 1)[0].lower()
    name = re.sub(r"[^a-z0-9-]", "-", label).strip("-")[:HOST_NAME_MAX].rstrip("-")
    return name if HOST_NAME_RE.match(name) else "localhost"


def check_underlay_address(address: object) -> str:
    """`address` in its canonical form if it is a unicast IPv4 address (dotted quad), else ValueError."""
    if not isinstance(address, str):
        raise ValueError(f"underlay address {address!r} must be an IPv4 address")
    try:
        addr = ipaddress.IPv4Address(address.strip())
    except ValueError:
        raise ValueError(f"underlay address {address!r} must be an IPv4 address such as 192.0.2.10") from None
    if addr.is_multicast or addr.is_unspecified or addr == ipaddress.IPv4Address("255.255.255.255"):
        raise ValueError(f"underlay address {address!r} must be a unicast address of this host")
    return str(addr)


def count_nodes(namespaces: list[str], stopped: dict[str, set[str]]) -> int:
    """Nodes with a namespace in `namespaces` (names as netops.naming makes them) that their lab's user did not
    stop (`stopped`: lab -> node names)."""
    from . import naming

    count = 0
    for ns in namespaces:
        parsed = naming.parse_namespace(ns)
        if parsed is None or parsed[1] is None or parsed[1] == naming.TUNNEL_NODE:
            continue  # not Topolab's, or a lab's fabric or tunnels (netops.vxlan)
        lab, node = parsed
        if node not in stopped.get(lab, set()):
            count += 1
    return count


def nodes_running() -> int:
    """The nodes running on this host: node namespaces in /run/netns, minus the nodes their users stopped."""
    from . import runtime
    from .kernel import netns

    names = netns.list_names()
    labs = {p[0] for p in map(_parse, names) if p is not None}
    stopped = {}
    for lab in labs:
        try:
            stopped[lab] = runtime.read(lab).stopped
        except OSError:
            stopped[lab] = set()
    return count_nodes(names, stopped)


def _parse(ns: str) -> tuple[str, str | None] | None:
    from . import naming

    return naming.parse_namespace(ns)
