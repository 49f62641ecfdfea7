"""The engine against the real kernel: deploy, ping, NAT, DHCP, isolation, idempotence, faults, edits, CLI."""
from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from netops import engine, naming
from netops.errors import ApplyError
from netops.topology import parse_document

REPO = Path(__file__).resolve().parents[2]


def ns_exec(ns: str, argv: list[str], *, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "--", *argv], capture_output=True, text=True,
                          timeout=60, check=check)


def two_hosts(name: str = "two-hosts") -> dict:
    return {
        "version": 1,
        "name": name,
        "nodes": {
            "sw": {"kind": "bridge"},
            "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}}},
            "h2": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.2/24"}}},
        },
        "links": [{"endpoints": ["h1:eth0", "sw"]}, {"endpoints": ["h2:eth0", "sw"]}],
    }


def routed(isp_bridge: str, *, nat: bool) -> dict:
    r1: dict = {
        "kind": "router",
        "interfaces": {"eth0": {"address": "10.0.1.254/24"}, "eth1": {"address": "203.0.113.2/24"}},
        "routes": [{"to": "default", "via": "203.0.113.1"}],
    }
    if nat:
        r1["nat"] = {"masquerade": ["eth1"]}
    return {
        "version": 1,
        "name": "routed",
        "nodes": {
            "r1": r1,
            "lan": {"kind": "bridge"},
            "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}},
                   "routes": [{"to": "default", "via": "10.0.1.254"}]},
            "wan": {"kind": "external", "bridge": isp_bridge},
        },
        "links": [{"endpoints": ["r1:eth0", "lan"]}, {"endpoints": ["h1:eth0", "lan"]},
                  {"endpoints": ["r1:eth1", "wan"]}],
    }


def ping(lab: str, node: str, address: str, count: int = 1) -> bool:
    return ns_exec(naming.node_namespace(lab, node), ["ping", "-c", str(count), "-W", "2", address]).returncode == 0


def ifindexes(lab: str) -> dict[str, str]:
    """Namespace -> `ip -o link` of it (names, indexes, flags, master): a fingerprint of a lab's links."""
    out = {}
    for ns in sorted(os.listdir("/run/netns")):
        if ns.startswith(naming.fabric_namespace(lab)):
            out[ns] = ns_exec(ns, ["ip", "-o", "link"]).stdout
    return out


def test_two_hosts_on_a_bridge_ping_each_other(deploy, lab_id):
    deploy(parse_document(two_hosts()), lab_id)
    assert ping(lab_id, "h1", "10.0.1.2")
    assert ping(lab_id, "h2", "10.0.1.1")


def test_lab_bridges_snoop_multicast_only_when_asked_and_veths_have_one_queue(deploy, lab_id):
    deploy(parse_document(two_hosts()), lab_id)
    fabric = naming.fabric_namespace(lab_id)
    bridge = ns_exec(fabric, ["ip", "-d", "link", "show", naming.bridge_ifname("sw")], check=True).stdout
    assert "mcast_snooping 0" in bridge
    for ns, ifname in [(naming.node_namespace(lab_id, "h1"), "eth0"), (fabric, naming.fabric_ifname("h1", "eth0"))]:
        link = ns_exec(ns, ["ip", "-d", "link", "show", ifname], check=True).stdout
        assert "numtxqueues 1 numrxqueues 1" in link, link
    assert ping(lab_id, "h1", "10.0.1.2")
    # asked for, snooping is on: the bridge is rebuilt with it and the hosts are wired to it again
    snooping = two_hosts()
    snooping["nodes"]["sw"]["multicast_snooping"] = True
    deploy(parse_document(snooping), lab_id)
    bridge = ns_exec(fabric, ["ip", "-d", "link", "show", naming.bridge_ifname("sw")], check=True).stdout
    assert "mcast_snooping 1" in bridge
    assert ping(lab_id, "h1", "10.0.1.2")


def test_down_removes_everything_and_is_idempotent(deploy, lab_id):
    deploy(parse_document(two_hosts()), lab_id)
    removed = engine.down(lab_id)
    assert any("namespace" in r for r in removed)
    assert not [n for n in os.listdir("/run/netns") if n.startswith(naming.fabric_namespace(lab_id))]
    assert not naming.run_dir(lab_id).exists()
    assert engine.down(lab_id) == []


