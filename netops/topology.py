"""Read, validate and write topology documents (DESIGN.md, "The topology document"; reference: docs/topology.md).

    parse_document(source, images=None) -> Topology      raises TopologyError with every problem found
    validate_document(source, images=None) -> [Problem]  empty when valid
    load_file(path) -> Topology
    load_yaml(text) -> (data, [Problem])                 the safe loader alone (netops.yamlsafe)
    to_document(topology) -> dict                        the normalised document (netops.writer)
    dump_yaml(topology_or_document) -> str

A source is YAML text (JSON is YAML), bytes, or an already-loaded dict; text is read by netops.yamlsafe's strict
loader. The checker (netops.check) asks each node's kind (netops.kinds) for its keys and their rules.

Every problem carries the dotted path of the element it concerns, from the document root
(`nodes.r1.interfaces.eth0.address`, `links.3.endpoints.1`), and a message that quotes the bad value.
Wrong types give problems, never exceptions.
"""
from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from .check import Checker, ifname_problem
from .errors import Problem, TopologyError
from .model import Topology
from .writer import dump_yaml, to_document
from .yamlsafe import MAX_TEXT_BYTES, Source, load_yaml


def parse_document(source: Source, *, images: Collection[str] | None = None) -> Topology:
    """The validated `Topology` of a document; raises `TopologyError` carrying every problem found."""
    data, problems = load_yaml(source)
    if problems:
        raise TopologyError(problems)
    topology, problems = Checker(images).check(data)
    if problems or topology is None:
        raise TopologyError(problems or [Problem("", "the document is invalid")])
    topology.document = to_document(topology)
    return topology


def validate_document(source: Source, *, images: Collection[str] | None = None) -> list[Problem]:
    """Every problem of a document, in document order; an empty list when it is valid."""
    try:
        parse_document(source, images=images)
    except TopologyError as exc:
        return exc.problems
    return []


def load_file(path: str | Path, *, images: Collection[str] | None = None) -> Topology:
    """Parse a YAML/JSON file; files over 2 MiB are refused without being read whole."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_TEXT_BYTES + 1)
    return parse_document(data, images=images)


__all__ = ["MAX_TEXT_BYTES", "parse_document", "validate_document", "load_file", "load_yaml", "to_document",
           "dump_yaml", "ifname_problem"]
