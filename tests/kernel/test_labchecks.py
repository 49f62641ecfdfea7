"""Lab checks against real labs: the seed lab's checks pass when it is built right, and each fails naming what it saw
when the lab is broken on purpose (masquerade removed, dnsmasq stopped, a route deleted, a port blocked); `wait`
retries until OSPF converges; hostile checks are bounded or refused; checks run in the lab's cell; the CLI's exit
codes."""
from __future__ import annotations

import concurrent.futures
import copy
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from netops import cell, dnsmasq, labcheck_run, labchecks, naming, procs
from netops.errors import TopologyError
from netops.topology import parse_document

REPO = Path(__file__).resolve().parents[2]
PORT = 8080


def ns_exec(ns: str, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "--", *argv], capture_output=True, text=True,
                          timeout=60, check=check)


def seed_lab(isp_bridge: str) -> dict:
    """The seed lab of DESIGN.md (router with DHCP and NAT, a switch, two hosts, a VM, an uplink), with checks."""
    return {
        "version": 1, "name": "seed-lab",
        "nodes": {
            "r1": {"kind": "router",
                   "interfaces": {"eth0": {"address": "10.0.1.254/24",
                                           "dhcp_server": {"range": "10.0.1.100-10.0.1.150"}},
                                  "eth1": {"address": "203.0.113.2/24"}},
                   "routes": [{"to": "default", "via": "203.0.113.1"}],
                   "nat": {"masquerade": ["eth1"]}},
            "br-in": {"kind": "bridge"},
            "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}},
                   "routes": [{"to": "default", "via": "10.0.1.254"}]},
            "h2": {"kind": "host", "interfaces": {"eth0": {"address": "dhcp"}}},
            "vm1": {"kind": "vm", "image": "tiny", "memory": 128,
                    "interfaces": {"eth0": {"address": "dhcp", "mac": "52:54:00:aa:bb:cc"}}},
            "wan": {"kind": "external", "bridge": isp_bridge},
        },
        "links": [{"endpoints": ["r1:eth0", "br-in"]}, {"endpoints": ["h1:eth0", "br-in"]},
                  {"endpoints": ["h2:eth0", "br-in"]}, {"endpoints": ["vm1:eth0", "br-in"]},
                  {"endpoints": ["r1:eth1", "wan"]}],
        "checks": [
            {"id": "isp", "title": "h1 reaches the ISP", "points": 2,
             "ping": {"from": "h1", "to": "203.0.113.1"}},
            {"id": "h2-lease", "title": "h2 has a lease", "address": {"node": "h2", "interface": "eth0",
                                                                      "in": "10.0.1.100-10.0.1.150"}},
            {"id": "vm-lease", "title": "vm1 has a lease", "wait": 60,
             "address": {"node": "vm1", "interface": "eth0", "in": "10.0.1.0/24"}},
            {"id": "h1-default", "title": "h1's default route", "route": {"node": "h1", "to": "default",
                                                                          "via": "10.0.1.254"}},
            {"id": "nat", "title": "r1 masquerades", "nat": {"node": "r1", "interface": "eth1"}},
            {"id": "dhcp", "title": "r1 hands out leases", "dhcp_lease": {"server": "r1", "count_at_least": 2}},
            {"id": "web", "title": "h2 serves on 8080", "tcp": {"from": "h1", "to": "h2", "port": PORT}},
            {"id": "cmd", "title": "h1's routes", "command": {"node": "h1", "run": ["ip", "route"],
                                                              "output_matches": r"default via 10\.0\.1\.254"}},
        ],
    }


def by_id(outcomes: list[labchecks.Outcome]) -> dict[str, labchecks.Outcome]:
    return {o.id: o for o in outcomes}


def serve(lab: str, node: str, port: int) -> None:
    """A TCP listener in the node's cell (stopped with the lab)."""
    procs.spawn(["/usr/bin/python3", "-I", "-m", "http.server", str(port), "--bind", "0.0.0.0"], lab=lab,
                role="test-http", namespace=naming.node_namespace(lab, node), log_path=cell.cell_dir(lab) / "http.log")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if f":{port}" in ns_exec(naming.node_namespace(lab, node), ["ss", "-ltn"]).stdout:
            return
        time.sleep(0.1)
    raise AssertionError("the test listener did not start")


