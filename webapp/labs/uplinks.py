"""Which host bridges a lab may attach to: the operator's to allow, per role.

An `external` node with `bridge: <name>` puts a lab on a network of the host (the LAN, docker0, ...): a student
could then run a DHCP server on the real LAN or clone a LAN host's MAC. So:

- settings `TOPOLAB_UPLINK_BRIDGES` name the host bridges labs may attach to at all (none by default);
- staff may use every one of them; instructors those in `TOPOLAB_UPLINK_INSTRUCTOR_BRIDGES` (default: all of
  them); students only those a class of theirs allows (`Classroom.uplink_bridges`);
- NAT (`nat: true`) is open to everybody.

A lab is checked against its owner's bridges and, at deploy, against the requester's too (an instructor
deploying a student's lab may not give the student a bridge the student may not have, and the other way round).
A bridge outside the list is a document problem at its path, so the canvas shows it and a deploy is refused
before anything is created.
"""
from __future__ import annotations

import os

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from netops import kinds
from netops.errors import Problem
from netops.topology import ifname_problem

ALL = "*"


def _names(setting: str, default: str) -> tuple[str, ...]:
    """A comma-separated (or list) setting, from Django settings, else the environment."""
    raw = getattr(settings, setting, None)
    if raw is None:
        raw = os.environ.get(setting, default)
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    names = tuple(dict.fromkeys(str(i).strip() for i in items if str(i).strip()))
    for name in names:
        if name != ALL and (problem := ifname_problem(name)):
            raise ImproperlyConfigured(f"{setting}: {name!r}: {problem}")
    return names


def server_bridges() -> tuple[str, ...]:
    """The host bridges labs may attach to on this server (TOPOLAB_UPLINK_BRIDGES; none by default)."""
    return tuple(b for b in _names("TOPOLAB_UPLINK_BRIDGES", "") if b != ALL)


def _authenticated(user) -> bool:
    return bool(getattr(user, "is_authenticated", False))


def bridges_for(user) -> tuple[str, ...]:
    """The host bridges `user` may attach labs to, in the operator's order."""
    allowed = server_bridges()
    if not _authenticated(user) or not allowed:
        return ()
    if user.is_staff:
        return allowed
    from webapp.accounts.models import is_instructor

    if is_instructor(user):
        chosen = _names("TOPOLAB_UPLINK_INSTRUCTOR_BRIDGES", ALL)
        return allowed if ALL in chosen else tuple(b for b in allowed if b in chosen)
    if not apps.is_installed("webapp.classroom"):
        return ()
    Classroom = apps.get_model("classroom", "Classroom")
    granted: set[str] = set()
    for bridges in Classroom.objects.filter(members=user).values_list("uplink_bridges", flat=True):
        granted |= {b for b in bridges or [] if isinstance(b, str)}
    return tuple(b for b in allowed if b in granted)


def bridges_for_lab(lab, requester=None) -> tuple[str, ...]:
    """What a lab may use: its owner's bridges, narrowed to the requester's when someone else asks."""
    bridges = bridges_for(lab.owner)
    if requester is not None and _authenticated(requester) and requester.pk != lab.owner_id:
        mine = set(bridges_for(requester))
        bridges = tuple(b for b in bridges if b in mine)
    return bridges


def uplink_problems(document, bridges) -> list[Problem]:
    """A problem at `nodes.<name>.bridge` for every external whose bridge is not in `bridges`."""
    nodes = document.get("nodes") if isinstance(document, dict) else None
    problems = []
    for name, node in (nodes.items() if isinstance(nodes, dict) else ()):
        kind = node.get("kind") if isinstance(node, dict) else None
        if not kinds.known(kind) or not kinds.get(kind).uplink or "bridge" not in kinds.get(kind).keys:
            continue  # only a door to the host's networks (the registry's uplink kinds) names a host bridge
        bridge = node.get("bridge")
        if isinstance(bridge, str) and bridge not in bridges:
            hint = f"you may use {', '.join(bridges)} or nat: true" if bridges else "use nat: true"
            problems.append(Problem(f"nodes.{name}.bridge",
                                    f"{bridge!r} is not a bridge labs may use on this server ({hint})"))
    return problems


def uplinks_for_lab(lab, requester=None) -> dict:
    """The API's view: {"bridges": [...], "nat": true} for the properties panel."""
    return {"bridges": list(bridges_for_lab(lab, requester)), "nat": True}
