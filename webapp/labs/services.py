"""Operations on a lab's topology document, and the seam to netops for validation, import and export.

The document is a plain dict (DESIGN.md, "The topology document"). Functions named `*_node` / `*_link`
change a document in place and raise `TopologyError` (with the path of the element concerned) when an
operation makes no sense (unknown node, duplicate name). Validating the *content* of a document is netops'
job; `validate()` wraps it. Saving goes through `save_lab()` which implements optimistic concurrency.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from netops import kinds
from netops.errors import Problem, TopologyError
from netops.naming import NODE_NAME_RE

from .models import Lab

MAX_DOCUMENT_BYTES = 2 * 1024 * 1024
NAME_MAX = 100  # longest lab name the API takes
PROBLEMS_CACHE_S = 24 * 3600  # validation results of one lab version (netops' checks of a version never change)


class VersionConflict(Exception):
    """The lab changed since the version the writer started from."""

    def __init__(self, lab: Lab):
        self.lab = lab
        super().__init__(f"lab {lab.pk} is at version {lab.version}")


# --- shape checks (malformed input is refused; merely invalid content is saved) -----------------------------

def check_shape(document: Any) -> dict:
    """Refuse what cannot be a topology document at all: not a mapping, wrong top-level types, too big."""
    if not isinstance(document, dict):
        raise TopologyError(Problem("document", f"must be a mapping, not {_type_name(document)}"))
    problems = []
    if "nodes" in document and not isinstance(document["nodes"], dict):
        problems.append(Problem("nodes", f"must be a mapping of node names, not {_type_name(document['nodes'])}"))
    if "links" in document and not isinstance(document["links"], list):
        problems.append(Problem("links", f"must be a list, not {_type_name(document['links'])}"))
    for key in ("name", "description"):
        if key in document and document[key] is not None and not isinstance(document[key], str):
            problems.append(Problem(key, f"must be a string, not {_type_name(document[key])}"))
    if problems:
        raise TopologyError(problems)
    size = len(json.dumps(document, separators=(",", ":")).encode())
    if size > MAX_DOCUMENT_BYTES:
        raise TopologyError(Problem("document", f"is {size} bytes; the limit is {MAX_DOCUMENT_BYTES}"))
    return document


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def new_document(name: str) -> dict:
    return {"version": 1, "name": name, "nodes": {}, "links": []}


def _nodes(document: dict) -> dict:
    return document.setdefault("nodes", {})


def _links(document: dict) -> list:
    return document.setdefault("links", [])


# --- validation (netops) ------------------------------------------------------------------------------------

def validate(document: dict) -> list[Problem]:
    """Every problem netops finds in `document` (empty when it is valid)."""
    from netops import topology

    try:
        return list(topology.validate_document(document, images=image_names()))
    except TopologyError as exc:  # validate_document returns problems; tolerate one that raises them
        return exc.problems


def lab_problems(lab: Lab) -> list[Problem]:
    """`validate(lab.document)`, cached by the lab's version (and the image library's names, which validation
    checks): a GET or a save that finds a lab at a version already validated does not validate it again."""
    names = image_names()
    key = f"lab-problems:{lab.pk}:{lab.lab_id}:{lab.version}:{hashlib.sha256(chr(0).join(names).encode()).hexdigest()[:16]}"
    cached = cache.get(key)
    if cached is None:
        cached = problems_as_dicts(validate(lab.document))
        cache.set(key, cached, timeout=PROBLEMS_CACHE_S)
    return [Problem(p["path"], p["message"]) for p in cached]


def problems_as_dicts(problems: list[Problem]) -> list[dict[str, str]]:
    return [{"path": p.path, "message": p.message} for p in problems]


def list_images() -> list[dict[str, Any]]:
    """The VM image library as plain dicts (name, format, memory, ...), from the library's index (netops.images)."""
    from netops import images

    return [dict(entry) for entry in images.index()]


def image_names() -> list[str]:
    """The names a `vm` node may give as its image."""
    from netops import images

    return [entry["name"] for entry in images.index()]


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


# --- saving ---------------------------------------------------------------------------------------------------

@dataclass
class Saved:
    lab: Lab
    problems: list[Problem]