def test_the_seed_labs_checks_pass_built_right_and_each_fails_naming_what_it_saw_when_broken(
        deploy, lab_id, isp_namespace):
    topology = parse_document(seed_lab(isp_namespace["bridge"]))
    deploy(topology, lab_id)
    serve(lab_id, "h2", PORT)
    events = []
    outcomes = by_id(labcheck_run.run_checks(lab_id, topology, on_event=events.append))
    assert all(o.passed for o in outcomes.values()), {o.id: o.message for o in outcomes.values()}
    assert [e.type for e in events] == ["check.passed"] * 8
    assert events[0].data["id"] == "isp" and events[0].step == 1 and events[0].total == 8
    assert labchecks.score(list(outcomes.values()))["percent"] == 100.0
    assert outcomes["h2-lease"].message.startswith("h2 eth0 has 10.0.1.1"), outcomes["h2-lease"].message
    assert outcomes["vm-lease"].message.startswith("vm1 eth0 has 10.0.1.1"), outcomes["vm-lease"].message
    r1, h1, h2 = (naming.node_namespace(lab_id, n) for n in ("r1", "h1", "h2"))

    # remove r1's masquerade: the nat check and the ping to the ISP fail, saying what they saw
    ns_exec(r1, ["nft", "delete", "table", "inet", "topolab"])
    # stop dnsmasq: the lease check fails although the old lease lines stay in the file
    dnsmasq.stop(lab_id, "r1", "eth0")
    # delete h1's default route (the ISP is then unreachable from h1 anyway)
    ns_exec(h1, ["ip", "route", "del", "default"])
    # block the port on h2
    ns_exec(h2, ["nft", "add", "table", "inet", "block"])
    ns_exec(h2, ["nft", "add", "chain", "inet", "block", "input", "{ type filter hook input priority 0; }"])
    ns_exec(h2, ["nft", "add", "rule", "inet", "block", "input", "tcp", "dport", str(PORT), "drop"])
    broken = [c for c in topology.checks if c.id not in ("vm-lease",)]
    events.clear()
    outcomes = by_id(labcheck_run.run_checks(lab_id, topology, broken, on_event=events.append))
    assert not outcomes["nat"].passed
    assert outcomes["nat"].message.startswith("r1 has no masquerade of traffic leaving eth1 (0 source NAT"), \
        outcomes["nat"].message
    assert outcomes["nat"].links == [4] and outcomes["nat"].nodes == ["r1"]
    assert not outcomes["isp"].passed and "h1 -> 203.0.113.1: no reply" in outcomes["isp"].message
    assert "Network is unreachable" in outcomes["isp"].message  # what ping said, with h1's route gone
    assert not outcomes["dhcp"].passed
    assert "eth0: dnsmasq not running, 2 leases" in outcomes["dhcp"].message, outcomes["dhcp"].message
    assert not outcomes["h1-default"].passed
    assert outcomes["h1-default"].message == "h1 has no route to default via 10.0.1.254 (routes to default: none)"
    assert not outcomes["cmd"].passed and "does not match" in outcomes["cmd"].message
    assert "10.0.1.0/24 dev eth0" in outcomes["cmd"].message  # what it saw: the routes h1 has left
    assert not outcomes["web"].passed
    assert outcomes["web"].message.startswith("h1 -> h2 (10.0.1.1") and "port 8080 is not open: no answer (timed " \
        "out)" in outcomes["web"].message, outcomes["web"].message
    assert outcomes["h2-lease"].passed  # h2 keeps its address until the lease ends
    assert {e.type for e in events} == {"check.passed", "check.failed"}
    assert [e.data["id"] for e in events if e.type == "check.failed"] == ["isp", "h1-default", "nat", "dhcp", "web",
                                                                          "cmd"]
    result = labchecks.score(list(outcomes.values()))
    assert (result["earned"], result["possible"]) == (1, 8)


def ospf_pair() -> dict:
    """r1 - r2 over a point-to-point link with OSPF (short timers), a host behind each."""
    nodes: dict = {}
    links = [{"endpoints": ["r1:eth0", "r2:eth0"]}]
    for i in (1, 2):
        nodes[f"r{i}"] = {"kind": "router",
                          "interfaces": {"eth0": {"address": f"10.0.12.{i}/30"},
                                         "eth1": {"address": f"10.1.{i}.254/24"}},
                          "routing": {"loopback": f"10.255.0.{i}/32",
                                      "ospf": {"areas": {0: {"interfaces": ["eth0"], "passive": ["eth1", "lo"]}},
                                               "hello": 1, "dead": 4}}}
        nodes[f"h{i}"] = {"kind": "host", "interfaces": {"eth0": {"address": f"10.1.{i}.1/24"}},
                          "routes": [{"to": "default", "via": f"10.1.{i}.254"}]}
        links.append({"endpoints": [f"r{i}:eth1", f"h{i}:eth0"]})
    return {"version": 1, "name": "ospf-pair", "nodes": nodes, "links": links,
            "checks": [{"id": "adj", "title": "r1 and r2 are OSPF neighbours",
                        "ospf_neighbor": {"node": "r1", "neighbor": "r2"}},
                       {"id": "e2e", "title": "h1 reaches h2", "ping": {"from": "h1", "to": "h2"}}]}


