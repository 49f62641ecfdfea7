"""Reading topology text safely (netops.yamlsafe through parse_document): size limits, no aliases or anchors, no
duplicate or merge keys, no Python tags, YAML 1.2-like scalars, and problems instead of exceptions."""
from __future__ import annotations

from pathlib import Path

import pytest

from netops.errors import TopologyError
from netops.topology import MAX_TEXT_BYTES, load_file, parse_document, validate_document

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def paths(doc, **kw) -> list[str]:
    return [p.path for p in validate_document(doc, **kw)]


def seed() -> dict:
    import copy

    return copy.deepcopy(load_file(EXAMPLES / "seed-lab.yaml").document)


# ---------------------------------------------------------------- reading text safely

SEED_TEXT = (EXAMPLES / "seed-lab.yaml").read_text()


def test_text_over_2_mib_is_refused_before_parsing():
    text = SEED_TEXT + "#" * (MAX_TEXT_BYTES - len(SEED_TEXT.encode()) + 1)
    assert len(text.encode()) == MAX_TEXT_BYTES + 1
    problems = validate_document(text)
    assert [p.path for p in problems] == [""] and "larger" in problems[0].message
    assert len(validate_document(text.encode())) == 1
    assert validate_document(text[:-1]) == []


def test_aliases_and_anchors_are_refused():
    text = "version: 1\nname: &n lab\nnodes: {}\nlinks: []\ndescription: *n\n"
    problems = validate_document(text)
    assert [p.path for p in problems] == [""] and "anchors" in problems[0].message


def test_a_billion_laughs_document_is_refused_quickly():
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [*a{i-1},*a{i-1},*a{i-1},*a{i-1},*a{i-1},*a{i-1},*a{i-1},*a{i-1},*a{i-1}]" for i in range(1, 10)]
    problems = validate_document("\n".join(lines))
    assert len(problems) == 1 and "not allowed" in problems[0].message


def test_duplicate_keys_are_refused_naming_their_path():
    text = SEED_TEXT.replace("    kind: host                     # plain namespace",
                             "    kind: host\n    kind: router")
    text = text.replace("  h2:\n", "  h1:\n")
    problems = validate_document(text)
    assert sorted(p.path for p in problems) == ["nodes.h1", "nodes.h1.kind"]
    assert all("duplicate key" in p.message for p in problems)


def test_merge_keys_are_refused():
    assert paths("version: 1\nname: x\nnodes:\n  b: {<<: {kind: bridge}}\n") == ["nodes.b.<<"]


def test_python_tags_are_refused():
    problems = validate_document("!!python/object/apply:os.system ['true']\n")
    assert [p.path for p in problems] == [""]


def test_invalid_yaml_gives_a_problem_not_an_exception():
    assert paths("version: 1\nname: [unclosed\n") == [""]
    assert paths(b"version: 1\nname: \xff\n") == [""]
    assert paths("[" * 100_000) == [""]
    assert paths("") == [""]
    assert paths(42) == [""]  # type: ignore[arg-type]
    assert paths("- a list\n") == [""]


def test_yaml_1_1_surprises_stay_strings():
    text = (
        "version: 1\nname: 2024-01-01\nnodes:\n  on: {kind: bridge}\n"
        "  v: {kind: vm, image: tiny, interfaces: {eth0: {mac: 52:54:00:12:34:56}}}\n"
        "links: [{endpoints: [v:eth0, on]}]\n"
    )
    topo = parse_document(text)
    assert topo.name == "2024-01-01"
    assert "on" in topo.nodes
    assert topo.node("v").interfaces["eth0"].mac == "52:54:00:12:34:56"


def test_node_and_link_counts_are_limited():
    doc = {"version": 1, "name": "big", "nodes": {f"b{i}": {"kind": "bridge"} for i in range(2001)}}
    assert paths(doc) == ["nodes"]
    doc["nodes"] = {f"b{i}": {"kind": "bridge"} for i in range(10)}
    doc["links"] = [{"endpoints": [f"b{i % 10}", f"b{(i + 1 + i // 10 % 9) % 10}"]} for i in range(4001)]
    assert paths(doc) == ["links"]
    doc["links"] = doc["links"][:4000]  # each switch has at most 1000 link ends (the switch limit)
    assert validate_document(doc) == []


