"""Labs and their documents: shape checks, validation (netops, cached by version), saving, import and export.

The document is a plain dict (DESIGN.md, "The topology document"), the only home of a lab's name and description.
Node and link edits are the canvas's alone (static/js/editor/model.js); the server takes whole documents. Validating
the *content* of a document is netops' job; `validate()` wraps it. Saving goes through `save_lab()` which implements
optimistic concurrency.
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

from netops.errors import Problem, TopologyError

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


# --- validation (netops) ------------------------------------------------------------------------------------

def validate(document: dict) -> list[Problem]:
    """Every problem netops finds in `document` (empty when it is valid)."""
    from netops import topology

    try:
        return list(topology.validate_document(document, images=image_names()))
    except TopologyError as exc:  # validate_document returns problems; tolerate one that raises them
        return exc.problems


def lab_problems(lab: Lab, requester=None) -> list[Problem]:
    """Every problem of the lab's document: `validate(lab.document)`, cached by the lab's version (and the image
    library's names, which validation checks), plus the host bridges its owner (and the requester, when someone
    else asks) may not use (webapp.labs.uplinks; not cached: it depends on who asks and on the operator)."""
    from . import uplinks

    names = image_names()
    key = f"lab-problems:{lab.pk}:{lab.lab_id}:{lab.version}:{hashlib.sha256(chr(0).join(names).encode()).hexdigest()[:16]}"
    cached = cache.get(key)
    if cached is None:
        cached = problems_as_dicts(validate(lab.document))
        cache.set(key, cached, timeout=PROBLEMS_CACHE_S)
    problems = [Problem(p["path"], p["message"]) for p in cached]
    return problems + uplinks.uplink_problems(lab.document, uplinks.bridges_for_lab(lab, requester))


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


class LabInUse(Exception):
    """The lab may have kernel objects (deployed) or a run in progress, so it may not be deleted yet."""


def delete_lab(lab: Lab) -> None:
    """Delete a lab that has nothing in the kernel; raise LabInUse (naming the Destroy button) otherwise.

    The check and the delete are one transaction, so a deploy started in between cannot slip through: on
    SQLite every write transaction is IMMEDIATE (one writer at a time), elsewhere the lab row is locked.
    """
    with transaction.atomic():
        lab = Lab.objects.select_for_update().get(pk=lab.pk)
        refusal = _deletion_refusal(lab)
        if refusal:
            raise LabInUse(refusal)
        lab.delete()


def _deletion_refusal(lab: Lab) -> str | None:
    from django.apps import apps

    if not apps.is_installed("webapp.runs"):
        return None
    from webapp.runs.services import deletion_refusal

    return deletion_refusal(lab)


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
