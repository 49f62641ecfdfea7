"""netops.span, the pure part of a lab across hosts: which segments cross hosts, what each host builds of them,
and the document errors a placement reveals. (The tunnels in the kernel are not built yet: issue 13.)"""
from __future__ import annotations

from pathlib import Path

import pytest

from netops import span as sp
from netops.topology import load_file, parse_document

SEED = load_file(Path(__file__).resolve().parents[2] / "examples" / "seed-lab.yaml")
UNDERLAYS = {"a": "100.64.0.1", "b": "100.64.0.2", "c": "100.64.0.3"}


def _seed_nodes():
    return [n for n in SEED.nodes if not sp._segment(SEED, n)]


def test_one_host_spans_nothing():
    assert sp.spanning_segments(SEED, {n: "a" for n in _seed_nodes()}) == []


def test_the_seed_lab_split_over_two_hosts_spans_its_inner_switch_only():
    placement = {n: "a" for n in _seed_nodes()} | {"h2": "b"}
    segments = sp.spanning_segments(SEED, placement)
    assert segments == ["br-in"]
    span_a = sp.Span("a", placement, UNDERLAYS, {"br-in": 4242})
    assert sp.span_problems(SEED, span_a) == []
    (tunnel,) = sp.tunnels(SEED, span_a)
    assert (tunnel.vni, tunnel.local, tunnel.remotes, tunnel.bridge) == (4242, "100.64.0.1", ("100.64.0.2",), "br-in")
    assert len(tunnel.ifname) <= 15
    (tunnel_b,) = sp.tunnels(SEED, sp.Span("b", placement, UNDERLAYS, {"br-in": 4242}))
    assert tunnel_b.remotes == ("100.64.0.1",) and tunnel_b.ifname == tunnel.ifname
    assert "h2" in sp.Span("b", placement, UNDERLAYS).local_nodes(SEED)
    assert "h2" not in span_a.local_nodes(SEED) and "br-in" in span_a.local_nodes(SEED)
    ports = sp.spanning_ports(SEED, span_a)
    assert ports and set(ports.values()) == {1450}


def test_a_spanning_segment_without_a_vni_and_a_node_on_an_unknown_host_are_problems_at_their_paths():
    placement = {n: "a" for n in _seed_nodes()} | {"h2": "nowhere"}
    paths = {p.path for p in sp.span_problems(SEED, sp.Span("a", placement, UNDERLAYS, {}))}
    assert "nodes.h2.host" in paths


def test_a_direct_link_across_hosts_is_a_segment_of_its_own_named_by_its_sorted_ends():
    doc = {"version": 1, "name": "pair", "nodes": {
        "x": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.0.1/30"}}},
        "y": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.0.2/30"}}}},
        "links": [{"endpoints": ["y:eth0", "x:eth0"]}]}
    model = parse_document(doc)
    (segment,) = sp.spanning_segments(model, {"x": "a", "y": "b"})
    assert segment.startswith("link:") and segment.index("x:eth0") < segment.index("y:eth0")
    assert sp.spanning_segments(model, {"x": "a", "y": "a"}) == []


def test_an_interface_mtu_that_cannot_fit_the_tunnel_is_a_problem_at_its_path():
    doc = {"version": 1, "name": "pair", "nodes": {
        "x": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.0.1/30", "mtu": 1500}}},
        "y": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.0.2/30"}}}},
        "links": [{"endpoints": ["x:eth0", "y:eth0"]}]}
    model = parse_document(doc)
    placement = {"x": "a", "y": "b"}
    (segment,) = sp.spanning_segments(model, placement)
    problems = sp.span_problems(model, sp.Span("a", placement, UNDERLAYS, {segment: 5000}))
    assert [p.path for p in problems] == ["nodes.x.interfaces.eth0.mtu"]
    # an operator's jumbo underlay lifts the limit
    assert sp.span_problems(model, sp.Span("a", placement, UNDERLAYS, {segment: 5000}, mtu=8950)) == []


@pytest.mark.parametrize("kwargs", [
    {"underlays": {"a": "100.64.0.1 -x"}},
    {"underlays": {"a": "fe80::1"}},
    {"underlays": {"": "100.64.0.1"}},
    {"underlays": {"a" * 64: "100.64.0.1"}},
    {"vnis": {"sw": 0}},
    {"vnis": {"sw": 1 << 24}},
    {"vnis": {"sw": True}},
    {"mtu": 100},
    {"mtu": "1450"},
])
def test_hostile_span_values_are_refused(kwargs):
    args = {"local": "a", "placement": {}, "underlays": {"a": "100.64.0.1"}} | kwargs
    with pytest.raises(ValueError):
        sp.Span(**args)
