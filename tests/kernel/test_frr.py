"""FRR in router namespaces against the real kernel: OSPF converges and reroutes, eBGP between two ASes, two labs
with the same names side by side, reload without restart, drift of a dead daemon, vtysh of one router, a hostile
`!` line that stays text, and destroy leaving nothing of FRR behind."""
from __future__ import annotations

import copy
import os
import subprocess
import time
from pathlib import Path

from netops import console, engine, frr, naming, procs
from netops.topology import parse_document

CONVERGE_S = 15.0
HELLO, DEAD = 1, 4


def ns_exec(ns: str, argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "--", *argv], capture_output=True, text=True,
                          timeout=60)


def ping(lab: str, node: str, address: str) -> bool:
    return ns_exec(naming.node_namespace(lab, node), ["ping", "-c", "1", "-W", "1", address]).returncode == 0


def wait_for(predicate, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def triangle() -> dict:
    """r1, r2, r3 in a triangle of point-to-point links, a host behind each; OSPF area 0 with short timers."""
    addresses = {"r1": ("10.0.12.1/30", "10.0.13.1/30"), "r2": ("10.0.12.2/30", "10.0.23.1/30"),
                 "r3": ("10.0.13.2/30", "10.0.23.2/30")}
    nodes: dict = {}
    links = []
    for i, (name, (a, b)) in enumerate(addresses.items(), 1):
        nodes[name] = {
            "kind": "router",
            "interfaces": {"eth0": {"address": a}, "eth1": {"address": b}, "eth2": {"address": f"10.1.{i}.254/24"}},
            "routing": {"loopback": f"10.255.0.{i}/32",
                        "ospf": {"areas": {0: {"interfaces": ["eth0", "eth1"], "passive": ["eth2", "lo"]}},
                                 "hello": HELLO, "dead": DEAD}}}
        nodes[f"h{i}"] = {"kind": "host", "interfaces": {"eth0": {"address": f"10.1.{i}.1/24"}},
                          "routes": [{"to": "default", "via": f"10.1.{i}.254"}]}
        links.append({"endpoints": [f"{name}:eth2", f"h{i}:eth0"]})
    links += [{"endpoints": ["r1:eth0", "r2:eth0"]}, {"endpoints": ["r1:eth1", "r3:eth0"]},
              {"endpoints": ["r2:eth1", "r3:eth1"]}]
    return {"version": 1, "name": "ospf-triangle", "nodes": nodes, "links": links}


def two_ases() -> dict:
    """AS 65001: r1 with h1 behind it. AS 65002: border r2 (eBGP to r1, OSPF to r3) and r3 with h3 behind it."""
    return {
        "version": 1, "name": "two-ases",
        "nodes": {
            "r1": {"kind": "router",
                   "interfaces": {"eth0": {"address": "198.51.100.1/30"}, "eth1": {"address": "10.1.1.254/24"}},
                   "routing": {"bgp": {"asn": 65001, "router_id": "10.255.1.1",
                                       "neighbors": [{"address": "198.51.100.2", "asn": 65002}],
                                       "networks": ["10.1.1.0/24"]}}},
            "r2": {"kind": "router",
                   "interfaces": {"eth0": {"address": "198.51.100.2/30"}, "eth1": {"address": "10.2.23.1/30"}},
                   "routing": {"loopback": "10.255.2.2/32",
                               "ospf": {"areas": {0: {"interfaces": ["eth1"], "passive": ["lo"]}},
                                        "hello": HELLO, "dead": DEAD, "redistribute": ["bgp"]},
                               "bgp": {"asn": 65002, "neighbors": [{"address": "198.51.100.1", "asn": 65001}],
                                       "redistribute": ["ospf", "connected"]}}},
            "r3": {"kind": "router",
                   "interfaces": {"eth0": {"address": "10.2.23.2/30"}, "eth1": {"address": "10.2.3.254/24"}},
                   "routing": {"loopback": "10.255.2.3/32",
                               "ospf": {"areas": {0: {"interfaces": ["eth0"], "passive": ["eth1", "lo"]}},
                                        "hello": HELLO, "dead": DEAD}}},
            "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.1.1.1/24"}},
                   "routes": [{"to": "default", "via": "10.1.1.254"}]},
            "h3": {"kind": "host", "interfaces": {"eth0": {"address": "10.2.3.1/24"}},
                   "routes": [{"to": "default", "via": "10.2.3.254"}]},
        },
        "links": [{"endpoints": ["r1:eth0", "r2:eth0"]}, {"endpoints": ["r2:eth1", "r3:eth0"]},
                  {"endpoints": ["r1:eth1", "h1:eth0"]}, {"endpoints": ["r3:eth1", "h3:eth0"]}],
    }


