"""The kind registry (netops.kinds): each kind declares what the layers ask, and nothing else branches on a name."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from netops import kinds, naming
from netops.kinds.base import LINK_ENDS
from netops.topology import parse_document

ROOT = Path(__file__).resolve().parents[2]
NAMES = "|".join(kinds.names())
# a kind's name as a string literal compared with something (==, !=, in (...), case "...":) or listed in a tuple,
# list or set of such literals
_LIT = rf"""["'](?:{NAMES})["']"""
BRANCH = re.compile(
    rf"""(?:[=!]==?\s*{_LIT})|(?:{_LIT}\s*[=!]==?)|(?:\bin\s*[(\[{{]\s*{_LIT})|(?:[(\[{{]\s*{_LIT}\s*,\s*{_LIT})"""
    rf"""|(?:\bcase\s+{_LIT})|(?:new Set\(\[\s*{_LIT})"""
)


def _sources() -> list[Path]:
    files = [*ROOT.joinpath("netops").rglob("*.py"), *ROOT.joinpath("webapp").rglob("*.py"),
             *ROOT.joinpath("static", "js").rglob("*.js")]
    kinds_dir = ROOT / "netops" / "kinds"
    return [f for f in files if kinds_dir not in f.parents and "migrations" not in f.parts]


def test_the_grep_finds_a_branch_on_a_kind_name():
    # the pattern itself: it must see the shapes of branch the registry replaced
    for line in ('if node.kind == "vm":', "kind in ('host', 'router')", 'if (kind === "router")',
                 'x = ("bridge", "external")', 'new Set(["host", "router", "vm"])', '"external" != k'):
        assert BRANCH.search(line), line
    for line in ('kind = "deploy"', 'if run.kind == "destroy":', 'labels = {"external": node.name}'):
        assert not BRANCH.search(line), line


def test_no_code_outside_netops_kinds_branches_on_a_kind_name():
    offenders = []
    for path in _sources():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if BRANCH.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_every_kind_declares_what_the_layers_ask():
    for kind in kinds.all_kinds():
        assert kind.name and kind.label and kind.prefix and kind.keys[0] == "kind" and "ui" in kind.keys
        assert kind.link_end in LINK_ENDS
        assert kind.console in (None, "shell", "serial")
        assert not kind.namespace or kind.interfaces  # a namespace without interfaces could not be linked
        assert (ROOT / "static" / kind.public()["icon"]).is_file(), kind.name
        for action, method in kind.actions.items():
            assert callable(getattr(kind, method)), (kind.name, action)


def test_an_action_has_one_owner():
    owners: dict[str, str] = {}
    for kind in kinds.all_kinds():
        for action in kind.actions:
            assert action not in owners, (action, owners.get(action), kind.name)
            owners[action] = kind.name
    assert kinds.handler("no.such-action") is None


def test_public_part_is_json_and_describes_each_kind():
    public = json.loads(json.dumps(kinds.public()))
    assert [k["name"] for k in public["kinds"]] == list(kinds.names())
    assert set(public["node_states"]) >= {"absent", "starting", "running", "degraded", "stopped", "failed"}
    js_re = public["node_name_re"]
    assert "\\Z" not in js_re and re.fullmatch(js_re, "h1") and not re.fullmatch(js_re, "1h")
    assert js_re.replace("$", "\\Z") == naming.NODE_NAME_RE.pattern
    by_name = {k["name"]: k for k in public["kinds"]}
    for kind in kinds.all_kinds():
        entry = by_name[kind.name]
        assert entry["keys"] == list(kind.keys) and entry["prefix"] == kind.prefix
        assert entry["interfaces"] is kind.interfaces and entry["console"] == kind.console


@pytest.mark.parametrize("kind", kinds.names())
def test_a_key_of_another_kind_is_refused_naming_the_kinds_that_have_it(kind):
    other = next(k for k in kinds.all_kinds() if any(key not in kinds.get(kind).keys for key in k.keys))
    key = next(key for key in other.keys if key not in kinds.get(kind).keys)
    with pytest.raises(Exception) as info:
        parse_document({"version": 1, "name": "k", "nodes": {"n1": {"kind": kind, key: None}}, "links": []})
    problems = [(p.path, p.message) for p in info.value.problems]
    assert (f"nodes.n1.{key}", f"unknown key {key!r} for a {kind} node (only "
            + ", ".join(k + "s" for k in kinds.with_key(key)) + " have it)") in problems


class _Probe(kinds.NamespaceKind):
    """A kind as a next issue would add it: one class, nothing else in netops or the web tier changes."""

    name = "probe"
    label = "Probe"
    help = "A namespace that samples traffic"
    prefix = "p"
    palette = 50
    keys = ("kind", "description", "sampling", "verbose", "interfaces", "routes", "ui")
    sections = ("settings", "interfaces", "routes")
    settings = (kinds.Setting("sampling", "Sampling (1 in N)", "int", min=1, max=1000),
                kinds.Setting("verbose", "Verbose", "bool"))


@pytest.fixture
def probe_kind(monkeypatch):
    monkeypatch.setitem(kinds._KINDS, "probe", _Probe())
    yield kinds.get("probe")


def _probe_lab(**probe):
    return {"version": 1, "name": "probe", "nodes": {
        "p1": {"kind": "probe", "interfaces": {"eth0": {"address": "10.0.9.2/24"}}, **probe},
        "sw": {"kind": "bridge"}}, "links": [{"endpoints": ["p1:eth0", "sw"]}]}


def test_a_new_kind_is_one_class_validated_written_planned_and_served(probe_kind):
    from netops.inventory import Inventory
    from netops.plan import plan
    from netops.topology import dump_yaml, to_document, validate_document

    topo = parse_document(_probe_lab(sampling=10, verbose=True))
    assert topo.nodes["p1"].settings == {"sampling": 10, "verbose": True}
    doc = to_document(topo)
    assert list(doc["nodes"]["p1"]) == ["kind", "sampling", "verbose", "interfaces"]
    assert parse_document(dump_yaml(topo)).document == doc
    steps = plan(topo, "tk1", Inventory("tk1"))
    assert ("namespace.create", "p1") in [(s.action, s.node) for s in steps]
    assert [s.params["kind"] for s in steps if s.action == "link.create"] == ["ns-bridge"]
    problems = {p.path: p.message for p in validate_document(_probe_lab(sampling=0, verbose="yes"))}
    assert problems == {"nodes.p1.sampling": "0 must be an integer from 1 to 1000",
                        "nodes.p1.verbose": "'yes' must be true or false"}
    served = next(k for k in kinds.public()["kinds"] if k["name"] == "probe")
    assert served["settings"][0] == {"key": "sampling", "label": "Sampling (1 in N)", "type": "int", "help": "",
                                     "min": 1, "max": 1000}
    assert served["console"] == "shell" and served["prefix"] == "p"


def test_settings_left_out_keep_the_signatures_of_labs_deployed_before(probe_kind):
    from netops.plan import signatures

    before = signatures(parse_document(_probe_lab()))
    assert before == signatures(parse_document(_probe_lab()))
    assert before["p1"] != signatures(parse_document(_probe_lab(sampling=5)))["p1"]
