"""Node and link operations on a topology document, as the labs API offers them (POST/PATCH/DELETE of nodes and
links). Each changes a document in place and raises `TopologyError` (with the path of the element concerned) when
the operation cannot be; `services.apply_operation()` runs one on a copy of a lab's document and saves it.
The same rules in the browser are static/js/editor/model.js; tests/shared/document_operations.json holds the cases
both must pass.
"""
from __future__ import annotations

from typing import Any

from netops import kinds
from netops.errors import Problem, TopologyError
from netops.naming import NODE_NAME_RE


def _nodes(document: dict) -> dict:
    return document.setdefault("nodes", {})


def _links(document: dict) -> list:
    return document.setdefault("links", [])


# --- node operations ------------------------------------------------------------------------------------------

def next_node_name(document: dict, kind: str) -> str:
    prefix = kinds.get(kind).prefix if kinds.known(kind) else "n"
    taken = set(_nodes(document))
    n = 1
    while f"{prefix}{n}" in taken:
        n += 1
    return f"{prefix}{n}"


def add_node(document: dict, kind: str, name: str | None = None, properties: dict | None = None) -> str:
    """Add a node of `kind` (auto-named h1, r1, br1, vm1, wan1 when `name` is empty); returns its name."""
    if not kinds.known(kind):
        raise TopologyError(Problem("kind", f"unknown node kind {kind!r}; one of {', '.join(kinds.names())}"))
    nodes = _nodes(document)
    name = name or next_node_name(document, kind)
    _check_new_name(nodes, name)
    node: dict[str, Any] = {"kind": kind}
    for key, value in (properties or {}).items():
        if key not in ("kind", "name") and value is not None:
            node[key] = value
    nodes[name] = node
    return name


def _check_new_name(nodes: dict, name: str) -> None:
    if not isinstance(name, str) or not NODE_NAME_RE.match(name):
        raise TopologyError(Problem("name", f"{name!r} is not a node name (a letter, then letters, digits, - or _)"))
    if name in nodes:
        raise TopologyError(Problem(f"nodes.{name}", f"a node named {name!r} already exists"))


def get_node(document: dict, name: str) -> dict:
    node = _nodes(document).get(name)
    if not isinstance(node, dict):
        raise TopologyError(Problem(f"nodes.{name}", f"there is no node named {name!r}"))
    return node


def update_node(document: dict, name: str, changes: dict) -> str:
    """Merge `changes` into node `name` (a value of None removes that key); `name` in changes renames it.

    Returns the node's (possibly new) name.
    """
    node = get_node(document, name)
    changes = dict(changes)
    new_name = changes.pop("name", None)
    for key, value in changes.items():
        if value is None:
            node.pop(key, None)
        else:
            node[key] = value
    if new_name and new_name != name:
        rename_node(document, name, new_name)
        return new_name
    return name


def rename_node(document: dict, old: str, new: str) -> None:
    """Rename a node, keeping its position in the mapping and rewriting every link endpoint that names it."""
    nodes = _nodes(document)
    get_node(document, old)
    _check_new_name(nodes, new)
    document["nodes"] = {(new if k == old else k): v for k, v in nodes.items()}
    for link in _links(document):
        if isinstance(link, dict) and isinstance(link.get("endpoints"), list):
            link["endpoints"] = [_rename_endpoint(e, old, new) for e in link["endpoints"]]
    for check in document.get("checks") or []:  # checks name nodes (netops.labchecks): they follow the rename
        for body in check.values() if isinstance(check, dict) else ():
            if isinstance(body, dict):
                for key in CHECK_NODE_KEYS:
                    if key in body:
                        body[key] = _rename_endpoint(body[key], old, new)


#: keys of a check's body that name a node (`to`: also `node:interface`); netops.labchecks.KINDS has them all
CHECK_NODE_KEYS = ("from", "to", "node", "server", "peer", "neighbor")


def _rename_endpoint(endpoint: Any, old: str, new: str) -> Any:
    if not isinstance(endpoint, str):
        return endpoint
    node, sep, iface = endpoint.partition(":")
    return f"{new}{sep}{iface}" if node == old else endpoint


def delete_node(document: dict, name: str) -> None:
    """Remove a node and every link that touches it."""
    get_node(document, name)
    del _nodes(document)[name]
    document["links"] = [lk for lk in _links(document) if name not in _endpoint_nodes(lk)]


def _endpoint_nodes(link: Any) -> list[str]:
    if not isinstance(link, dict) or not isinstance(link.get("endpoints"), list):
        return []
    return [e.partition(":")[0] for e in link["endpoints"] if isinstance(e, str)]


# --- link operations ------------------------------------------------------------------------------------------

def used_interfaces(document: dict, node: str) -> set[str]:
    used = set()
    for link in _links(document):
        if isinstance(link, dict) and isinstance(link.get("endpoints"), list):
            for e in link["endpoints"]:
                if isinstance(e, str):
                    n, sep, iface = e.partition(":")
                    if n == node and sep:
                        used.add(iface)
    return used


def next_interface(document: dict, node: str) -> str:
    """The lowest ethN of `node` that no link uses yet (a configured but unwired eth0 is reused first)."""
    used = used_interfaces(document, node)
    n = 0
    while f"eth{n}" in used:
        n += 1
    return f"eth{n}"


def complete_endpoint(document: dict, endpoint: str) -> str:
    """`node` -> `node:ethN` for nodes with interfaces; bridges and externals stay bare."""
    if not isinstance(endpoint, str) or not endpoint:
        raise TopologyError(Problem("endpoints", f"{endpoint!r} is not an endpoint (node or node:interface)"))
    name, sep, iface = endpoint.partition(":")
    node = get_node(document, name)
    if kinds.known(node.get("kind")) and kinds.get(node["kind"]).interfaces:
        iface = iface if sep and iface else next_interface(document, name)
        interfaces = node.setdefault("interfaces", {})
        if isinstance(interfaces, dict):
            interfaces.setdefault(iface, {})
        return f"{name}:{iface}"
    return endpoint


def add_link(document: dict, a: str, b: str, conditions: dict | None = None) -> int:
    """Wire two endpoints (interface names filled in when missing); returns the new link's index."""
    if a.partition(":")[0] == b.partition(":")[0]:
        raise TopologyError(Problem("endpoints", "a link needs two different nodes"))
    a = complete_endpoint(document, a)
    b = complete_endpoint(document, b)
    link: dict[str, Any] = {"endpoints": [a, b]}
    for key, value in (conditions or {}).items():
        if value not in (None, ""):
            link[key] = value
    links = _links(document)
    links.append(link)
    return len(links) - 1


def delete_link(document: dict, index: int) -> None:
    """Remove link `index`; an interface it leaves declared but empty (`{}`) goes too, as add_link made it."""
    links = _links(document)
    if not 0 <= index < len(links):
        raise TopologyError(Problem(f"links.{index}", f"there is no link {index}"))
    link = links.pop(index)
    endpoints = link.get("endpoints") if isinstance(link, dict) else None
    for endpoint in endpoints if isinstance(endpoints, list) else []:
        if not isinstance(endpoint, str):
            continue
        name, sep, iface = endpoint.partition(":")
        node = _nodes(document).get(name)
        interfaces = node.get("interfaces") if isinstance(node, dict) else None
        if sep and isinstance(interfaces, dict) and interfaces.get(iface) == {} \
                and iface not in used_interfaces(document, name):
            del interfaces[iface]
