"""Node and link actions on a running lab, and redeploys that leave untouched nodes alone (issue 18), against the
real kernel: namespaces, veths, dnsmasq, udhcpc, console shells and tcpdump (netops.actions, netops.plan)."""
from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from netops import actions, capture, cell, console, engine, naming, procs
from netops.errors import TopologyError
from netops.topology import parse_document

H1 = "10.0.1.1"
R1 = "10.0.1.254"


def lab_doc() -> dict:
    """r1 serves DHCP on the LAN (sw: h1 static, h2 by DHCP) and has a direct (ns-ns) link to h3."""
    return {
        "version": 1,
        "name": "actions",
        "nodes": {
            "r1": {"kind": "router", "description": "the gateway", "interfaces": {
                "eth0": {"address": f"{R1}/24", "dhcp_server": {"range": "10.0.1.100-10.0.1.150"}},
                "eth1": {"address": "10.0.2.1/24"}}},
            "sw": {"kind": "bridge"},
            "h1": {"kind": "host", "interfaces": {"eth0": {"address": f"{H1}/24"}},
                   "routes": [{"to": "10.0.2.0/24", "via": R1}]},
            "h2": {"kind": "host", "interfaces": {"eth0": {"address": "dhcp"}}},
            "h3": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.2.3/24"}},
                   "routes": [{"to": "10.0.1.0/24", "via": "10.0.2.1"}]},
        },
        "links": [{"endpoints": ["r1:eth0", "sw"]}, {"endpoints": ["h1:eth0", "sw"]},
                  {"endpoints": ["h2:eth0", "sw"]}, {"endpoints": ["r1:eth1", "h3:eth0"]}],
    }


def ns(lab: str, node: str) -> str:
    return naming.node_namespace(lab, node)


def run_in(lab: str, node: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns(lab, node)}", "--", *argv], capture_output=True,
                          text=True, timeout=30, check=False)


def ping(lab: str, node: str, address: str) -> bool:
    return run_in(lab, node, "ping", "-c", "1", "-W", "1", address).returncode == 0