def ospf_full(lab: str, expected: dict[str, int]):
    """The status when every router in `expected` has that many OSPF neighbors, all Full; else None."""
    st = engine.status(lab)
    for name, count in expected.items():
        neighbors = (st.nodes[name].routing or {}).get("ospf") or []
        if len(neighbors) != count or not all(n["state"].startswith("Full") for n in neighbors):
            return None
    return st


def bgp_established(lab: str, node: str):
    st = engine.status(lab)
    sessions = (st.nodes[node].routing or {}).get("bgp") or []
    return st if sessions and all(s["state"] == "Established" for s in sessions) else None


def route_via(lab: str, node: str, address: str) -> str:
    return ns_exec(naming.node_namespace(lab, node), ["ip", "route", "get", address]).stdout


def frr_pids(lab: str) -> dict[str, int]:
    return {p.role: p.pid for p in procs.find(lab) if frr.is_frr_role(p.role)}


def assert_no_frr_left(lab: str) -> None:
    assert not frr_pids(lab)
    assert not naming.run_dir(lab).exists()
    assert not [e for e in os.listdir("/var/run/frr") if e.startswith(naming.fabric_namespace(lab) + "-")]


# ---------------------------------------------------------------------------------------------------------- tests


def test_ospf_triangle_converges_pings_reroutes_around_a_down_link_and_comes_back(deploy, lab_id):
    started = time.monotonic()
    deploy(parse_document(triangle()), lab_id)
    st = wait_for(lambda: ospf_full(lab_id, {"r1": 2, "r2": 2, "r3": 2}), CONVERGE_S)
    assert st is not None, engine.status(lab_id).as_dict()
    converged = time.monotonic() - started
    assert converged <= CONVERGE_S
    r1 = st.nodes["r1"].routing
    assert r1["daemons"] == {"zebra": True, "ospfd": True}
    assert {n["id"] for n in r1["ospf"]} == {"10.255.0.2", "10.255.0.3"}
    # every host reaches the other two (and the routers' loopbacks are routed)
    pairs = [(i, j) for i in (1, 2, 3) for j in (1, 2, 3) if i != j]
    assert wait_for(lambda: all(ping(lab_id, f"h{i}", f"10.1.{j}.1") for i, j in pairs), 10), \
        {n: ns_exec(naming.node_namespace(lab_id, n), ["ip", "route"]).stdout for n in ("r1", "r2", "r3", "h1")}
    # r1's RIB: 4 connected prefixes (each also an OSPF route) and 5 learnt over OSPF, shortest paths direct
    assert wait_for(lambda: "via 10.0.12.2 dev eth0" in route_via(lab_id, "r1", "10.1.2.1"), 5)
    assert engine.status(lab_id).nodes["r1"].routing["routes"] == 13
    assert ping(lab_id, "h1", "10.255.0.3")

    # r1-r2 goes down inside r1: traffic from h1 to h2 goes through r3 within the dead interval
    down_at = time.monotonic()
    ns_exec(naming.node_namespace(lab_id, "r1"), ["ip", "link", "set", "eth0", "down"])
    assert wait_for(lambda: "via 10.0.13.2 dev eth1" in route_via(lab_id, "r1", "10.1.2.1"), DEAD, 0.05)
    rerouted = time.monotonic() - down_at
    assert rerouted <= DEAD
    assert wait_for(lambda: ping(lab_id, "h1", "10.1.2.1"), 3)
    trace = ns_exec(naming.node_namespace(lab_id, "h1"), ["ping", "-c", "1", "-R", "10.1.2.1"]).stdout
    assert "10.0.13.2" in trace or "10.0.23." in trace  # recorded route passes r3
    # the interface set down inside r1, and the r1-r2 link it ends (status reports a link's state since node and
    # link actions: the canvas draws it dashed)
    assert engine.status(lab_id).drift == ["links.3: link is down, expected up",
                                           "nodes.r1.interfaces.eth0: interface down"]

    # and back
    ns_exec(naming.node_namespace(lab_id, "r1"), ["ip", "link", "set", "eth0", "up"])
    assert wait_for(lambda: "via 10.0.12.2 dev eth0" in route_via(lab_id, "r1", "10.1.2.1"), 10, 0.1)
    assert wait_for(lambda: ospf_full(lab_id, {"r1": 2, "r2": 2, "r3": 2}), 10)
    print(f"converged {converged:.2f} s after deploy began, rerouted {rerouted:.2f} s after the link went down")