def test_host_behind_router_reaches_isp_only_with_nat(deploy, lab_id, isp_namespace):
    deploy(parse_document(routed(isp_namespace["bridge"], nat=False)), lab_id)
    assert ping(lab_id, "r1", "203.0.113.1"), "the router itself reaches the ISP"
    assert not ping(lab_id, "h1", "203.0.113.1"), "without NAT the ISP has no route back"
    deploy(parse_document(routed(isp_namespace["bridge"], nat=True)), lab_id)
    assert ping(lab_id, "h1", "203.0.113.1"), "with masquerade the replies come home"


def test_host_with_dhcp_gets_a_lease_in_range(deploy, lab_id):
    doc = two_hosts("dhcp")
    doc["nodes"]["r1"] = {"kind": "router", "interfaces": {
        "eth0": {"address": "10.0.1.254/24", "dhcp_server": {"range": "10.0.1.100-10.0.1.150"}}}}
    doc["nodes"]["h2"]["interfaces"]["eth0"] = {"address": "dhcp", "mac": "52:54:00:12:34:56"}
    doc["links"].append({"endpoints": ["r1:eth0", "sw"]})
    deploy(parse_document(doc), lab_id)
    out = ns_exec(naming.node_namespace(lab_id, "h2"), ["ip", "-j", "-4", "addr", "show", "dev", "eth0"]).stdout
    addrs = [a["local"] for link in json.loads(out) for a in link["addr_info"]]
    assert len(addrs) == 1 and 100 <= int(addrs[0].split(".")[-1]) <= 150, addrs
    assert ping(lab_id, "h2", "10.0.1.254")
    st = engine.status(lab_id).as_dict()
    assert st["nodes"]["h2"]["state"] == "running", st
    assert f"{addrs[0]}/24" in st["nodes"]["h2"]["interfaces"]["eth0"]["addresses"]
    leases = st["nodes"]["r1"]["leases"]
    assert [(le["mac"], le["ip"]) for le in leases] == [("52:54:00:12:34:56", addrs[0])]


def test_same_document_under_two_labs_runs_side_by_side(deploy, lab_id):
    other = lab_id[:-1] + ("x" if lab_id[-1] != "x" else "y")
    topo = parse_document(two_hosts())
    deploy(topo, lab_id)
    deploy(topo, other)
    for lab in (lab_id, other):
        assert ping(lab, "h1", "10.0.1.2")
    # no cross-talk: h1 of `other` never learned the MAC of h2 of lab_id, and vice versa
    mac = {lab: json.loads(ns_exec(naming.node_namespace(lab, "h2"), ["ip", "-j", "link", "show", "eth0"]).stdout)[0]
           ["address"] for lab in (lab_id, other)}
    assert mac[lab_id] != mac[other]
    for lab, peer in ((lab_id, other), (other, lab_id)):
        neigh = ns_exec(naming.node_namespace(lab, "h1"), ["ip", "neigh", "show", "dev", "eth0"]).stdout
        assert mac[lab] in neigh and mac[peer] not in neigh, neigh


def test_up_twice_changes_nothing(deploy, lab_id):
    topo = parse_document(two_hosts())
    deploy(topo, lab_id)
    before = ifindexes(lab_id)
    result = deploy(topo, lab_id)
    assert result.steps == []
    assert ifindexes(lab_id) == before


def test_interrupted_up_is_finished_by_a_second_up_and_removed_by_down(deploy, lab_id):
    topo = parse_document(two_hosts())
    with pytest.raises(ApplyError, match="fault injected after step 5"):
        deploy(topo, lab_id, fault_after=5)
    assert not ping(lab_id, "h1", "10.0.1.2") if os.path.exists(f"/run/netns/{naming.node_namespace(lab_id, 'h1')}") else True
    deploy(topo, lab_id)
    assert ping(lab_id, "h1", "10.0.1.2")
    engine.down(lab_id)
    assert not [n for n in os.listdir("/run/netns") if n.startswith(naming.fabric_namespace(lab_id))]


def test_foreign_namespace_with_a_lab_name_survives_down(deploy, lab_id):
    foreign = naming.node_namespace(lab_id, "h9")
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    try:
        deploy(parse_document(two_hosts()), lab_id)
        assert engine.down(lab_id)
        assert not os.path.exists(f"/run/netns/{naming.node_namespace(lab_id, 'h1')}")
        assert os.path.exists(f"/run/netns/{foreign}")
    finally:
        subprocess.run(["ip", "netns", "del", foreign], check=True)


