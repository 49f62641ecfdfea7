"""The `checks:` section of a document (netops.labchecks), pure: strict validation at each path, the normalised
document, what students see, scores, target refusal, RE2 for patterns."""
from __future__ import annotations

import copy
import time

import pytest

from netops import labchecks
from netops.errors import TopologyError
from netops.topology import dump_yaml, parse_document

BASE = {"version": 1, "name": "checks", "nodes": {
    "r1": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.1.254/24",
                                                     "dhcp_server": {"range": "10.0.1.100-10.0.1.150"}},
                                            "eth1": {"address": "10.0.2.254/24"}}},
    "sw": {"kind": "bridge"},
    "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}}},
    "h2": {"kind": "host", "interfaces": {"eth0": {"address": "dhcp"}}},
    "h3": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.2.1/24"}}}},
    "links": [{"endpoints": ["r1:eth0", "sw"]}, {"endpoints": ["h1:eth0", "sw"]}, {"endpoints": ["h2:eth0", "sw"]},
              {"endpoints": ["r1:eth1", "h3:eth0"]}]}

GOOD = [
    {"id": "ping", "title": "h1 reaches h3", "ping": {"from": "h1", "to": "h3:eth0"}},
    {"id": "lease", "title": "h2 leased", "wait": 10, "points": 3,
     "address": {"node": "h2", "interface": "eth0", "in": "10.0.1.100-10.0.1.150"}},
    {"id": "route", "title": "route", "route": {"node": "h1", "to": "default", "via": "10.0.1.254"}},
    {"id": "nat", "title": "nat", "nat": {"node": "r1", "interface": "eth1"}},
    {"id": "dhcp", "title": "dhcp", "dhcp_lease": {"server": "r1"}},
    {"id": "web", "title": "web", "visibility": "title", "tcp": {"from": "h1", "to": "10.0.2.1", "port": 80,
                                                                 "expect": "closed"}},
    {"id": "cmd", "title": "cmd", "visibility": "hidden",
     "command": {"node": "h1", "run": ["ip", "-4", "addr"], "output_matches": "inet 10\\.0\\.1\\.1/", "exit": 0}},
]


def doc(checks):
    d = copy.deepcopy(BASE)
    d["checks"] = checks
    return d


def problems(checks) -> dict[str, str]:
    with pytest.raises(TopologyError) as err:
        parse_document(doc(checks))
    return {p.path: p.message for p in err.value.problems}


def test_every_kind_validates_and_round_trips_through_the_normalised_document():
    topology = parse_document(doc(GOOD))
    assert [c.kind for c in topology.checks] == ["ping", "address", "route", "nat", "dhcp_lease", "tcp", "command"]
    written = topology.document["checks"]
    assert written[0] == {"id": "ping", "title": "h1 reaches h3",
                          "ping": {"from": "h1", "to": "h3:eth0", "expect": "success", "count": 2}}
    assert written[1]["address"]["in"] == "10.0.1.100-10.0.1.150" and written[1]["wait"] == 10
    assert written[2]["route"] == {"node": "h1", "to": "default", "via": "10.0.1.254", "present": True}
    assert parse_document(topology.document).document == topology.document
    assert dump_yaml(parse_document(dump_yaml(topology))) == dump_yaml(topology)