def test_wait_retries_until_ospf_converges(deploy, lab_id):
    doc = ospf_pair()
    mismatched = copy.deepcopy(doc)
    mismatched["nodes"]["r2"]["routing"]["ospf"]["hello"] = 2  # hello intervals differ: no adjacency ever
    deploy(parse_document(mismatched), lab_id)
    first = by_id(labcheck_run.run_checks(lab_id, parse_document(mismatched)))
    assert not first["adj"].passed and first["adj"].attempts == 1
    assert first["adj"].message.startswith("r1 has no OSPF neighbor 10.255.0.2 in state Full ("), first["adj"].message
    for check in doc["checks"]:
        check["wait"] = 60
    topology = parse_document(doc)
    # the checks start waiting while the intervals still differ; the fix is deployed while they retry
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(labcheck_run.run_checks, lab_id, topology)
        time.sleep(3 * labcheck_run.RETRY_S)
        assert not waiting.done()
        deploy(topology, lab_id)  # FRR reloads r2 with the matching interval: the adjacency forms within seconds
        outcomes = by_id(waiting.result(timeout=120))
    assert outcomes["adj"].passed, outcomes["adj"].message
    assert outcomes["adj"].attempts >= 3, "it failed while the intervals differed, and passed after the fix"
    assert "10.255.0.2 on eth0 Full" in outcomes["adj"].message
    assert outcomes["e2e"].passed, outcomes["e2e"].message


def test_a_bgp_session_check_waits_for_established_and_names_the_sessions_it_saw(deploy, lab_id):
    doc = {"version": 1, "name": "ebgp", "nodes": {
        "r1": {"kind": "router", "interfaces": {"eth0": {"address": "198.51.100.1/30"}},
               "routing": {"bgp": {"asn": 65001, "router_id": "10.255.1.1",
                                   "neighbors": [{"address": "198.51.100.2", "asn": 65002}]}}},
        "r2": {"kind": "router", "interfaces": {"eth0": {"address": "198.51.100.2/30"}},
               "routing": {"bgp": {"asn": 65002, "router_id": "10.255.2.2",
                                   "neighbors": [{"address": "198.51.100.1", "asn": 65001}]}}}},
        "links": [{"endpoints": ["r1:eth0", "r2:eth0"]}],
        "checks": [{"id": "up", "title": "r1 peers with r2", "wait": 90, "bgp_session": {"node": "r1", "peer": "r2"}},
                   {"id": "ghost", "title": "a peer that is not there",
                    "bgp_session": {"node": "r1", "peer": "198.51.100.3"}}]}
    topology = parse_document(doc)
    deploy(topology, lab_id)
    outcomes = by_id(labcheck_run.run_checks(lab_id, topology))
    assert outcomes["up"].passed, outcomes["up"].message
    assert "198.51.100.2 Established" in outcomes["up"].message
    assert outcomes["ghost"].message == ("r1 has no BGP session with 198.51.100.3 in state Established "
                                         "(198.51.100.2 Established)"), outcomes["ghost"].message


# ------------------------------------------------------------------------------------------------ hostile checks


def one_host(checks: list[dict]) -> dict:
    return {"version": 1, "name": "hostile", "nodes": {
        "sw": {"kind": "bridge"},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}}},
        "h2": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.2/24"}}}},
        "links": [{"endpoints": ["h1:eth0", "sw"]}, {"endpoints": ["h2:eth0", "sw"]}], "checks": checks}


