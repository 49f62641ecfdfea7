"""Kernel tests of the services the engine calls: dnsmasq + udhcpc, tagged processes, router and external NAT,
link conditions. Needs root. Namespaces are made with plain `ip` in fixtures (setup is not under test) and removed.

tests/kernel/conftest.py holds the machine-wide lock and checks that nothing is left behind after each test.
"""
from __future__ import annotations

import ipaddress as ia
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from support import CellLab

from netops import dhcpclient, dnsmasq, linkcond, naming, nft, procs
from netops.errors import ApplyError
from netops.model import DhcpServer, Endpoint, Interface, Link, LinkConditions

pytestmark = [pytest.mark.kernel, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

LAB = "tsvc"


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def lab():
    """Namespaces made in the cell of lab LAB through `lab.ns()`; every process, namespace and cgroup of it, and
    its uid range, removed after."""
    class Lab(CellLab):
        def veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
            ip("-n", ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", ns_b)
            ip("-n", ns_a, "link", "set", if_a, "up")
            ip("-n", ns_b, "link", "set", if_b, "up")

    lab = Lab(LAB)
    try:
        yield lab
    finally:
        lab.remove()
    assert procs.find(LAB) == []


def ping(namespace: str, target: str, count: int = 3, interval: str = "0.2", size: int = 56,
         wait: str = "1") -> tuple[float, float | None]:
    """(loss %, average rtt ms or None) of a ping from inside `namespace`."""
    out = procs.run(["ping", "-n", "-q", "-c", str(count), "-i", interval, "-W", wait, "-s", str(size), target],
                    namespace=namespace, check=False, timeout=120).stdout.decode()
    loss = float(re.search(r"([\d.]+)% packet loss", out).group(1))
    rtt = re.search(r"= [\d.]+/([\d.]+)/", out)
    return loss, float(rtt.group(1)) if rtt else None


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------------------------------------- DHCP


def test_dnsmasq_gives_a_udhcpc_client_a_lease_in_range(lab):
    r, c = lab.ns("r"), lab.ns("c")
    lab.veth(r, "eth0", c, "eth0")
    ip("-n", r, "addr", "add", "10.0.1.254/24", "dev", "eth0")
    iface = Interface("eth0", (ia.ip_interface("10.0.1.254/24"),),
                      dhcp_server=DhcpServer(ia.IPv4Address("10.0.1.100"), ia.IPv4Address("10.0.1.150")))

    server = dnsmasq.start(LAB, "r", iface, r)
    assert dnsmasq.start(LAB, "r", iface, r) == server  # idempotent: same config, same process
    assert os.stat(f"/proc/{server}/ns/net").st_ino == os.stat(f"/run/netns/{r}").st_ino
    client = dhcpclient.start(LAB, "c", "eth0", c, timeout=20)

    addr = json.loads(ip("-n", c, "-j", "-4", "addr", "show", "dev", "eth0"))[0]["addr_info"][0]
    leased = ia.IPv4Address(addr["local"])
    assert ia.IPv4Address("10.0.1.100") <= leased <= ia.IPv4Address("10.0.1.150") and addr["prefixlen"] == 24
    assert "default via 10.0.1.254 dev eth0" in ip("-n", c, "route")
    mac = json.loads(ip("-n", c, "-j", "link", "show", "dev", "eth0"))[0]["address"]
    assert [(ls.ip, ls.mac, ls.hostname) for ls in dnsmasq.leases(LAB, "r", "eth0")] == [(leased, mac, "c")]
    assert ping(c, "10.0.1.254")[0] == 0

    changed = Interface(iface.name, iface.addresses, dhcp_server=DhcpServer(
        ia.IPv4Address("10.0.1.100"), ia.IPv4Address("10.0.1.150"), dns=(ia.IPv4Address("192.0.2.53"),)))
    restarted = dnsmasq.start(LAB, "r", changed, r)  # config changed: restarted
    assert restarted != server and not _alive(server) and _alive(restarted)

    dhcpclient.stop(LAB, "c", "eth0")
    dnsmasq.stop(LAB, "r", "eth0")
    assert not _alive(client) and not _alive(restarted)
    # what is left is the nodes' inits (pid 1 of each node's PID namespace), which the daemons joined
    assert sorted(p.role for p in procs.find(LAB)) == [procs.init_role("c"), procs.init_role("r")]
    assert procs.ns_pid(server) is None and procs.ns_pid(procs.find(LAB, procs.init_role("r"))[0].pid) == 1
    assert not any(link["addr_info"] for link in json.loads(ip("-n", c, "-j", "-4", "addr", "show", "dev", "eth0")))


def test_dhcp_client_without_server_times_out_naming_the_interface(lab):
    r, c = lab.ns("r"), lab.ns("c")
    lab.veth(r, "eth0", c, "eth0")
    with pytest.raises(ApplyError) as err:
        dhcpclient.start(LAB, "c", "eth0", c, timeout=2)
    assert err.value.element == "nodes.c.interfaces.eth0"


def test_spawned_daemon_runs_in_the_namespace_and_untagged_processes_are_safe(lab):
    r = lab.ns("r")
    pid = procs.spawn(["sleep", "60"], lab=LAB, role="test:sleep", namespace=r)
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{r}").st_ino
    victim = subprocess.Popen(["ip", "netns", "exec", r, "sleep", "60"])
    try:
        time.sleep(0.2)
        assert victim.pid not in [p.pid for p in procs.find()]
        start = int(Path(f"/proc/{victim.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        with pytest.raises(ApplyError, match="refusing"):
            procs.stop(procs.TaggedProcess(victim.pid, LAB, "test:sleep", ("sleep", "60"), start))
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()
    procs.stop(procs.find(LAB, "test:sleep")[0])
    assert not _alive(pid)


# ---------------------------------------------------------------------------------------------- NAT


def test_router_nat_lets_a_client_reach_an_isp_without_a_route_back(lab):
    c, r, isp = lab.ns("c"), lab.ns("r"), lab.ns("isp")
    lab.veth(c, "eth0", r, "eth0")
    lab.veth(r, "eth1", isp, "eth0")
    ip("-n", c, "addr", "add", "10.0.1.1/24", "dev", "eth0")
    ip("-n", c, "route", "add", "default", "via", "10.0.1.254")
    ip("-n", r, "addr", "add", "10.0.1.254/24", "dev", "eth0")
    ip("-n", r, "addr", "add", "203.0.113.2/24", "dev", "eth1")
    procs.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], namespace=r)
    ip("-n", isp, "addr", "add", "203.0.113.1/24", "dev", "eth0")

    assert ping(c, "203.0.113.1", count=2)[0] == 100  # no route back from the ISP
    nft.apply_router_nat(LAB, "r", r, ["eth1"])
    nft.apply_router_nat(LAB, "r", r, ["eth1"])  # idempotent
    assert [(t.family, t.name, t.lab) for t in nft.list_tables(r)] == [("inet", "topolab", LAB)]
    assert ping(c, "203.0.113.1", count=2)[0] == 0
    nft.apply_router_nat(LAB, "r", r, [])
    assert nft.list_tables(r) == []
    assert ping(c, "203.0.113.1", count=2)[0] == 100


def test_external_nat_table_is_created_and_deleted_by_tag_and_foreign_tables_survive(lab):
    ours, foreign_lab = LAB, "tsvf"
    foreign = [("ip", naming.nft_table(ours)), ("inet", naming.nft_table(foreign_lab))]
    for family, name in foreign:  # same names as ours would be, but no tag
        procs.run(["nft", "add", "table", family, name])
    try:
        nft.apply_external_nat(ours, "wan", naming.root_ifname(ours, "wan"), ia.ip_interface("10.99.0.1/30"))
        nft.apply_external_nat(ours, "wan", naming.root_ifname(ours, "wan"), ia.ip_interface("10.99.0.1/30"))
        text = procs.run(["nft", "list", "table", "inet", naming.nft_table(ours)]).stdout.decode()
        assert text.count("masquerade") == 1 and "ip saddr 10.99.0.1 " in text  # the transit source only
        assert [(t.family, t.name) for t in nft.list_lab_tables(ours)] == [("inet", naming.nft_table(ours))]
        with pytest.raises(ApplyError, match="not Topolab's"):
            nft.apply_external_nat(foreign_lab, "wan", naming.root_ifname(foreign_lab, "wan"),
                                   ia.ip_interface("10.99.0.5/30"))

        assert nft.delete_lab_tables(ours) == [f"inet {naming.nft_table(ours)}"]
        assert nft.delete_lab_tables(foreign_lab) == []
        left = {(t.family, t.name) for t in nft.list_tables()}
        assert ("inet", naming.nft_table(ours)) not in left
        assert set(foreign) <= left
    finally:
        for family, name in foreign:
            procs.run(["nft", "delete", "table", family, name], check=False)
        nft.delete_lab_tables(ours)


# ---------------------------------------------------------------------------------------------- link conditions


@pytest.fixture
def pair(lab):
    a, b = lab.ns("a"), lab.ns("b")
    lab.veth(a, "eth0", b, "eth0")
    ip("-n", a, "addr", "add", "10.0.2.1/24", "dev", "eth0")
    ip("-n", b, "addr", "add", "10.0.2.2/24", "dev", "eth0")
    return a, b


def link(**cond) -> Link:
    return Link(0, Endpoint("a", "eth0"), Endpoint("b", "eth0"), LinkConditions(**cond))


def test_loss_drops_about_half_of_the_pings_and_clear_restores(pair):
    a, b = pair
    linkcond.apply(LAB, link(loss_pct=50), a, "eth0")
    # ping from b: a's egress loss drops the echo replies (a local sender would see its own drops as send errors)
    loss, _ = ping(b, "10.0.2.1", count=60, interval="0.01", wait="1")
    assert 25 <= loss <= 75, loss
    linkcond.clear(LAB, link(loss_pct=50), a, "eth0")
    assert ping(b, "10.0.2.1", count=20, interval="0.01")[0] == 0
    assert "numgen" not in procs.run(["nft", "list", "ruleset"], namespace=a).stdout.decode()


def _ping_seconds(namespace: str, target: str, count: int, size: int) -> float:
    out = procs.run(["ping", "-n", "-q", "-c", str(count), "-i", "0.002", "-s", str(size), target],
                    namespace=namespace, timeout=60).stdout.decode()
    assert f"{count} received" in out, out
    return int(re.search(r"time (\d+)ms", out).group(1)) / 1000


def test_rate_limit_slows_a_bounded_transfer_and_shows_in_tc_counters(pair):
    a, b = pair
    # 30 echo requests of 1428 bytes on the wire = 343 kbit: instant without a limit, ~1.7 s at 200 kbit/s
    assert _ping_seconds(a, "10.0.2.2", 30, 1400) < 0.5
    linkcond.apply(LAB, link(rate_bps=200_000), a, "eth0")
    linkcond.apply(LAB, link(rate_bps=200_000), a, "eth0")  # idempotent
    assert _ping_seconds(a, "10.0.2.2", 30, 1400) > 1.2
    qdisc = [q for q in json.loads(procs.run(["tc", "-s", "-j", "qdisc", "show", "dev", "eth0"],
                                             namespace=a).stdout) if q["kind"] == "tbf"]
    assert len(qdisc) == 1 and qdisc[0]["options"]["rate"] == 25000 and qdisc[0]["packets"] >= 30
    linkcond.clear(LAB, link(rate_bps=200_000), a, "eth0")
    kinds = {q["kind"] for q in json.loads(procs.run(["tc", "-j", "qdisc", "show", "dev", "eth0"],
                                                     namespace=a).stdout)}
    assert "tbf" not in kinds
    assert _ping_seconds(a, "10.0.2.2", 30, 1400) < 0.5


def test_delay_is_applied_when_netem_exists_and_refused_otherwise(pair):
    a, b = pair
    if linkcond.supports_delay():
        linkcond.apply(LAB, link(delay_ms=50), a, "eth0")
        _, rtt = ping(a, "10.0.2.2", count=5)
        assert rtt is not None and rtt >= 45
    else:
        with pytest.raises(ApplyError) as err:
            linkcond.apply(LAB, link(delay_ms=50, rate_bps=1_000_000), a, "eth0")
        assert err.value.permanent and err.value.element == "links.0" and "sch_netem" in err.value.message
        kinds = {q["kind"] for q in json.loads(procs.run(["tc", "-j", "qdisc", "show", "dev", "eth0"],
                                                         namespace=a).stdout)}
        assert "tbf" not in kinds  # nothing half-applied
