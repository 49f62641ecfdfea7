"""The registry of node kinds: one module per kind in this package, each defining one `Kind` subclass; every
module here (but base.py) is found and registered when the package is imported, so adding a kind is adding its
module (docs/development/adding-a-node-kind.md).

    get(kind) -> Kind              KeyError for an unknown kind (validation reports those first)
    names() -> tuple of kind names
    all_kinds() -> tuple of Kind instances
    handler(action) -> the kind's method that applies a plan action, or None
    public() -> JSON-able description served by GET /api/kinds/

Nothing outside this package compares a kind's name (tests/netops/test_kinds.py greps for it): ask the kind.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from ..inventory import Step
from .base import Kind, NamespaceKind, SegmentKind, Setting, routes_in_use, uses_ipv6


def _discover() -> dict[str, Kind]:
    """One instance of the Kind subclass each module of this package defines, in palette order."""
    found: list[Kind] = []
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        classes = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, Kind)
                   and c.__module__ == module.__name__ and c.name]
        if len(classes) != 1:
            raise ImportError(f"{module.__name__} must define exactly one Kind with a name, found {len(classes)}")
        found.append(classes[0]())
    found.sort(key=lambda k: (k.palette, k.name))
    names = [k.name for k in found]
    if len(set(names)) != len(names):
        raise ImportError(f"two node kinds share a name: {names}")
    return {k.name: k for k in found}


#: the registered kinds, in palette order
_KINDS: dict[str, Kind] = _discover()


def get(kind: str) -> Kind:
    return _KINDS[kind]


def known(kind: object) -> bool:
    return isinstance(kind, str) and kind in _KINDS


def names() -> tuple[str, ...]:
    return tuple(_KINDS)


def all_kinds() -> tuple[Kind, ...]:
    return tuple(_KINDS.values())


def with_key(key: str) -> list[str]:
    """Kinds whose nodes may carry `key`."""
    return [k.name for k in _KINDS.values() if key in k.keys]


def handler(action: str) -> Callable[[Any, Step], None] | None:
    """The kind's method that applies `action`, called as method(applier, step); None when no kind owns it."""
    for kind in _KINDS.values():
        if action in kind.actions:
            method: Callable[[Any, Step], None] = getattr(kind, kind.actions[action])
            return method
    return None


def clab_kind_for(clab_kind: object, labels: dict[str, Any], forwarding: bool) -> Kind | None:
    """The kind a containerlab node is imported as (the most specific claim wins), or None."""
    claims = [k for k in _KINDS.values() if k.clab_claims(clab_kind, labels, forwarding)]
    return min(claims, key=lambda k: k.clab_rank) if claims else None


def clab_host_kind() -> Kind:
    """The kind containerlab's `host:<port>` endpoints become."""
    return next(k for k in _KINDS.values() if k.clab_host_endpoint)


def public() -> dict[str, Any]:
    from .. import naming
    from ..status import NODE_STATES

    return {
        "kinds": [k.public() for k in _KINDS.values()],
        "node_states": list(NODE_STATES),
        "node_name_re": naming.NODE_NAME_RE.pattern.replace("\\Z", "$"),
    }


__all__ = ["Kind", "NamespaceKind", "SegmentKind", "Setting", "routes_in_use", "uses_ipv6", "get", "known", "names", "all_kinds", "with_key", "handler",
           "clab_kind_for", "clab_host_kind", "public"]
