"""netops.span, the pure part of a lab across hosts: which segments cross hosts, what each host builds of them,
and the document errors a placement reveals, the part of the document each host builds (the tunnels in the kernel:
tests/kernel/test_vxlan.py)."""
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


# ---------------------------------------------------------------------------------------------- hostile


BASE = {"local": "a", "placement": {"h1": "a"}, "underlays": {"a": "198.51.100.1", "b": "198.51.100.2"}}


@pytest.mark.parametrize("change", [
    {"underlays": {"a": "224.0.0.5", "b": "198.51.100.2"}},
    {"underlays": {"a": "0.0.0.0", "b": "198.51.100.2"}},
    {"underlays": {"a": "255.255.255.255", "b": "198.51.100.2"}},
    {"underlays": {"a": " 198.51.100.1", "b": "198.51.100.2"}},
    {"underlays": {"a": 3325256705, "b": "198.51.100.2"}},  # an integer is no address text
    {"underlays": {"a": "198.51.100.1; reboot", "b": "198.51.100.2"}},
    {"underlays": {"a": "198.51.100.1", "b": "198.51.100.1"}},  # two hosts, one address
    {"underlays": {"b": "198.51.100.2"}},  # this host has no underlay
    {"vnis": {"sw": 0}}, {"vnis": {"sw": 1 << 24}}, {"vnis": {"sw": True}}, {"vnis": {"sw": "42"}},
    {"vnis": {"sw": 7, "link:h1:eth0--h2:eth0": 7}},  # one VNI would join two segments
    {"mtu": 100}, {"mtu": 70000}, {"mtu": "1450"},
    {"underlay_netns": "../../proc/1/ns/net"}, {"underlay_netns": ".."}, {"underlay_netns": "a b"},
    {"local": "a/../b"}, {"placement": {"h1": "host\nname"}}, {"local": "A"}, {"local": "-Q"},
])
def test_span_values_that_would_reach_the_kernel_unchecked_are_refused(change):
    with pytest.raises(ValueError):
        sp.Span(**{**BASE, **change})


def _across() -> tuple:
    document = {
        "version": 1, "name": "across",
        "nodes": {
            "sw": {"kind": "bridge"},
            "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}}},
            "h2": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.2/24", "mtu": 1400}}},
            "h3": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.2.1/24"}}},
            "h4": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.2.2/24"}}},
        },
        "links": [{"endpoints": ["h1:eth0", "sw"]}, {"endpoints": ["h2:eth0", "sw"]},
                  {"endpoints": ["h3:eth0", "h4:eth0"], "delay": "10ms"}],
    }
    model = parse_document(document)
    placement = {"h1": "a", "h2": "b", "h3": "a", "h4": "b"}
    vnis = {"sw": 10, "link:h3:eth0--h4:eth0": 11}
    return model, placement, vnis


def test_each_host_builds_its_nodes_the_segments_it_has_ports_on_and_link_bridges():
    model, placement, vnis = _across()
    seg = "link:h3:eth0--h4:eth0"
    part_a = sp.local_topology(model, sp.Span("a", placement, UNDERLAYS, vnis))
    part_b = sp.local_topology(model, sp.Span("b", placement, UNDERLAYS, vnis))
    assert set(part_a.nodes) == {"sw", "h1", "h3", seg} and set(part_b.nodes) == {"sw", "h2", "h4", seg}
    assert [str(lk.a) + "-" + str(lk.b) for lk in part_a.links] == ["h1:eth0-sw", f"h3:eth0-{seg}"]
    assert [lk.index for lk in part_b.links] == [1, 2]  # the document's indexes, so errors name its paths
    # MTU: 1450 on spanning ports, a smaller one of the document kept
    assert part_a.nodes["h1"].interfaces["eth0"].mtu == 1450 and part_b.nodes["h2"].interfaces["eth0"].mtu == 1400
    # a direct link's conditions are applied on its first end's host only (both directions there)
    assert part_a.links[1].conditions.delay_ms == 10 and not part_b.links[1].conditions.any()
    assert sp.link_bridges(model, sp.Span("a", placement, UNDERLAYS, vnis)) == {seg}
    # a host with nothing of the lab builds nothing
    assert sp.local_topology(model, sp.Span("c", placement, UNDERLAYS, vnis)).nodes == {}


def test_a_links_hosts_are_those_whose_part_holds_it_and_each_names_it_by_its_own_key():
    from netops.wiring import link_key

    model, placement, vnis = _across()
    to_switch, cross = model.links[0], model.links[2]
    assert sp.link_hosts(model, placement, to_switch) == {"a"}  # h1's host; sw has no link of h1 on b
    assert sp.link_hosts(model, placement, cross) == {"a", "b"}
    assert sp.link_hosts(model, {"h1": "a"}, cross) == set()  # an end placed nowhere: no host holds it
    for host, here in (("a", "h3:eth0"), ("b", "h4:eth0")):
        span = sp.Span(host, placement, UNDERLAYS, vnis)
        held = sp.local_link_keys(model, span, {link_key(cross), link_key(to_switch)})
        local = {link_key(lk) for lk in sp.local_topology(model, span).links}
        assert held[link_key(cross)] in local and held[link_key(cross)].startswith(here)  # its end to the bridge
        assert (link_key(to_switch) in held) == (host == "a")  # b does not hold h1's link


def test_a_link_between_two_spanning_switches_is_built_on_one_host_only():
    document = {
        "version": 1, "name": "two-switches",
        "nodes": {"s1": {"kind": "bridge"}, "s2": {"kind": "bridge"},
                  **{f"h{i}": {"kind": "host", "interfaces": {"eth0": {"address": f"10.0.0.{i}/24"}}}
                     for i in range(1, 5)}},
        "links": [{"endpoints": ["h1:eth0", "s1"]}, {"endpoints": ["h2:eth0", "s1"]},
                  {"endpoints": ["h3:eth0", "s2"]}, {"endpoints": ["h4:eth0", "s2"]},
                  {"endpoints": ["s1", "s2"]}],
    }
    model = parse_document(document)
    placement = {"h1": "a", "h2": "b", "h3": "a", "h4": "b"}
    vnis = {"s1": 1, "s2": 2}
    built = [any(lk.index == 4 for lk in sp.local_topology(model, sp.Span(h, placement, UNDERLAYS, vnis)).links)
             for h in ("a", "b")]
    assert built == [True, False]  # on both, the two tunnels would close a loop
    assert sp.link_hosts(model, placement, model.links[4]) == {"a"}
    # two switches with no host in common cannot be joined
    placement = {"h1": "a", "h2": "a", "h3": "b", "h4": "b"}
    problems = sp.span_problems(model, sp.Span("a", placement, UNDERLAYS, {}))
    assert [p.path for p in problems] == ["links.4"]


def test_an_uplink_whose_ports_sit_on_two_hosts_is_refused():
    document = {
        "version": 1, "name": "uplink",
        "nodes": {"wan": {"kind": "external", "bridge": "br0"},
                  "r1": {"kind": "router", "interfaces": {"eth0": {"address": "192.0.2.1/24"}}},
                  "r2": {"kind": "router", "interfaces": {"eth0": {"address": "192.0.2.2/24"}}}},
        "links": [{"endpoints": ["r1:eth0", "wan"]}, {"endpoints": ["r2:eth0", "wan"]}],
    }
    model = parse_document(document)
    problems = sp.span_problems(model, sp.Span("a", {"r1": "a", "r2": "b"}, UNDERLAYS, {"wan": 3}))
    assert [p.path for p in problems] == ["nodes.wan"]
