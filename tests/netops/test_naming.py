"""netops.naming: lab ids, namespace and interface names fit the kernel's limits and map back unambiguously."""
from __future__ import annotations

import pytest

from netops import naming
from netops.errors import TopologyError
from netops.topology import validate_document

ODD_NAMES = ["seed-lab", "---", "Ünïcode läb", "a", "x" * 64, "lab with spaces", "2024-01-01", "日本語"]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_every_document_name_derives_a_valid_stable_lab_id(name):
    lab = naming.derive_lab_id(name)
    assert naming.check_lab_id(lab) == lab
    assert naming.derive_lab_id(name) == lab


def test_lab_ids_of_different_names_differ_and_keep_a_readable_prefix():
    assert naming.derive_lab_id("seed-lab").startswith("seed")
    assert naming.derive_lab_id("seed-lab") != naming.derive_lab_id("seed-lab2")


@pytest.mark.parametrize("bad", ["", "ABC", "a-b", "toolong12", "../x", None, 5])
def test_bad_lab_ids_are_refused(bad):
    with pytest.raises(TopologyError):
        naming.check_lab_id(bad)


def test_namespace_names_map_back_to_lab_and_node():
    assert naming.parse_namespace(naming.node_namespace("ab12", "r1-core")) == ("ab12", "r1-core")
    assert naming.parse_namespace(naming.fabric_namespace("ab12")) == ("ab12", None)


@pytest.mark.parametrize("foreign", ["default", "tl-", "tl-ABC", "tl-ab12-", "tl-ab12-1bad", "tlx-ab12", "tl-toolong12"])
def test_foreign_namespace_names_are_not_taken_for_ours(foreign):
    assert naming.parse_namespace(foreign) is None


def test_generated_interface_names_fit_in_15_bytes_and_do_not_collide():
    longest_node = "n" + "x" * 31
    names = {
        naming.fabric_ifname(longest_node, "e" * 15),
        naming.fabric_ifname(longest_node, "e" * 14),
        naming.bridge_ifname(longest_node),
        naming.link_bridge_ifname("links.3999"),
        naming.root_ifname("abcdefgh", longest_node),
        naming.root_peer_ifname("abcdefgh", longest_node),
    }
    assert len(names) == 6
    assert all(len(n.encode()) <= naming.IFNAME_MAX for n in names)


def test_tags_round_trip_and_foreign_tags_are_ignored():
    assert naming.parse_tag(naming.tag("ab12", "node", "r1")) == ("ab12", ["node", "r1"])
    for foreign in (None, "", "topolab", "other:ab12:x", "topolab:AB12:x"):
        assert naming.parse_tag(foreign) is None


def test_run_dir_refuses_a_lab_id_that_could_escape(monkeypatch, tmp_path):
    monkeypatch.setenv("TOPOLAB_RUN_DIR", str(tmp_path))
    assert naming.run_dir("ab12") == tmp_path / "ab12"
    with pytest.raises(TopologyError):
        naming.run_dir("../etc")


@pytest.mark.parametrize("bad", ["h1\n", "ab\n"])
def test_a_trailing_newline_never_passes_a_name_check(bad):
    """`$` matches before a final newline; every name check must anchor with \\Z (or fullmatch)."""
    assert not naming.NODE_NAME_RE.match(bad)
    assert not naming.LAB_ID_RE.match(bad)
    with pytest.raises(TopologyError):
        naming.check_lab_id(bad)


def test_a_node_name_with_a_newline_is_a_problem_of_that_node():
    doc = {"version": 1, "name": "n", "nodes": {"h1\n": {"kind": "bridge"}}, "links": []}
    assert [p.path for p in validate_document(doc)] == ["nodes.h1\n"]


@pytest.mark.parametrize("tag", ["A", "../x", "abcde", "a-b", " "])
def test_a_bad_host_tag_is_refused(monkeypatch, tag):
    monkeypatch.setenv("TOPOLAB_HOST_TAG", tag)
    with pytest.raises(TopologyError):
        naming.fabric_namespace("lab1")


def test_the_tunnel_namespace_maps_back_to_its_lab_and_no_document_node_can_be_called_so():
    assert naming.parse_namespace(naming.tunnel_namespace("ab12")) == ("ab12", naming.TUNNEL_NODE)
    assert not naming.NODE_NAME_RE.match(naming.TUNNEL_NODE)
    assert naming.parse_namespace("tl-ab12-_other") is None


def test_simulated_hosts_name_everything_under_prefixes_no_other_host_parses(monkeypatch):
    default = (naming.fabric_namespace("lab1"), naming.tag("lab1", "ns", "h1"), naming.nft_table("lab1"),
               naming.root_ifname("lab1", "wan"), naming.run_dir("lab1"), naming.lab_key("lab1"))
    assert default[:4] == ("tl-lab1", "topolab:lab1:ns:h1", "topolab_lab1", naming.root_ifname("lab1", "wan"))
    monkeypatch.setenv("TOPOLAB_HOST_TAG", "a")
    mine = (naming.fabric_namespace("lab1"), naming.tag("lab1", "ns", "h1"), naming.nft_table("lab1"),
            naming.root_ifname("lab1", "wan"), naming.run_dir("lab1"), naming.lab_key("lab1"))
    assert mine[:3] == ("tla-lab1", "topolab-a:lab1:ns:h1", "topolab_a_lab1") and mine[5] == "a.lab1"
    assert all(m != d for m, d in zip(mine, default, strict=True))
    assert naming.parse_namespace("tl-lab1") is None and naming.parse_tag("topolab:lab1:ns:h1") is None
    assert naming.lab_of_key("lab1") is None and naming.lab_of_key("a.lab1") == "lab1"
    monkeypatch.setenv("TOPOLAB_HOST_TAG", "ab")
    assert naming.parse_namespace("tla-lab1") is None and naming.parse_tag("topolab-a:lab1") is None
    assert naming.lab_of_key("a.lab1") is None
    monkeypatch.delenv("TOPOLAB_HOST_TAG")
    assert naming.parse_namespace("tla-lab1") is None and naming.parse_tag("topolab-a:lab1") is None
    assert naming.lab_of_key("a.lab1") is None