def test_load_file_reads_at_most_2_mib(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(SEED_TEXT.encode() + b"#" * (3 * MAX_TEXT_BYTES))
    with pytest.raises(TopologyError, match="larger"):
        load_file(big)


# ---------------------------------------------------------------- found by the fuzz (tests/chaos/test_fuzz_document.py)


@pytest.mark.parametrize("text", [
    "version: 1\nname: " + "9" * 5000 + "\n",  # Python refuses to read an int of more than 4300 digits (ValueError)
    "version: !!int abc\n",  # a tag that cannot read its scalar (ValueError)
    "version: !!float x\n",
    "version: !!timestamp x\n",  # AttributeError inside PyYAML's timestamp constructor
    "\x00", "version: 1\nname: a\x07b\n",  # the reader refuses them while the loader is made (ReaderError)
])
def test_values_yaml_cannot_read_are_problems_not_exceptions(text):
    with pytest.raises(TopologyError) as info:
        parse_document(text)
    assert info.value.problems[0].path == "" and info.value.problems[0].message


def test_a_long_integer_is_refused_with_its_line():
    [problem] = validate_document("version: 1\nname: x\nnodes:\n  a: {kind: bridge, x: " + "9" * 101 + "}\n")
    assert "101 digits" in problem.message and "line 4" in problem.message


def test_lone_surrogates_are_refused_naming_their_path():
    """JSON (and double-quoted YAML) may escape a lone surrogate: no name or value may hold one (they cannot be
    encoded: the interface name check raised UnicodeEncodeError)."""
    doc = {"version": 1, "name": "a", "nodes": {"h": {"kind": "host", "interfaces": {"\ud800": None}}}, "links": []}
    [problem] = validate_document(doc)
    assert problem.path == "nodes.h.interfaces.'\\ud800'" and "surrogate" in problem.message
    # in YAML text: refused by libyaml's reader (an invalid escape), or by the check after loading
    assert validate_document('version: 1\nname: "a\\udc00"\nnodes: {}\n')


@pytest.mark.parametrize("text,message", [
    ("version: 1\nname: x\nnodes: [" + "1," * 1_000_000 + "1]\n", "too many elements"),
    ("version: 1\nname: x\nnodes: " + "[" * 100_000 + "]" * 100_000 + "\n", "nest"),
    ("version: 1\nname: x\nnodes: " + "[" * 70 + "]" * 70 + "\n", "nested too deeply"),
])
def test_documents_that_would_take_long_to_read_are_refused_within_a_second(text, message):
    """Found by the fuzz: a 2 MiB list of numbers took 27 s to read with the pure-Python loader (9 s for 60 000
    nodes); libyaml reads it, and its event stream bounds what is composed."""
    import time

    started = time.perf_counter()
    [problem] = validate_document(text)
    assert time.perf_counter() - started < 1.0 and message in problem.message, problem


def test_a_full_size_lab_still_reads():
    """2000 hosts with an address, a MAC, a route and a place on the canvas each, wired to a switch: about 80 000
    parser events, under the limit."""
    import yaml

    nodes = {f"h{i}": {"kind": "host", "interfaces": {"eth0": {"address": f"10.{i // 250}.{i % 250}.1/24",
                                                                "mac": f"02:00:00:00:{i // 256:02x}:{i % 256:02x}"}},
                       "routes": [{"to": "default", "via": f"10.{i // 250}.{i % 250}.254"}], "ui": {"x": i, "y": i}}
             for i in range(1999)}
    nodes["br"] = {"kind": "bridge"}
    nodes["br2"] = {"kind": "bridge"}  # one switch takes at most 1000 links (netops.kinds.base.SegmentKind)
    del nodes["h1998"]
    doc = {"version": 1, "name": "big", "nodes": nodes,
           "links": [{"endpoints": [f"h{i}:eth0", "br" if i < 1000 else "br2"]} for i in range(1998)]}
    assert len(parse_document(yaml.safe_dump(doc)).nodes) == 2000


@pytest.mark.parametrize("text", ["1e999", "1e5", "+5", "-0", ".5", "1.", "true", "on", "2024-01-01"])
def test_strings_the_loader_would_read_as_numbers_are_written_quoted(text):
    """Found by the fuzz: a lab named '1e999' was written unquoted and read back as the float inf (YAML 1.1 has no
    exponent without a dot; our loader has)."""
    from netops.topology import dump_yaml

    doc = {"version": 1, "name": text, "description": text, "nodes": {}, "links": []}
    again = parse_document(dump_yaml(doc))
    assert again.name == text and again.description == text
