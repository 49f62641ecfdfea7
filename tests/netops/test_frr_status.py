"""netops.frr_status, pure parts: FRR 8.4's JSON answers (shapes as vtysh gave them on this machine) into the
panel's rows; what a huge table is listed as; hostile answers (a lab can answer on its own zebra's socket)."""
from __future__ import annotations

import json

import pytest

from netops import frr_status
from netops.errors import TopologyError
from netops.topology import parse_document

ROUTES = {
    "10.1.1.0/24": [{"prefix": "10.1.1.0/24", "protocol": "connected", "selected": True, "distance": 0, "metric": 0,
                     "installed": True, "uptime": "00:00:09",
                     "nexthops": [{"flags": 3, "fib": True, "directlyConnected": True, "interfaceName": "eth1",
                                   "active": True}]}],
    "10.2.3.0/24": [{"prefix": "10.2.3.0/24", "protocol": "bgp", "selected": True, "distance": 20, "metric": 20,
                     "installed": True, "uptime": "00:00:05",
                     "nexthops": [{"fib": True, "ip": "198.51.100.2", "afi": "ipv4", "interfaceName": "eth0",
                                   "active": True, "weight": 1}]}],
    "10.0.12.0/30": [{"prefix": "10.0.12.0/30", "protocol": "ospf", "selected": False, "distance": 110,
                      "metric": 10, "uptime": "00:00:07", "nexthops": [{"directlyConnected": True,
                                                                        "interfaceName": "eth0", "active": True}]},
                     {"prefix": "10.0.12.0/30", "protocol": "connected", "selected": True, "installed": True,
                      "nexthops": [{"directlyConnected": True, "interfaceName": "eth0", "active": True, "fib": True}]}],
}
OSPF = {"neighbors": {"10.255.2.3": [{"priority": 1, "state": "Full/-", "nbrState": "Full/-", "role": "DROther",
                                      "upTime": "7.615s", "deadTime": "3.387s", "address": "10.2.23.2",
                                      "ifaceAddress": "10.2.23.2", "ifaceName": "eth1:10.2.23.1"}]}}
BGP = {"ipv4Unicast": {"routerId": "10.255.1.1", "as": 65001, "peers": {
    "198.51.100.2": {"hostname": "vm", "remoteAs": 65002, "localAs": 65001, "peerUptime": "00:00:07", "pfxRcd": 5,
                     "pfxSnt": 6, "state": "Established", "peerState": "OK"}}}}
SUMMARY = {"routes": [{"fib": 2, "rib": 2, "type": "connected"}, {"fib": 4, "rib": 5, "type": "ebgp"},
                      {"fib": 0, "rib": 0, "type": "ibgp"}], "routesTotal": 7, "routesTotalFib": 6}


def router():
    return parse_document({"version": 1, "name": "view", "nodes": {
        "r1": {"kind": "router", "interfaces": {"eth0": {"address": "198.51.100.1/30"},
                                                "eth1": {"address": "10.1.1.254/24"}},
               "routing": {"bgp": {"asn": 65001, "neighbors": [{"address": "198.51.100.2", "asn": 65002},
                                                               {"interface": "eth1", "asn": "external"}]}}},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.1.1.1/24"}}},
        "r2": {"kind": "router", "interfaces": {"eth0": {"address": "10.9.9.1/24"}}},
        "r3": {"kind": "router", "interfaces": {"eth0": {"address": "198.51.100.2/30"}}},
        "sw": {"kind": "bridge"}},
        "links": [{"endpoints": ["r1:eth1", "sw"]}, {"endpoints": ["h1:eth0", "sw"]},
                  {"endpoints": ["r2:eth0", "sw"]}, {"endpoints": ["r1:eth0", "r3:eth0"]}]})


def test_routes_become_one_row_per_rib_entry_with_their_next_hops():
    rows = frr_status.parse_routes(ROUTES, 4)
    assert len(rows) == 4
    bgp = next(r for r in rows if r["protocol"] == "bgp")
    assert bgp == {"prefix": "10.2.3.0/24", "family": 4, "protocol": "bgp", "selected": True, "installed": True,
                   "distance": 20, "metric": 20, "uptime": "00:00:05",
                   "nexthops": [{"via": "198.51.100.2", "interface": "eth0", "active": True, "fib": True,
                                 "connected": False}]}
    ospf = next(r for r in rows if r["protocol"] == "ospf")
    assert ospf["selected"] is False and ospf["installed"] is False