def test_changed_routing_is_reloaded_not_restarted_and_a_dead_daemon_is_drift_until_up(deploy, lab_id):
    doc = triangle()
    deploy(parse_document(doc), lab_id)
    assert wait_for(lambda: ospf_full(lab_id, {"r1": 2, "r2": 2, "r3": 2}), CONVERGE_S)
    before = frr_pids(lab_id)
    assert deploy(parse_document(doc), lab_id).steps == []  # idempotent

    # a cost of 100 on r1-r2 sends r1's traffic for h2 through r3; FRR is reloaded, nothing restarted
    changed = copy.deepcopy(doc)
    changed["nodes"]["r1"]["routing"]["ospf"]["cost"] = {"eth0": 100}
    changed["nodes"]["r2"]["routing"]["ospf"]["cost"] = {"eth0": 100}
    result = deploy(parse_document(changed), lab_id)
    assert result.steps == ["reload FRR", "reload FRR"]
    assert frr_pids(lab_id) == before
    assert wait_for(lambda: "via 10.0.13.2 dev eth1" in route_via(lab_id, "r1", "10.1.2.1"), 10, 0.1)
    assert "ip ospf cost 100" in frr_running_config(lab_id, "r1")

    # adding BGP to r3 starts bgpd beside the running zebra and ospfd
    bgp = copy.deepcopy(changed)
    bgp["nodes"]["r3"]["routing"]["bgp"] = {"asn": 65000, "networks": ["10.1.3.0/24"]}
    assert deploy(parse_document(bgp), lab_id).steps == ["reload FRR"]
    after = frr_pids(lab_id)
    assert after["frr:r3:zebra"] == before["frr:r3:zebra"] and "frr:r3:bgpd" in after
    assert "router bgp 65000" in frr_running_config(lab_id, "r3")

    # a daemon that died is drift, and up brings it back
    procs.stop(procs.find(lab_id, "frr:r2:ospfd")[0])
    st = engine.status(lab_id)
    assert "nodes.r2.routing: FRR daemon ospfd is not running" in st.drift
    assert st.nodes["r2"].state == "degraded" and st.nodes["r2"].routing["daemons"]["ospfd"] is False
    assert deploy(parse_document(bgp), lab_id).steps == ["reload FRR"]
    assert wait_for(lambda: ospf_full(lab_id, {"r1": 2, "r2": 2, "r3": 2}), CONVERGE_S)
    assert engine.status(lab_id).drift == []

    # routing: removed from r3 stops its FRR
    plain = copy.deepcopy(bgp)
    del plain["nodes"]["r3"]["routing"]
    assert deploy(parse_document(plain), lab_id).steps == ["stop FRR"]
    assert not [r for r in frr_pids(lab_id) if r.startswith("frr:r3:")]
    engine.down(lab_id)
    assert_no_frr_left(lab_id)


def frr_running_config(lab: str, node: str) -> str:
    return frr.show(lab, node, "show running-config")


def test_two_ases_exchange_prefixes_over_ebgp_and_status_shows_established(deploy, lab_id):
    started = time.monotonic()
    deploy(parse_document(two_ases()), lab_id)
    st = wait_for(lambda: bgp_established(lab_id, "r1"), CONVERGE_S)
    assert st is not None, engine.status(lab_id).as_dict()
    assert st.nodes["r1"].routing["bgp"] == [
        {"peer": "198.51.100.2", "af": "ipv4Unicast", "asn": 65002, "state": "Established",
         "prefixes": st.nodes["r1"].routing["bgp"][0]["prefixes"], "interface": "eth0"}]
    assert st.nodes["r1"].routing["daemons"] == {"zebra": True, "bgpd": True}
    # AS 65002's inside (h3's LAN, learnt by r2 over OSPF) reaches AS 65001, and AS 65001's LAN reaches r3 over
    # OSPF (r2 redistributes BGP)
    assert wait_for(lambda: "via 198.51.100.2" in route_via(lab_id, "r1", "10.2.3.1"), CONVERGE_S)
    assert wait_for(lambda: "via 10.2.23.1" in route_via(lab_id, "r3", "10.1.1.1"), CONVERGE_S)
    assert wait_for(lambda: ping(lab_id, "h1", "10.2.3.1"), 5)
    print(f"eBGP established and prefixes across {time.monotonic() - started:.2f} s after deploy began")