def ping_soon(lab: str, node: str, address: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ping(lab, node, address):
            return True
    return False


def unreachable_soon(lab: str, node: str, address: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not ping(lab, node, address):
            return True
    return False


def flags(lab: str, node: str, iface: str) -> tuple[set[str], str]:
    """The flags `ip link` shows inside the node (UP, LOWER_UP, NO-CARRIER) and its operstate."""
    out = run_in(lab, node, "ip", "-o", "link", "show", "dev", iface).stdout
    match = re.search(r"<([^>]*)>.* state (\S+)", out)
    assert match, out
    return set(match.group(1).split(",")), match.group(2)


def ns_inode(lab: str, node: str) -> int:
    return os.stat(f"/run/netns/{ns(lab, node)}").st_ino


def roles(lab: str) -> dict[str, int]:
    return {p.role: p.pid for p in procs.find(lab)}


@pytest.fixture
def running(deploy, lab_id):
    deploy(parse_document(lab_doc()), lab_id)
    return lab_id


def test_stopping_a_router_removes_it_and_starting_it_brings_back_links_addresses_routes_and_dhcp(running):
    lab = running
    assert ping(lab, "h1", R1) and ping(lab, "h1", "10.0.2.3")
    before = roles(lab)
    assert "dnsmasq:r1:eth0" in before and "udhcpc:h2:eth0" in before
    events = []
    actions.stop_node(lab, "r1", on_event=events.append)
    assert not os.path.exists(f"/run/netns/{ns(lab, 'r1')}")
    assert "dnsmasq:r1:eth0" not in roles(lab)
    assert roles(lab)["udhcpc:h2:eth0"] == before["udhcpc:h2:eth0"]  # other nodes untouched
    # the kernel frees a deleted namespace's veths a moment later (its cleanup work runs after the unmount)
    assert unreachable_soon(lab, "h1", R1)
    st = engine.status(lab).as_dict()
    assert st["nodes"]["r1"]["state"] == "stopped" and st["drift"] == []
    assert st["links"]["links.3"]["state"] == "stopped"
    assert ("node.state", "stopped") in [(e.type, e.state) for e in events if e.node == "r1"]
    # a redeploy of the same document does not start it again: the user stopped it
    assert engine.up(parse_document(lab_doc()), lab).steps == []
    assert engine.status(lab).as_dict()["nodes"]["r1"]["state"] == "stopped"

    actions.start_node(lab, "r1")
    assert ping_soon(lab, "h1", R1), "r1 is back on the LAN"
    assert ping_soon(lab, "h1", "10.0.2.3"), "h3's end of the direct link and h1's route through r1 are back"
    assert "dnsmasq:r1:eth0" in roles(lab)
    st = engine.status(lab).as_dict()
    assert st["nodes"]["r1"]["state"] == "running" and st["drift"] == []
    assert (f"{R1}/24") in st["nodes"]["r1"]["interfaces"]["eth0"]["addresses"]


def test_restarting_a_host_rebuilds_it_and_a_stopped_node_can_not_be_a_bridge(running):
    lab = running
    # a mark in the old namespace (not its inode number: the kernel hands a freed one to the next namespace)
    subprocess.run(["nsenter", f"--net=/run/netns/{ns(lab, 'h2')}", "--", "ip", "link", "add", "tlmark", "type",
                    "veth", "peer", "name", "tlmark1"], check=True)
    actions.restart_node(lab, "h2")
    marks = subprocess.run(["nsenter", f"--net=/run/netns/{ns(lab, 'h2')}", "--", "ip", "-o", "link", "show"],
                           capture_output=True, text=True, check=True).stdout
    assert "tlmark" not in marks  # a new namespace: the host came back from the document
    h2 = engine.status(lab).as_dict()["nodes"]["h2"]
    assert h2["state"] == "running"
    leased = [a.split("/")[0] for a in h2["interfaces"]["eth0"]["addresses"] if a.startswith("10.0.1.")]
    assert leased and ping_soon(lab, "h1", leased[0]), "h2 leased again"
    with pytest.raises(TopologyError) as err:
        actions.stop_node(lab, "sw")
    assert err.value.problems[0].path == "node" and "sw" in err.value.problems[0].message
    with pytest.raises(TopologyError) as err:
        actions.stop_node(lab, "h9")
    assert err.value.problems[0].path == "node" and "'h9'" in err.value.problems[0].message


def test_a_link_set_down_loses_carrier_on_both_ends_and_stays_down_across_a_redeploy(running):
    lab = running
    actions.set_link(lab, ["sw", "h1:eth0"], up=False)
    up_flags, _ = flags(lab, "h1", "eth0")
    assert "LOWER_UP" not in up_flags and "NO-CARRIER" in up_flags and "UP" in up_flags  # a pulled cable
    assert unreachable_soon(lab, "h1", R1)
    st = engine.status(lab).as_dict()
    assert st["links"]["links.1"] == {"endpoints": ["h1:eth0", "sw"], "state": "down", "cable": "down"}
    assert st["drift"] == [] and st["nodes"]["h1"]["state"] == "running"
    engine.up(parse_document(lab_doc()), lab)
    assert "LOWER_UP" not in flags(lab, "h1", "eth0")[0]
    # the direct router-host link: both node ends lose their lower layer
    actions.set_link(lab, ["r1:eth1", "h3:eth0"], up=False)
    assert "LOWER_UP" not in flags(lab, "h3", "eth0")[0] and "LOWER_UP" not in flags(lab, "r1", "eth1")[0]
    assert engine.status(lab).as_dict()["drift"] == []
    # a node restarted behind a downed link comes back with it down
    actions.restart_node(lab, "h1")
    assert "LOWER_UP" not in flags(lab, "h1", "eth0")[0]
    actions.set_link(lab, ["h1:eth0", "sw"], up=True)
    actions.set_link(lab, ["r1:eth1", "h3:eth0"], up=True)
    assert "LOWER_UP" in flags(lab, "h1", "eth0")[0] and "LOWER_UP" in flags(lab, "h3", "eth0")[0]
    assert ping_soon(lab, "h1", R1) and ping_soon(lab, "h3", "10.0.2.1")
    assert engine.status(lab).as_dict()["drift"] == []
    with pytest.raises(TopologyError) as err:
        actions.set_link(lab, ["h1:eth0", "h2:eth0"], up=False)
    assert err.value.problems[0].path == "link" and "h1:eth0 - h2:eth0" in err.value.problems[0].message


def test_isolating_a_node_pulls_all_its_cables_and_reconnect_plugs_them_back(running):
    lab = running
    actions.isolate(lab, "r1")
    assert "LOWER_UP" not in flags(lab, "r1", "eth0")[0] and "LOWER_UP" not in flags(lab, "r1", "eth1")[0]
    assert unreachable_soon(lab, "h1", R1)
    assert {v["state"] for k, v in engine.status(lab).as_dict()["links"].items() if k in ("links.0", "links.3")} \
        == {"down"}
    actions.reconnect(lab, "r1")
    assert ping_soon(lab, "h1", R1) and ping_soon(lab, "h3", "10.0.2.1")


def tbf_rate(lab: str, node: str, iface: str) -> str | None:
    out = run_in(lab, node, "tc", "qdisc", "show", "dev", iface).stdout
    match = re.search(r"tbf .*rate (\S+)", out)
    return match.group(1) if match else None


def test_conditions_change_live_without_rebuilding_either_end(running):
    lab = running
    inode, shell = ns_inode(lab, "h1"), console.open_shell(lab, "h1", "lc1")
    try:
        _, document = actions.set_conditions(lab, ["h1:eth0", "sw"], {"rate": "10mbit", "loss": "20%"})
        assert tbf_rate(lab, "h1", "eth0") == "10Mbit"
        assert document["links"][1]["rate"] == "10mbit"
        actions.set_conditions(lab, ["h1:eth0", "sw"], {"rate": "2mbit"})
        assert tbf_rate(lab, "h1", "eth0") == "2Mbit"
        nft = run_in(lab, "h1", "nft", "list", "ruleset").stdout
        assert "numgen" not in nft  # the loss left with the change
        assert ns_inode(lab, "h1") == inode and procs.inspect(shell.pid) is not None
        with pytest.raises(TopologyError) as err:
            actions.set_conditions(lab, ["h1:eth0", "sw"], {"rate": "fast", "loss": "200%", "colour": "red"})
        assert [p.path for p in err.value.problems] == ["conditions.colour"]
        with pytest.raises(TopologyError) as err:
            actions.set_conditions(lab, ["h1:eth0", "sw"], {"rate": "fast", "loss": "200%"})
        assert sorted(p.path for p in err.value.problems) == ["conditions.loss", "conditions.rate"]
        actions.set_conditions(lab, ["h1:eth0", "sw"], {})
        assert tbf_rate(lab, "h1", "eth0") is None
    finally:
        shell.close()


# ------------------------------------------------------------------------------------------------ redeploys


@pytest.fixture
def capture_dir():
    path = Path(tempfile.mkdtemp(prefix="topolab-capture-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path)


def icmp_count(path: Path) -> int:
    return sum(1 for p in capture.read_pcap(path) if p.protocol == "ICMP")


def wait_for(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_redeploy_of_another_node_or_a_description_keeps_shells_captures_and_daemons(running, capture_dir):
    """Issue 18: the console said "the shell exited" and the capture ended after a description-only redeploy."""
    lab = running
    shell = console.open_shell(lab, "h1", "s13")  # a session id that looks like a node name, as the web app's do
    wait_for(lambda: "console:s13" in roles(lab), "the shell in its cgroup")
    point = capture.capture_point(capture.deployed_topology(lab), lab, node="h1", interface="eth0")
    path = capture_dir / "c7.pcap"
    path.touch(mode=0o640)
    os.chown(path, cell.get(lab).uid, -1)
    log = cell.cell_dir(lab) / "c7.log"
    tcpdump = capture.start(lab, 7, point, path, "icmp", log_path=log)
    try:
        wait_for(lambda: log.exists() and b"listening on" in log.read_bytes(), "tcpdump to listen")
        assert ping(lab, "h1", R1)
        wait_for(lambda: icmp_count(path) >= 2, "the first ping in the capture")
        before = roles(lab)

        described = lab_doc()
        described["nodes"]["r1"]["description"] = "the gateway, described again"
        described["nodes"]["h1"]["ui"] = {"x": 10, "y": 20}
        assert engine.up(parse_document(described), lab).steps == []  # a no-op

        other = copy.deepcopy(described)
        other["nodes"]["h2"]["interfaces"]["eth0"]["mtu"] = 1400  # another node changes
        other["nodes"]["h4"] = {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.4/24"}}}
        other["links"].append({"endpoints": ["h4:eth0", "sw"]})
        result = engine.up(parse_document(other), lab)
        assert result.steps
        after = roles(lab)
        for role in ("console:s13", "capture:7", "dnsmasq:r1:eth0"):
            assert after[role] == before[role], f"{role} was restarted"
        assert after["udhcpc:h2:eth0"] != before["udhcpc:h2:eth0"]  # h2 changed: its client was restarted
        assert procs.inspect(shell.pid) is not None  # the shell's launcher; the shell itself is console:s13 above
        assert ping(lab, "h1", R1) and ping_soon(lab, "h4", H1)
        wait_for(lambda: icmp_count(path) >= 4, "pings after the redeploys in the same capture")
        assert procs.inspect(tcpdump) is not None
    finally:
        capture.stop(lab, 7)
        shell.close()


def test_an_address_route_or_dhcp_range_change_keeps_the_node_and_its_shell(running):
    """Issue 18: a change to one interface restarts only what depends on it (here: r1's DHCP server)."""
    lab = running
    inode, shell = ns_inode(lab, "h1"), console.open_shell(lab, "h1", "s20")
    try:
        wait_for(lambda: "console:s20" in roles(lab), "the shell in its cgroup")
        before = roles(lab)
        edited = lab_doc()
        edited["nodes"]["h1"]["interfaces"]["eth0"]["address"] = "10.0.1.11/24"
        edited["nodes"]["h1"]["routes"] = [{"to": "10.0.3.0/24", "via": R1}]
        edited["nodes"]["r1"]["interfaces"]["eth0"]["dhcp_server"]["range"] = "10.0.1.160-10.0.1.170"
        result = engine.up(parse_document(edited), lab)
        assert ns_inode(lab, "h1") == inode and ns_inode(lab, "r1")  # nothing rebuilt
        after = roles(lab)
        assert after["console:s20"] == before["console:s20"] and after["udhcpc:h2:eth0"] == before["udhcpc:h2:eth0"]
        assert after["dnsmasq:r1:eth0"] != before["dnsmasq:r1:eth0"]  # serves the new range
        addresses = run_in(lab, "h1", "ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
        assert "10.0.1.11/24" in addresses and "10.0.1.1/24" not in addresses
        routes = run_in(lab, "h1", "ip", "route").stdout
        assert "10.0.3.0/24 via 10.0.1.254" in routes and "10.0.2.0/24" not in routes
        assert ping(lab, "h1", R1)
        assert engine.up(parse_document(edited), lab).steps == [], result.steps
        assert engine.status(lab).as_dict()["drift"] == []
    finally:
        shell.close()


def test_the_cli_stops_starts_and_pulls_a_cable(running):
    lab = running

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "netops", *args], capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parents[2])

    done = cli("node", "stop", "--lab", lab, "h3")
    assert done.returncode == 0, done.stderr
    assert engine.status(lab).as_dict()["nodes"]["h3"]["state"] == "stopped"
    assert cli("node", "start", "--lab", lab, "h3").returncode == 0
    assert ping_soon(lab, "r1", "10.0.2.3")
    done = cli("link", "down", "--lab", lab, "h2:eth0", "sw")
    assert done.returncode == 0 and "down done" in done.stdout, done.stderr
    assert "LOWER_UP" not in flags(lab, "h2", "eth0")[0]
    refused = cli("node", "stop", "--lab", lab, "nope")
    assert refused.returncode == 2 and "node: 'nope' is no node of the running lab" in refused.stderr
    refused = cli("link", "set", "--lab", lab, "h2:eth0", "sw", "--loss", "300%")
    assert refused.returncode == 2 and "conditions.loss" in refused.stderr