def create_lab(owner, name: str, description: str = "", document: dict | None = None) -> Saved:
    document = check_shape(copy.deepcopy(document) if document is not None else new_document(name))
    document.setdefault("version", 1)
    document.setdefault("nodes", {})
    document.setdefault("links", [])
    if not name:
        name = document.get("name") or "untitled"
    document["name"] = name[:NAME_MAX]
    if description:
        document["description"] = description
    lab = Lab.objects.create(owner=owner, document=document)
    return Saved(lab, lab_problems(lab))


def save_lab(lab: Lab, expected_version: int, *, document: dict | None = None, **fields: Any) -> Saved:
    """Store a new document and/or name/description if the lab is still at `expected_version`.

    Compare-and-set in one UPDATE, so two writers starting from the same version cannot both win.
    Raises VersionConflict carrying the current lab. The name and description live only in the document: a new
    one given here is written into it (a document without a name keeps the lab's).
    """
    document = check_shape(document) if document is not None else copy.deepcopy(lab.document)
    name, description = fields.get("name"), fields.get("description")
    if name:
        document["name"] = name
    elif not (isinstance(document.get("name"), str) and document["name"]):
        document["name"] = lab.name
    if description is not None:
        if description:
            document["description"] = description
        else:
            document.pop("description", None)
    with transaction.atomic():
        changed = Lab.objects.filter(pk=lab.pk, version=expected_version).update(
            version=F("version") + 1, updated=timezone.now(), document=document
        )
        lab = Lab.objects.get(pk=lab.pk)
    if not changed:
        raise VersionConflict(lab)
    return Saved(lab, lab_problems(lab))


def apply_operation(lab: Lab, expected_version: int, operation, *args, **kwargs) -> tuple[Saved, Any]:
    """Run a document operation (add_node, delete_link, ...) on a copy of the lab's document and save it."""
    if expected_version != lab.version:
        raise VersionConflict(lab)
    document = copy.deepcopy(lab.document)
    result = operation(document, *args, **kwargs)
    return save_lab(lab, expected_version, document=document), result


def duplicate_lab(lab: Lab, owner, name: str | None = None) -> Saved:
    return create_lab(owner, name or f"{lab.name} copy", lab.description, copy.deepcopy(lab.document))


# --- import / export ------------------------------------------------------------------------------------------

EXPORT_FORMATS = ("topolab", "containerlab")


def export_filename(lab: Lab, fmt: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", lab.name).strip("-.") or lab.lab_id
    return f"{stem}.clab.yml" if fmt == "containerlab" else f"{stem}.yml"


def export_text(lab: Lab, fmt: str) -> str:
    """The lab as YAML. Containerlab needs a valid document (raises TopologyError otherwise)."""
    from netops import topology

    if fmt == "containerlab":
        parsed = topology.parse_document(lab.document, images=image_names())
        from netops import containerlab

        text, _warnings = containerlab.to_containerlab(parsed)
        return text
    return topology.dump_yaml(lab.document)


def import_text(owner, fmt: str, text: str, name: str | None = None) -> tuple[Saved, list[Problem]]:
    """A new lab from Topolab or containerlab YAML; returns it with any conversion warnings."""
    if len(text.encode()) > MAX_DOCUMENT_BYTES:
        raise TopologyError(Problem("text", f"the file is larger than {MAX_DOCUMENT_BYTES} bytes"))
    warnings: list[Problem] = []
    if fmt == "containerlab":
        from netops import containerlab

        document, warnings = containerlab.from_containerlab(text)
    elif fmt == "topolab":
        document = _load_yaml(text)
    else:
        raise TopologyError(Problem("format", f"unknown format {fmt!r}; one of {', '.join(EXPORT_FORMATS)}"))
    check_shape(document)
    saved = create_lab(owner, name or str(document.get("name") or "imported"), "", document)
    return saved, list(warnings)


def _load_yaml(text: str) -> Any:
    """Load with netops' strict loader (no aliases, no duplicate keys, YAML 1.2-like scalars)."""
    from netops import topology

    data, problems = topology.load_yaml(text)
    if problems:
        raise TopologyError(problems)
    return data


def guess_format(filename: str, text: str) -> str:
    """containerlab files are `*.clab.yml` or have a top-level `topology:`; everything else is Topolab."""
    if filename.endswith((".clab.yml", ".clab.yaml")) or re.search(r"^topology:", text, re.MULTILINE):
        return "containerlab"
    return "topolab"
