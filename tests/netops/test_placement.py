"""netops.placement: which lab host each node runs on (issue 13, part 2), and the `host:` key that pins a node."""
from __future__ import annotations

from pathlib import Path

import pytest

from netops import span as sp
from netops.placement import Seat, place, placed
from netops.topology import load_file, parse_document, validate_document

SEED = load_file(Path(__file__).resolve().parents[2] / "examples" / "seed-lab.yaml")


def doc(nodes, links=()):
    return {"version": 1, "name": "p", "nodes": nodes, "links": [{"endpoints": list(e)} for e in links]}


def star(switches: int, per_switch: int, **extra):
    nodes = {f"sw{s}": {"kind": "bridge"} for s in range(switches)}
    links = []
    for s in range(switches):
        for i in range(per_switch):
            nodes[f"h{s}x{i}"] = {"kind": "host", "interfaces": {"eth0": {}}, **extra}
            links.append((f"h{s}x{i}:eth0", f"sw{s}"))
    return parse_document(doc(nodes, links))


def test_every_node_of_a_kind_with_a_host_is_placed_and_switches_are_not():
    out = place(SEED, [Seat("a", 10_000), Seat("b", 10_000)])
    assert out.problems == []
    assert set(out.hosts) == {"r1", "h1", "h2", "vm1", "wan"}
    assert not placed(SEED, "br-in") and placed(SEED, "wan")


def test_a_switch_that_fits_on_one_host_stays_on_it_and_spans_nothing():
    out = place(SEED, [Seat("a", 10_000), Seat("b", 10_000)])
    assert len(set(out.hosts.values())) == 1
    assert sp.spanning_segments(SEED, out.hosts) == []


def test_two_switches_that_each_fit_one_host_go_to_different_hosts_when_both_do_not_fit_one():
    model = star(2, 10)  # 10 hosts of 16 MiB per switch: 160 MiB each
    out = place(model, [Seat("a", 200), Seat("b", 200)])
    assert out.problems == []
    for s in range(2):
        assert len({out.hosts[f"h{s}x{i}"] for i in range(10)}) == 1, "a switch's nodes were split"
    assert sp.spanning_segments(model, out.hosts) == []


def test_a_switch_bigger_than_any_host_spills_over_and_then_spans():
    model = star(1, 30)  # 480 MiB
    out = place(model, [Seat("a", 300), Seat("b", 300)])
    assert out.problems == []
    counts = sorted(list(out.hosts.values()).count(h) for h in ("a", "b"))
    assert sum(counts) == 30 and counts[0] > 0
    assert sp.spanning_segments(model, out.hosts) == ["sw0"]


def test_a_pinned_node_stays_pinned_and_its_switch_follows_it():
    eth0 = {"interfaces": {"eth0": {}}}
    model = parse_document(doc({"s": {"kind": "bridge"}, "x": {"kind": "host", "host": "b", **eth0},
                                "y": {"kind": "host", **eth0}, "z": {"kind": "host", **eth0}},
                               [("x:eth0", "s"), ("y:eth0", "s"), ("z:eth0", "s")]))
    out = place(model, [Seat("a", 10_000), Seat("b", 1_000)])
    assert out.hosts == {"x": "b", "y": "b", "z": "b"}


def test_unknown_and_down_hosts_are_problems_at_the_nodes_host():
    model = parse_document(doc({"x": {"kind": "host", "host": "nowhere"}, "y": {"kind": "host", "host": "b"}}))
    out = place(model, [Seat("a", 1000), Seat("b", 1000, up=False)])
    assert [(p.path, p.message) for p in out.problems] == [
        ("nodes.x.host", "there is no lab host 'nowhere' (known: a, b)"),
        ("nodes.y.host", "lab host 'b' is down"),
    ]


def test_running_nodes_stay_where_they_run_on_a_redeploy():
    first = place(SEED, [Seat("a", 10_000), Seat("b", 10_000)])
    again = place(SEED, [Seat("a", 0), Seat("b", 10_000)], previous=first.hosts)
    assert again.hosts == first.hosts and again.problems == []
    # ... unless the host went down: then they move
    moved = place(SEED, [Seat("a", 10_000, up=False), Seat("b", 10_000)], previous={"h1": "a"})
    assert moved.hosts["h1"] == "b"


def test_nodes_on_an_uplink_run_on_its_host_and_a_pin_elsewhere_is_refused():
    model = parse_document(doc({"wan": {"kind": "external", "nat": True, "address": "192.0.2.1/24", "host": "b"},
                                "r": {"kind": "router", "interfaces": {"eth0": {"address": "192.0.2.2/24"}}}},
                               [("r:eth0", "wan")]))
    assert place(model, [Seat("a", 10_000), Seat("b", 100)]).hosts == {"wan": "b", "r": "b"}
    pinned = parse_document(doc({"wan": {"kind": "external", "nat": True, "address": "192.0.2.1/24", "host": "b"},
                                 "r": {"kind": "router", "host": "a",
                                       "interfaces": {"eth0": {"address": "192.0.2.2/24"}}}},
                                [("r:eth0", "wan")]))
    (problem,) = place(pinned, [Seat("a", 10_000), Seat("b", 100)]).problems
    assert problem.path == "nodes.r.host" and "uplink wan, which runs on b" in problem.message


def test_a_node_that_fits_nowhere_is_a_problem_naming_the_room_left():
    model = parse_document(doc({"v": {"kind": "vm", "image": "tiny", "memory": 2048}, "h": {"kind": "host"}}))
    out = place(model, [Seat("a", 1000), Seat("b", 500)])
    assert [p.path for p in out.problems] == ["nodes.v"]
    assert "2112 MiB" in out.problems[0].message and "a 1000 MiB" in out.problems[0].message
    assert out.hosts == {"h": "a"}
    assert {p.path for p in place(model, []).problems} == {"nodes.h", "nodes.v"}


def test_one_input_gives_one_placement():
    model = star(3, 7)
    seats = [Seat("c", 200), Seat("a", 200), Seat("b", 200)]
    assert place(model, seats).hosts == place(model, list(reversed(seats))).hosts


def test_four_switches_of_499_on_three_hosts_split_one_switch_only():
    model = star(4, 499)  # 7984 MiB per switch, 3 x 12000 MiB of room
    out = place(model, [Seat("a", 12_000), Seat("b", 12_000), Seat("c", 12_000)])
    assert out.problems == [] and len(out.hosts) == 1996
    assert len(sp.spanning_segments(model, out.hosts)) <= 2


@pytest.mark.parametrize("value", ["-Q", "A", "a b", "../x", "a" * 64, "", 7, "lab-", "lab_1", "x;y"])
def test_a_host_key_that_is_not_a_host_name_is_a_problem_at_its_path(value):
    problems = validate_document(doc({"h": {"kind": "host", "host": value}}))
    assert [p.path for p in problems] == ["nodes.h.host"]


def test_a_switch_has_no_host_key_and_the_normalised_document_keeps_the_host():
    problems = validate_document(doc({"s": {"kind": "bridge", "host": "a"}}))
    assert [p.path for p in problems] == ["nodes.s.host"]
    model = parse_document(doc({"h": {"kind": "host", "host": "lab-2", "description": "d"}}))
    assert list(model.document["nodes"]["h"])[:3] == ["kind", "description", "host"]
    assert model.nodes["h"].host == "lab-2"