def test_neighbors_and_sessions_with_the_interface_they_run_over():
    topology = router()
    assert frr_status.parse_ospf_neighbors(OSPF) == [
        {"id": "10.255.2.3", "address": "10.2.23.2", "interface": "eth1", "state": "Full/-", "role": "DROther",
         "up": "7.615s", "dead": "3.387s"}]
    assert frr_status.parse_bgp_summary(BGP, topology.nodes["r1"]) == [
        {"peer": "198.51.100.2", "interface": "eth0", "af": "ipv4Unicast", "asn": 65002, "state": "Established",
         "up": "00:00:07", "received": 5, "sent": 6, "description": None}]
    r1 = topology.nodes["r1"]
    assert frr_status.local_interface(r1, "eth1") == "eth1"  # unnumbered
    assert frr_status.local_interface(r1, "10.1.1.7") == "eth1"
    assert frr_status.local_interface(r1, "192.0.2.1") is None  # multihop: on no link
    assert frr_status.local_interface(r1, "not an address") is None


def test_status_and_the_panel_read_the_same_concatenated_answers():
    text = json.dumps(SUMMARY) + "\n% ospfd is not running\n" + json.dumps(BGP, indent=2) + "\n"
    assert frr_status.json_answers(text) == [SUMMARY, BGP]
    assert frr_status.parse_summary(SUMMARY) == (7, {"connected": 2, "bgp": 5})


def test_a_huge_table_is_listed_by_protocol_smallest_first_and_cut_keeping_the_small_protocols():
    assert frr_status.plan_listing(7, {"connected": 2, "bgp": 5}, 2000) == (None, [])
    words, left = frr_status.plan_listing(100_004, {"connected": 4, "ospf": 300, "kernel": 99_700}, 2000)
    assert words == ["connected", "ospf"] and left == ["kernel"]
    rows = ([{"prefix": f"10.200.{i // 250}.{i % 250}/32", "protocol": "kernel", "family": 4} for i in range(600)]
            + [{"prefix": "10.255.0.2/32", "protocol": "ospf", "family": 4},
               {"prefix": "fe80::/64", "protocol": "connected", "family": 6},
               {"prefix": "10.0.12.0/30", "protocol": "connected", "family": 4}])
    kept, cut = frr_status.keep_routes(rows, 500)
    assert len(kept) == 500 and cut == {"kernel": (497, 600)}
    assert [r["prefix"] for r in kept[:2]] == ["10.0.12.0/30", "10.200.0.0/32"]
    assert kept[-2:] == [rows[600], rows[601]]  # sorted: IPv4 by address, then IPv6


def test_hostile_answers_become_bounded_text_or_nothing():
    huge = "x" * 100_000
    answer = {huge: [{"protocol": {"nested": 1}, "selected": "yes", "distance": "20", "metric": True,
                      "nexthops": [{"ip": huge, "interfaceName": ["eth0"]}] * 100},
                     "not a dict", 7], "10.0.0.0/8": "not a list"}
    (row,) = frr_status.parse_routes(answer, 4)
    assert len(row["prefix"]) == frr_status.TEXT_MAX and row["protocol"] is None
    assert row["selected"] is False and row["distance"] is None and row["metric"] is None
    assert len(row["nexthops"]) == frr_status.NEXTHOP_LIMIT
    assert row["nexthops"][0] == {"via": "x" * frr_status.TEXT_MAX, "interface": None, "active": False,
                                  "fib": False, "connected": False}
    for junk in (None, [], "text", 42, {"neighbors": "no"}, {"ipv4Unicast": {"peers": [1, 2]}}):
        assert frr_status.parse_routes(junk, 4) == []
        assert frr_status.parse_ospf_neighbors(junk) == []
        assert frr_status.parse_ospf6_neighbors(junk) == []
        assert frr_status.parse_bgp_summary(junk, router().nodes["r1"]) == []
        assert frr_status.parse_summary(junk)[1] == {}
    # a summary's protocol names only fixed words: what it says never reaches vtysh's argv
    assert frr_status.parse_summary({"routes": [{"type": "ospf; rm -rf /", "rib": 5},
                                                {"type": "kernel", "rib": 3}]}) == (3, {"kernel": 3})
    many = {"neighbors": {f"10.0.{i // 250}.{i % 250}": [{"state": "Full/-"}] for i in range(1000)}}
    assert len(frr_status.parse_ospf_neighbors(many)) == frr_status.NEIGHBOR_LIMIT


@pytest.mark.parametrize(("name", "path", "says"), [
    ("h1", "nodes.h1", "h1 is a host, not a router"),
    ("sw", "nodes.sw", "sw is a bridge, not a router"),
    ("r2", "nodes.r2.routing", "r2 has no routing:"),
    ("r9", "nodes.r9", "there is no node 'r9'"),
])
def test_only_routers_with_routing_may_be_asked(name, path, says):
    with pytest.raises(TopologyError) as caught:
        frr_status.view_target(router(), name)
    (problem,) = caught.value.problems
    assert problem.path == path and says in problem.message
    assert frr_status.view_target(router(), "r1").name == "r1"