@pytest.mark.parametrize("check, path, words", [
    ({"title": "t", "ping": {"from": "h1", "to": "h3"}}, "checks.0.id", "is required"),
    ({"id": "1x", "title": "t", "ping": {"from": "h1", "to": "h3"}}, "checks.0.id", "must be a letter"),
    ({"id": "a", "ping": {"from": "h1", "to": "h3"}}, "checks.0.title", "is required"),
    ({"id": "a", "title": "t"}, "checks.0", "needs exactly one of ping"),
    ({"id": "a", "title": "t", "ping": {"from": "h1", "to": "h3"}, "route": {"node": "h1", "to": "default"}},
     "checks.0", "not ping, route"),
    ({"id": "a", "title": "t", "ping": {"from": "h1", "to": "h3"}, "colour": "red"}, "checks.0.colour",
     "unknown key 'colour'"),
    ({"id": "a", "title": "t", "ping": {"from": "h1", "to": "h3", "size": 9}}, "checks.0.ping.size",
     "unknown key 'size' for a ping check"),
    ({"id": "a", "title": "t", "ping": {"to": "h3"}}, "checks.0.ping.from", "is required"),
    ({"id": "a", "title": "t", "ping": {"from": "h9", "to": "h3"}}, "checks.0.ping.from", "unknown node 'h9'"),
    ({"id": "a", "title": "t", "ping": {"from": "sw", "to": "h3"}}, "checks.0.ping.from", "sw is a bridge"),
    ({"id": "a", "title": "t", "ping": {"from": "h1", "to": "h3:eth7"}}, "checks.0.ping.to", "h3 has no interface"),
    ({"id": "a", "title": "t", "ping": {"from": "h1", "to": "h3", "expect": "maybe"}}, "checks.0.ping.expect",
     "must be one of success, failure"),
    ({"id": "a", "title": "t", "ping": {"from": "h1", "to": "h3", "count": 11}}, "checks.0.ping.count",
     "from 1 to 10"),
    ({"id": "a", "title": "t", "ping": {"from": "h1", "to": "198.51.100.7"}}, "checks.0.ping.to",
     "198.51.100.7 is not an address of this lab"),
    ({"id": "a", "title": "t", "tcp": {"from": "h1", "to": "127.0.0.1", "port": 22}}, "checks.0.tcp.to",
     "not a unicast address"),
    ({"id": "a", "title": "t", "tcp": {"from": "h1", "to": "h3", "port": 0}}, "checks.0.tcp.port",
     "from 1 to 65535"),
    ({"id": "a", "title": "t", "address": {"node": "h2", "interface": "eth0", "in": "10.0.1.150-10.0.1.100"}},
     "checks.0.address.in", "from a lower to a higher address"),
    ({"id": "a", "title": "t", "address": {"node": "h2", "interface": "eth0", "in": "nowhere"}},
     "checks.0.address.in", "is not a range"),
    ({"id": "a", "title": "t", "route": {"node": "h1", "to": "10.0.2.1/24"}}, "checks.0.route.to",
     "is not 'default' or a network"),
    ({"id": "a", "title": "t", "nat": {"node": "r1", "interface": "eth9"}}, "checks.0.nat.interface",
     "r1 has no interface 'eth9'"),
    ({"id": "a", "title": "t", "dhcp_lease": {"server": "h1"}}, "checks.0.dhcp_lease.server",
     "h1 serves DHCP on no interface"),
    ({"id": "a", "title": "t", "dhcp_lease": {"server": "r1", "interface": "eth1"}},
     "checks.0.dhcp_lease.interface", "r1's eth1 has no dhcp_server"),
    ({"id": "a", "title": "t", "ospf_neighbor": {"node": "r1"}}, "checks.0.ospf_neighbor.node",
     "r1 does not run OSPF"),
    ({"id": "a", "title": "t", "command": {"node": "h1", "run": "ip route"}}, "checks.0.command.run",
     "must be a command as a list"),
    ({"id": "a", "title": "t", "command": {"node": "h1", "run": ["x"] * 65}}, "checks.0.command.run",
     "1 to 64 strings"),
    ({"id": "a", "title": "t", "command": {"node": "h1", "run": ["ip"], "output_matches": "(a)\\1"}},
     "checks.0.command.output_matches", "not a regular expression RE2 accepts"),
    ({"id": "a", "title": "t", "command": {"node": "h1", "run": ["ip"], "timeout": 600}},
     "checks.0.command.timeout", "from 1 to 60"),
    ({"id": "a", "title": "t", "wait": -1, "ping": {"from": "h1", "to": "h3"}}, "checks.0.wait",
     "from 0 to 600"),
    ({"id": "a", "title": "t", "points": True, "ping": {"from": "h1", "to": "h3"}}, "checks.0.points",
     "must be an integer"),
    ({"id": "a", "title": "t", "visibility": "secret", "ping": {"from": "h1", "to": "h3"}}, "checks.0.visibility",
     "details, title, hidden"),
])
def test_a_bad_check_is_refused_at_its_path(check, path, words):
    found = problems([check])
    assert path in found, found
    assert words in found[path], found[path]


def test_ids_are_unique_and_the_list_is_bounded():
    twice = [GOOD[0], {**GOOD[0], "title": "again"}]
    assert problems(twice)["checks.1.id"] == "'ping' is already the id of checks.0"
    assert "at most 200 checks" in problems([GOOD[0]] * 201)["checks"]
    assert problems({"id": "x"})["checks"] == "must be a list of checks, not a mapping"


def test_a_lab_with_an_uplink_may_check_addresses_beyond_it():
    d = doc([{"id": "out", "title": "out", "ping": {"from": "h1", "to": "198.51.100.7"}}])
    d["nodes"]["wan"] = {"kind": "external", "nat": True, "address": "100.64.9.1/30"}
    d["nodes"]["r1"]["interfaces"]["eth2"] = {"address": "100.64.9.2/30"}
    d["links"].append({"endpoints": ["r1:eth2", "wan"]})
    assert parse_document(d).checks[0].spec["to"].ip is not None


def test_re2_matches_a_catastrophic_pattern_in_linear_time():
    import re2

    started = time.monotonic()
    assert re2.search("(a+)+$", "a" * 100_000 + "!") is None
    assert time.monotonic() - started < 1


def test_students_see_details_titles_or_nothing():
    written = parse_document(doc(GOOD)).document["checks"]
    seen = labchecks.for_student(written)
    assert [c["id"] for c in seen] == ["ping", "lease", "route", "nat", "dhcp", "web"]
    assert seen[-1] == {"id": "web", "title": "web", "points": 1, "visibility": "title"}