def test_hostile_checks_are_bounded_or_refused(deploy, lab_id):
    flood = {"id": "flood", "title": "100 MB", "command": {"node": "h1", "run": ["head", "-c", "100000000",
                                                                                 "/dev/zero"]}}
    regex = {"id": "regex", "title": "backtracking", "command": {
        "node": "h1", "run": ["sh", "-c", "yes a | head -c 40000 | tr -d '\\n'; echo !"], "output_matches": "(a+)+$"}}
    sleeper = {"id": "sleep", "title": "never ends", "command": {"node": "h1", "run": ["sleep", "60"], "timeout": 1}}
    forker = {"id": "fork", "title": "leaves a child", "command": {
        "node": "h1", "run": ["sh", "-c", "sleep 300 & echo started"]}}
    topology = parse_document(one_host([flood, regex, sleeper, forker]))
    deploy(topology, lab_id)
    started = time.monotonic()
    outcomes = by_id(labcheck_run.run_checks(lab_id, topology))
    assert outcomes["flood"].message == f"head on h1 wrote more than {labcheck_run.MAX_OUTPUT} bytes: stopped"
    assert not outcomes["regex"].passed and "does not match '(a+)+$'" in outcomes["regex"].message
    assert outcomes["regex"].seconds < 2, "RE2 matches in linear time"
    assert not outcomes["sleep"].passed and "did not finish within 1 s" in outcomes["sleep"].message
    assert outcomes["fork"].passed, outcomes["fork"].message
    assert time.monotonic() - started < 20
    assert procs.find(lab_id, "check:h1") == [], "nothing a check started survives it"

    # a ping or tcp to an address outside the lab: the document is refused at the path...
    outside = {"id": "probe", "title": "the host", "ping": {"from": "h1", "to": "192.0.2.1"}}
    with pytest.raises(TopologyError) as err:
        parse_document(one_host([outside]))
    assert [p.path for p in err.value.problems] == ["checks.0.ping.to"]
    assert "192.0.2.1 is not an address of this lab" in err.value.problems[0].message
    # ...and a template's check run against this lab (no document validation) is refused, not sent
    checks, problems = labchecks.parse_checks([outside, {"id": "lo", "title": "loopback", "tcp": {
        "from": "h1", "to": "127.0.0.1", "port": 22}}])
    assert problems == []
    refused = by_id(labcheck_run.run_checks(lab_id, topology, [c for c in checks]))
    assert refused["probe"].message == "refused: 192.0.2.1 is not an address of this lab (in none of its " \
                                       "subnets), and the lab has no uplink"
    assert refused["lo"].message.startswith("refused: 127.0.0.1 is not a unicast address")


def test_checks_run_in_the_labs_cell_only(deploy, lab_id):
    checks = [{"id": "uid", "title": "uid map", "command": {"node": "h1", "run": ["cat", "/proc/self/uid_map"]}},
              {"id": "cg", "title": "cgroup", "command": {"node": "h1", "run": ["cat", "/proc/self/cgroup"]}},
              {"id": "links", "title": "links", "command": {"node": "h1", "run": ["ip", "-o", "link"]}}]
    topology = parse_document(one_host(checks))
    deploy(topology, lab_id)
    lab = labcheck_run._Lab(lab_id, topology)
    outs = {c.id: lab.run("h1", c.spec["run"]).stdout.decode() for c in topology.checks}
    uid = cell.get(lab_id).uid
    assert outs["uid"].split() == ["0", str(uid), str(cell.SIZE)], outs["uid"]
    assert f"topolab/{lab_id}/h1/check:h1" in outs["cg"], outs["cg"]
    names = sorted(line.split(":")[1].strip().split("@")[0] for line in outs["links"].splitlines())
    assert names == ["eth0", "lo"], outs["links"]
    assert all(o.passed for o in labcheck_run.run_checks(lab_id, topology))


# ------------------------------------------------------------------------------------------------ CLI


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netops", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


def test_cli_check_exit_codes(deploy, lab_id, tmp_path):
    good = {"id": "ping", "title": "h1 pings h2", "ping": {"from": "h1", "to": "h2:eth0"}}
    bad = {"id": "nope", "title": "h1 cannot reach h2", "ping": {"from": "h1", "to": "h2", "expect": "failure"}}
    passing, failing, invalid = tmp_path / "pass.yaml", tmp_path / "fail.yaml", tmp_path / "invalid.yaml"
    passing.write_text(yaml.safe_dump(one_host([good])))
    failing.write_text(yaml.safe_dump(one_host([good, bad])))
    broken = one_host([copy.deepcopy(good)])
    broken["checks"][0]["ping"]["from"] = "h9"
    invalid.write_text(yaml.safe_dump(broken))

    done = cli("check", str(passing), "--lab", lab_id)
    assert done.returncode == 2 and f"lab {lab_id} is not deployed" in done.stderr, done
    deploy(parse_document(one_host([good])), lab_id)
    done = cli("check", str(passing), "--lab", lab_id)
    assert done.returncode == 0, done
    assert "[1/1] PASS ping: h1 pings h2: h1 -> h2:eth0 (10.0.1.2): 2 packets transmitted, 2 received" in done.stdout
    done = cli("check", str(failing), "--lab", lab_id)
    assert done.returncode == 1, done
    assert "FAIL nope: h1 cannot reach h2: h1 -> h2 (10.0.1.2): replies came back, expected none" in done.stdout
    assert "1 of 2 checks passed, 1 of 2 points (50.0%)" in done.stdout
    done = cli("check", str(invalid), "--lab", lab_id)
    assert done.returncode == 2 and "checks.0.ping.from: unknown node 'h9'" in done.stderr, done
    none = tmp_path / "none.yaml"
    none.write_text(yaml.safe_dump(one_host([])))
    done = cli("check", str(none), "--lab", lab_id)
    assert done.returncode == 2 and "has no checks" in done.stderr, done