def test_clean_removes_labs_but_not_a_foreign_namespace(deploy, lab_id):
    others = [n for n in os.listdir("/run/netns") if naming.parse_namespace(n)]
    if others:
        pytest.skip(f"clean would destroy other Topolab labs on this shared host: {others[:3]}")
    foreign = naming.node_namespace(lab_id, "h9")
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    try:
        deploy(parse_document(two_hosts()), lab_id)
        removed = engine.clean()
        assert f"namespace {naming.node_namespace(lab_id, 'h1')}" in removed
        assert sorted(os.listdir("/run/netns")) == sorted(others + [foreign])
    finally:
        subprocess.run(["ip", "netns", "del", foreign], check=True)


def ping_rtt(lab: str, node: str, address: str, count: int = 3) -> float:
    out = ns_exec(naming.node_namespace(lab, node), ["ping", "-c", str(count), "-i", "0.2", "-W", "3", address]).stdout
    assert f"{count} received" in out, out
    return float(out.rsplit("=", 1)[1].split("/")[1])  # avg


@pytest.mark.parametrize("kind", ["bridged", "direct"])
def test_link_delay_shows_in_ping_rtt_both_ways_and_tcp_still_flows(deploy, lab_id, kind):
    """Delay is per direction (both ends), as netem on both ends would do; without sch_netem (this CI kernel) a
    userspace relay carries it, and TCP must survive it (offloads and checksums pass through the relay)."""
    if kind == "bridged":
        doc = two_hosts("delayed")
        doc["links"][0]["delay"] = "40ms"
    else:
        doc = {"version": 1, "name": "delayed-direct", "nodes": {
            "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}}},
            "h2": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.2/24"}}}},
            "links": [{"endpoints": ["h1:eth0", "h2:eth0"], "delay": "40ms"}]}
    topo = parse_document(doc)
    deploy(topo, lab_id)
    assert ping_rtt(lab_id, "h1", "10.0.1.2") >= 75
    server = subprocess.Popen(["nsenter", f"--net=/run/netns/{naming.node_namespace(lab_id, 'h2')}", "--",
                               sys.executable, "-c",
                               "import socket; s=socket.create_server(('10.0.1.2', 5001)); c,_=s.accept(); n=0\n"
                               "while (d := c.recv(65536)): n += len(d)\nprint(n)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        client = ns_exec(naming.node_namespace(lab_id, "h1"), [sys.executable, "-c",
                         "import socket,time\nfor _ in range(50):\n try: s=socket.create_connection(('10.0.1.2', 5001)); break\n"
                         " except OSError: time.sleep(0.1)\ns.sendall(b'x' * 2_000_000); s.close()"])
        assert client.returncode == 0, client.stderr
        assert server.communicate(timeout=30)[0].strip() == "2000000"
    finally:
        server.kill()
        server.wait()
    # redeploying changes nothing, and removing the delay puts the RTT back
    assert deploy(topo, lab_id).steps == []
    for link in doc["links"]:
        link.pop("delay", None)
    deploy(parse_document(doc), lab_id)
    assert ping_rtt(lab_id, "h1", "10.0.1.2") < 40


def test_link_rate_is_applied_on_the_node_end(deploy, lab_id):
    doc = two_hosts("shaped")
    doc["links"][0]["rate"] = "1mbit"
    deploy(parse_document(doc), lab_id)
    out = ns_exec(naming.node_namespace(lab_id, "h1"), ["tc", "qdisc", "show", "dev", "eth0"]).stdout
    assert "tbf" in out and "1Mbit" in out, out
    assert ping(lab_id, "h1", "10.0.1.2")
    assert deploy(parse_document(doc), lab_id).steps == []


def test_editing_a_running_lab_applies_the_difference(deploy, lab_id):
    doc = two_hosts()
    deploy(parse_document(doc), lab_id)
    h1_links = ns_exec(naming.node_namespace(lab_id, "h1"), ["ip", "-o", "link"]).stdout
    edited = copy.deepcopy(doc)
    edited["nodes"]["h3"] = {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.3/24"}}}
    edited["links"].append({"endpoints": ["h3:eth0", "sw"]})
    del edited["nodes"]["h2"]
    edited["links"] = [lk for lk in edited["links"] if "h2:eth0" not in lk["endpoints"]]
    edited["nodes"]["h1"]["interfaces"]["eth0"]["address"] = "10.0.1.11/24"
    result = deploy(parse_document(edited), lab_id)
    assert result.steps
    assert not os.path.exists(f"/run/netns/{naming.node_namespace(lab_id, 'h2')}")
    assert ping(lab_id, "h3", "10.0.1.11")
    assert not ping(lab_id, "h3", "10.0.1.1")
    # a node that did not change is untouched
    edited2 = copy.deepcopy(edited)
    edited2["nodes"]["h4"] = {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.4/24"}}}
    edited2["links"].append({"endpoints": ["h4:eth0", "sw"]})
    h1_links = ns_exec(naming.node_namespace(lab_id, "h1"), ["ip", "-o", "link"]).stdout
    deploy(parse_document(edited2), lab_id)
    assert ns_exec(naming.node_namespace(lab_id, "h1"), ["ip", "-o", "link"]).stdout == h1_links
    assert ping(lab_id, "h4", "10.0.1.11")


def test_status_reports_drift_when_something_is_removed_by_hand(deploy, lab_id):
    deploy(parse_document(two_hosts()), lab_id)
    ns_exec(naming.node_namespace(lab_id, "h2"), ["ip", "addr", "flush", "dev", "eth0"], check=True)
    st = engine.status(lab_id).as_dict()
    assert st["nodes"]["h2"]["state"] == "degraded"
    assert "nodes.h2.interfaces.eth0: address 10.0.1.2/24 missing" in st["drift"]
    assert st["nodes"]["h1"]["state"] == "running"
    deploy(parse_document(two_hosts()), lab_id)  # up repairs drift
    assert engine.status(lab_id).as_dict()["drift"] == []


def test_a_second_operation_on_a_busy_lab_is_refused(lab_id):
    from netops.errors import LabBusyError
    from netops.lock import lab_lock

    with lab_lock(lab_id):
        with pytest.raises(LabBusyError, match=lab_id):
            engine.down(lab_id)


def test_exec_refuses_an_untagged_namespace(lab_id):
    foreign = naming.node_namespace(lab_id, "h1")
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    try:
        with pytest.raises(ApplyError, match="not Topolab's"):
            engine.exec_argv(lab_id, "h1")
    finally:
        subprocess.run(["ip", "netns", "del", foreign], check=True)


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "netops", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_cli_validate_up_status_exec_down(lab_id, tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(two_hosts()))
    bad = tmp_path / "bad.yaml"
    doc = two_hosts()
    doc["nodes"]["h1"]["interfaces"]["eth0"]["address"] = "10.0.1.300/24"
    bad.write_text(yaml.safe_dump(doc))
    assert cli("validate", str(path)).returncode == 0
    res = cli("validate", str(bad))
    assert res.returncode != 0 and "nodes.h1.interfaces.eth0.address" in res.stderr
    try:
        res = cli("up", str(path), "--lab", lab_id)
        assert res.returncode == 0, res.stderr
        assert "create namespace" in res.stdout and "[1/" in res.stdout
        res = cli("status", "--lab", lab_id, "--json")
        st = json.loads(res.stdout)
        assert st["lab"] == lab_id and st["nodes"]["h1"]["interfaces"]["eth0"]["addresses"] == ["10.0.1.1/24"]
        assert cli("exec", "--lab", lab_id, "h1", "--", "ping", "-c1", "-W2", "10.0.1.2").returncode == 0
        assert cli("exec", "--lab", lab_id, "h1", "--", "sh", "-c", "exit 7").returncode == 7
    finally:
        res = cli("down", "--lab", lab_id)
    assert res.returncode == 0, res.stderr
    assert not os.path.exists(f"/run/netns/{naming.node_namespace(lab_id, 'h1')}")


def test_external_with_nat_gets_a_tagged_door_and_nft_table_that_down_removes(deploy, lab_id):
    doc = {"version": 1, "name": "ext", "nodes": {
        "r1": {"kind": "router", "interfaces": {"eth0": {"address": "198.51.100.2/24"}}},
        "wan": {"kind": "external", "nat": True, "address": "198.51.100.1/24"}},
        "links": [{"endpoints": ["r1:eth0", "wan"]}]}
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        forwarding_before = f.read()
    deploy(parse_document(doc), lab_id)
    door = naming.root_ifname(lab_id, "wan")
    out = subprocess.run(["ip", "-d", "addr", "show", "dev", door], capture_output=True, text=True).stdout
    # the document's door address lives in the lab's fabric; the host's end has a transit /30 of the pool (issue 12)
    assert "198.51.100.1/24" not in out and f"alias {naming.tag(lab_id, 'door', 'wan')}" in out, out
    assert re.search(r"inet 100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.\d+\.\d+/30", out), out
    fabric = subprocess.run(["nsenter", f"--net=/run/netns/{naming.fabric_namespace(lab_id)}", "ip", "-4", "-o",
                             "addr", "show"], capture_output=True, text=True).stdout
    assert "198.51.100.1/24" in fabric, fabric
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert naming.nft_table(lab_id) in tables
    assert open("/proc/sys/net/ipv4/ip_forward").read().strip() == "1"
    engine.down(lab_id)
    assert subprocess.run(["ip", "link", "show", "dev", door], capture_output=True).returncode != 0
    assert naming.nft_table(lab_id) not in subprocess.run(["nft", "list", "tables"], capture_output=True,
                                                          text=True).stdout
    assert open("/proc/sys/net/ipv4/ip_forward").read() == forwarding_before


def test_external_on_a_missing_host_bridge_is_refused_naming_the_element(deploy, lab_id):
    doc = {"version": 1, "name": "ext", "nodes": {
        "r1": {"kind": "router", "interfaces": {"eth0": {"address": "198.51.100.2/24"}}},
        "wan": {"kind": "external", "bridge": "tlnosuchbr0"}},
        "links": [{"endpoints": ["r1:eth0", "wan"]}]}
    with pytest.raises(ApplyError) as err:
        deploy(parse_document(doc), lab_id)
    assert err.value.element == "nodes.wan.bridge"


def test_removing_an_external_with_nat_from_a_running_lab_removes_its_chains(deploy, lab_id):
    doc = {"version": 1, "name": "ext", "nodes": {
        "r1": {"kind": "router", "interfaces": {"eth0": {"address": "198.51.100.2/24"}}},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.5.1/24"}}},
        "wan": {"kind": "external", "nat": True, "address": "198.51.100.1/24"}},
        "links": [{"endpoints": ["r1:eth0", "wan"]}, {"endpoints": ["h1:eth0", "r1:eth1"]}]}
    doc["nodes"]["r1"]["interfaces"]["eth1"] = {"address": "10.0.5.254/24"}
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        forwarding_before = f.read()
    table = naming.nft_table(lab_id)
    deploy(parse_document(doc), lab_id)
    listed = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True, text=True)
    assert listed.returncode == 0 and f'comment "{naming.tag(lab_id, "external", "wan")}"' in listed.stdout
    without = copy.deepcopy(doc)
    del without["nodes"]["wan"], without["nodes"]["r1"]["interfaces"]["eth0"]
    without["links"] = without["links"][1:]
    result = deploy(parse_document(without), lab_id)
    assert "remove host masquerade of wan" in result.steps
    assert table not in subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert naming.tag(lab_id, "external") not in subprocess.run(["nft", "list", "ruleset"], capture_output=True,
                                                                text=True).stdout
    assert open("/proc/sys/net/ipv4/ip_forward").read() == forwarding_before
    assert subprocess.run(["ip", "link", "show", "dev", naming.root_ifname(lab_id, "wan")],
                          capture_output=True).returncode != 0
    assert ping(lab_id, "h1", "10.0.5.254")
    assert deploy(parse_document(without), lab_id).steps == []
    engine.down(lab_id)
    assert open("/proc/sys/net/ipv4/ip_forward").read() == forwarding_before


def test_a_loss_chain_deleted_by_hand_is_restored_by_up(deploy, lab_id):
    doc = two_hosts("lossy")
    doc["links"][0]["loss"] = "30%"
    topo = parse_document(doc)
    deploy(topo, lab_id)
    h1 = naming.node_namespace(lab_id, "h1")

    def loss_chains() -> list[str]:
        out = ns_exec(h1, ["nft", "-j", "list", "table", "netdev", "topolab_lc"]).stdout
        items = json.loads(out or "{}").get("nftables", [])
        return [i["rule"]["chain"] for i in items if "rule" in i and "numgen" in json.dumps(i["rule"]["expr"])]

    chains = loss_chains()
    assert len(chains) == 1, chains
    ns_exec(h1, ["nft", "delete", "chain", "netdev", "topolab_lc", chains[0]], check=True)
    assert loss_chains() == []
    result = deploy(topo, lab_id)
    assert result.steps == ["shape h1:eth0"]
    assert loss_chains() == chains
    assert deploy(topo, lab_id).steps == []


# ---------------------------------------------------------------------------------------------- large labs
# Runs of at least engine.PARALLEL_MIN namespaces are created by several threads at once (netns.create_many), with
# their mount points made ahead; these tests cover that path: order of events, a name taken, an interruption.


def many_hosts(count: int) -> dict:
    nodes: dict = {"sw": {"kind": "bridge"}}
    for i in range(count):
        nodes[f"h{i}"] = {"kind": "host", "interfaces": {"eth0": {"address": f"10.0.2.{i + 1}/24"}}}
    links = [{"endpoints": [f"h{i}:eth0", "sw"]} for i in range(count)]
    return {"version": 1, "name": "many", "nodes": nodes, "links": links}


def stray_mount_points(lab: str) -> list[str]:
    """Entries of the lab in /run/netns that are not namespaces (a mount point made but never mounted on)."""
    prefix = naming.fabric_namespace(lab)
    return [n for n in os.listdir("/run/netns") if n.startswith(prefix) and not os.path.ismount(f"/run/netns/{n}")]


def test_a_large_lab_is_built_in_parallel_with_events_in_order(deploy, lab_id):
    count = engine.PARALLEL_MIN + 8
    events: list = []
    deploy(parse_document(many_hosts(count)), lab_id, on_event=events.append)
    steps = [e.step for e in events if e.type == "run.step"]
    assert steps == list(range(1, len(steps) + 1))
    states: dict[str, list[str]] = {}
    for e in events:
        if e.type == "node.state":
            states.setdefault(e.node, []).append(e.state)
    assert states == {n: ["starting", "running"] for n in ["sw", *[f"h{i}" for i in range(count)]]}
    assert ping(lab_id, "h0", f"10.0.2.{count}")
    assert ping(lab_id, f"h{count - 1}", "10.0.2.1")
    assert not stray_mount_points(lab_id)


def test_a_taken_name_in_a_large_lab_fails_that_node_and_a_second_up_finishes(deploy, lab_id):
    count = engine.PARALLEL_MIN + 4
    topo = parse_document(many_hosts(count))
    foreign = naming.node_namespace(lab_id, "h5")
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    events: list = []
    try:
        with pytest.raises(ApplyError) as failure:
            deploy(topo, lab_id, on_event=events.append)
        assert failure.value.element == "nodes.h5"
        assert "File exists" in str(failure.value)
        assert [(e.node, e.state) for e in events if e.state == "failed"] == [("h5", "failed")]
        assert os.path.ismount(f"/run/netns/{foreign}")  # the foreign namespace is left as it was
        assert ns_exec(foreign, ["ip", "-o", "link"]).stdout.count(": lo:") == 1
        assert stray_mount_points(lab_id) == []
    finally:
        subprocess.run(["ip", "netns", "del", foreign], check=True)
    deploy(topo, lab_id)
    assert ping(lab_id, "h5", f"10.0.2.{count}")
    assert not stray_mount_points(lab_id)


def test_a_large_up_interrupted_among_its_namespaces_is_finished_and_removed(deploy, lab_id):
    count = engine.PARALLEL_MIN + 8
    topo = parse_document(many_hosts(count))
    with pytest.raises(ApplyError, match="fault injected after step 20"):
        deploy(topo, lab_id, fault_after=20)
    made = [n for n in os.listdir("/run/netns") if n.startswith(naming.fabric_namespace(lab_id))]
    assert len(made) == 20 and not stray_mount_points(lab_id)  # 20 namespaces made, no file made for the rest
    deploy(topo, lab_id)
    assert ping(lab_id, "h0", f"10.0.2.{count}")
    engine.down(lab_id)
    assert not [n for n in os.listdir("/run/netns") if n.startswith(naming.fabric_namespace(lab_id))]