def test_the_score_counts_points_and_the_outcome_names_nodes_and_links():
    topology = parse_document(doc(GOOD))
    nat = topology.checks[3]
    assert nat.nodes() == ["r1"] and nat.interfaces() == [("r1", "eth1")]
    ping = topology.checks[0]
    assert ping.nodes() == ["h1", "h3"] and ping.interfaces() == [("h3", "eth0")]
    outcomes = [labchecks.Outcome(c.id, c.title, i % 2 == 0, "seen", c.points) for i, c in enumerate(topology.checks)]
    result = labchecks.score(outcomes)
    assert (result["earned"], result["possible"], result["passed"], result["failed"]) == (4, 9, 4, 3)
    assert result["percent"] == 44.4


def test_a_targets_static_address_comes_from_the_document_so_it_need_not_run_on_this_host():
    from netops.labcheck_run import Seen, _Lab

    topology = parse_document({"version": 1, "name": "t", "nodes": {
        "r1": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.12.1/30"}}},
        "h2": {"kind": "host", "interfaces": {"eth0": {"address": "dhcp"}}}},
        "links": [{"endpoints": ["r1:eth0", "h2:eth0"]}]})
    lab = _Lab("nosuchlab1", topology)  # nothing of it runs here
    assert lab.target_ip(labchecks.Target(node="r1")) == "10.0.12.1"
    with pytest.raises(Seen, match="h2 is not running"):  # a leased one is read where the node runs
        lab.target_ip(labchecks.Target(node="h2"))
    with pytest.raises(Seen, match="no node h9"):
        lab.target_ip(labchecks.Target(node="h9"))


def test_what_a_check_reads_of_a_node_on_another_host_is_asked_of_that_host():
    from netops import qemu
    from netops.errors import ApplyError
    from netops.labcheck_run import Seen, _Lab, read_for_peer

    topology = parse_document({"version": 1, "name": "t", "nodes": {
        "r1": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.1.254/24",
                                                         "dhcp_server": {"range": "10.0.1.100-10.0.1.150"}}}},
        "sw": {"kind": "bridge"},
        "h2": {"kind": "host", "interfaces": {"eth0": {"address": "dhcp"}}},
        "vm1": {"kind": "vm", "image": "tiny", "interfaces": {"eth0": {"address": "dhcp"}}}},
        "links": [{"endpoints": ["r1:eth0", "sw"]}, {"endpoints": ["h2:eth0", "sw"]},
                  {"endpoints": ["vm1:eth0", "sw"]}]})
    vm_mac = qemu.mac_of("nolab9", topology.nodes["vm1"], "eth0")
    asked: list[tuple[str, dict]] = []
    answers = {("h2", "addresses"): ["10.0.1.117/24"],
               ("r1", "leases"): [{"expiry": 0, "mac": vm_mac.upper(), "ip": "10.0.1.101"},
                                  {"expiry": 1, "mac": vm_mac, "ip": "10.0.1.102"}]}  # expired long ago

    def ask(node, query):
        asked.append((node, query))
        return answers[(node, query["read"])]

    lab = _Lab("nolab9", topology, here={"vm1"}, ask=ask)  # this host runs vm1; r1 and h2 run elsewhere
    assert lab.target_ip(labchecks.Target(node="h2")) == "10.0.1.117"
    assert lab.addresses("vm1", "eth0") == ["10.0.1.101"]  # its router's live lease, asked of the router's host
    assert asked == [("h2", {"read": "addresses", "interface": "eth0"}),
                     ("r1", {"read": "leases", "interface": "eth0"})]

    answers[("h2", "addresses")] = ["10.0.1.117/24; rm -rf /"]
    with pytest.raises(Seen, match="malformed address"):
        lab.target_ip(labchecks.Target(node="h2"))
    answers[("r1", "leases")] = [{"mac": vm_mac}]
    with pytest.raises(Seen, match="malformed lease"):
        lab.addresses("vm1", "eth0")

    def unreachable(node, query):
        raise ApplyError("host b: the stream agent did not answer within 10 s (is it running?)")

    with pytest.raises(Seen, match="h2's host could not be asked: host b: the stream agent did not answer"):
        _Lab("nolab9", topology, here=set(), ask=unreachable).target_ip(labchecks.Target(node="h2"))
    with pytest.raises(Seen, match="cannot be asked here"):
        _Lab("nolab9", topology, here=set()).target_ip(labchecks.Target(node="h2"))

    # the host asked answers only what it may: a read of a node and interface of the lab, one of two kinds
    for node, query, words in [
            ("h2", {"read": "config", "interface": "eth0"}, "one of addresses, leases"),
            ("h2", "addresses", "one of addresses, leases"),
            ("h9", {"read": "addresses", "interface": "eth0"}, "no interface 'eth0' of a node 'h9'"),
            ("h2", {"read": "addresses", "interface": "../../etc"}, "no interface '../../etc'"),
            ("h2", {"read": "addresses", "interface": ["eth0"]}, "no interface"),
            ("h2", {"read": "leases", "interface": "eth0"}, "h2 serves DHCP on no interface eth0"),
            ("vm1", {"read": "addresses", "interface": "eth0"}, "vm1 has no namespace")]:
        with pytest.raises(ApplyError, match=words):
            read_for_peer("nolab9", topology, node, query)
    with pytest.raises(ApplyError, match="h2 is not running"):  # asked of a host where it does not run
        read_for_peer("nolab9", topology, "h2", {"read": "addresses", "interface": "eth0"})