def test_the_same_two_as_lab_twice_side_by_side_converges_independently(deploy, lab_id):
    other = (lab_id + "b")[:8] if len(lab_id) < 8 else lab_id[:7] + "b"
    doc = two_ases()
    deploy(parse_document(doc), lab_id)
    deploy(parse_document(doc), other)
    for lab in (lab_id, other):
        assert wait_for(lambda lab=lab: bgp_established(lab, "r1"), CONVERGE_S), lab
        assert wait_for(lambda lab=lab: ping(lab, "h1", "10.2.3.1"), CONVERGE_S), lab
    # every FRR daemon runs in its own lab's router namespace, with its own socket directory
    for lab in (lab_id, other):
        for proc in procs.find(lab):
            if frr.is_frr_role(proc.role):
                node = proc.role.split(":")[1]
                ns_inode = os.stat(f"/run/netns/{naming.node_namespace(lab, node)}").st_ino
                assert os.stat(f"/proc/{proc.pid}/ns/net").st_ino == ns_inode
                assert any(frr.pathspace(lab, node) in a for a in proc.argv)
    assert frr.sock_dir(lab_id, "r1") != frr.sock_dir(other, "r1")
    # neither sees the other: the second lab's eBGP peer goes away, the first keeps its session and routes
    engine.down(other)
    assert_no_frr_left(other)
    st = engine.status(lab_id)
    assert [s["state"] for s in st.nodes["r1"].routing["bgp"]] == ["Established"]
    assert ping(lab_id, "h1", "10.2.3.1")


def test_vtysh_of_a_router_answers_show_ip_route_for_that_router_only(deploy, lab_id):
    deploy(parse_document(triangle()), lab_id)
    assert wait_for(lambda: ospf_full(lab_id, {"r1": 2, "r2": 2, "r3": 2}), CONVERGE_S)
    # routes follow the adjacencies by a moment: wait until r1's table has the others' loopbacks
    assert wait_for(lambda: all("via" in route_via(lab_id, "r1", f"10.255.0.{i}") for i in (2, 3)), 10)
    vty = console.open_shell(lab_id, "r1", "vty1", kind="vtysh")
    try:
        assert vty.kind == "vtysh"
        _read_until(vty, b"r1# ", 10)
        vty.write(b"show ip route\r")
        text = _read_until(vty, b"r1# ", 10).decode(errors="replace")
        assert "C>* 10.255.0.1/32 is directly connected, lo" in text  # r1's own loopback
        assert "O>* 10.255.0.2/32" in text and "O>* 10.255.0.3/32" in text  # the others', learnt over OSPF
        assert "C>* 10.1.2.0/24" not in text  # r2's connected LAN is not r1's
        # the vtysh is no root: it runs as the console user and may not write the configuration files
        vty.write(b"write memory\r")
        text = _read_until(vty, b"r1# ", 5).decode(errors="replace")
        assert "Configuration saved" not in text or "failed" in text.lower() or "Error" in text
        assert (frr.conf_dir(lab_id, "r1") / "frr.conf").read_text() == frr.render_config(
            parse_document(triangle()), "r1")
    finally:
        vty.close()
    assert not procs.find(lab_id, console.role("vty1"))


def _read_until(shell, marker: bytes, timeout: float) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while marker not in buf and time.monotonic() < deadline:
        chunk = shell.read()
        if chunk is None:
            break
        buf += chunk
        if not chunk:
            time.sleep(0.05)
    assert marker in buf, buf.decode(errors="replace")
    return buf


def test_a_bang_line_with_shell_metacharacters_stays_frr_text_and_destroy_leaves_nothing(deploy, lab_id, tmp_path):
    marker = tmp_path / "pwned"
    doc = triangle()
    doc["nodes"]["r1"]["routing"]["frr_config"] = (
        f"! $(touch {marker}); `touch {marker}` | touch {marker} && touch {marker}\n"
        "ip prefix-list LAB seq 5 permit 10.0.0.0/8 le 32\n"
        "ip route 192.0.2.0/24 Null0\n")  # a static route of FRR's: staticd runs for it
    deploy(parse_document(doc), lab_id)
    assert wait_for(lambda: ospf_full(lab_id, {"r1": 2, "r2": 2, "r3": 2}), CONVERGE_S)
    assert "ip prefix-list LAB seq 5 permit 10.0.0.0/8 le 32" in frr_running_config(lab_id, "r1")
    assert engine.status(lab_id).nodes["r1"].routing["daemons"] == {"zebra": True, "ospfd": True, "staticd": True}
    assert wait_for(lambda: "blackhole 192.0.2.0/24" in ns_exec(naming.node_namespace(lab_id, "r1"),
                                                                  ["ip", "route", "show", "192.0.2.0/24"]).stdout, 5)
    assert not marker.exists()
    sockets = frr.sock_dir(lab_id, "r1")
    assert (sockets / "zebra.vty").exists() and sockets.is_relative_to(naming.run_dir(lab_id))
    removed = engine.down(lab_id)
    assert any("frr:r1:zebra" in r for r in removed)
    assert_no_frr_left(lab_id)
    assert not sockets.exists() and not frr.conf_dir(lab_id, "r1").exists()
    assert not Path("/var/run/frr", frr.pathspace(lab_id, "r1")).exists()
