"""NAT uplinks never touch the host's routing table with a user's addresses (issue 12): the door address lives in
the lab's fabric, the host sees a transit /30 from the operator's pool. Many labs with one document reach the
outside side by side; a door address on the host's own LAN changes nothing on the host; a fabric that stops
masquerading cannot put its lab's addresses on the host's networks."""
from __future__ import annotations

import ipaddress
import re
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from netops import naming, uplinks
from netops.errors import ApplyError
from netops.topology import parse_document

OUTSIDE = "198.51.100.1"


def uplinked(door: str = "203.0.113.1/24", r1: str = "203.0.113.2/24") -> dict:
    gateway = door.split("/")[0]
    return {
        "version": 1, "name": "uplink",
        "nodes": {
            "r1": {"kind": "router", "interfaces": {"eth1": {"address": r1}},
                   "routes": [{"to": "default", "via": gateway}]},
            "wan": {"kind": "external", "nat": True, "address": door},
        },
        "links": [{"endpoints": ["r1:eth1", "wan"]}],
    }


def host_view() -> tuple[set[str], set[str]]:
    """The host's IPv4 routes and addresses, without Topolab's doors and the test's own outside link."""
    routes = subprocess.run(["ip", "-4", "-o", "route", "show", "table", "all"], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    addrs = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    keep = lambda line: not re.search(r"\b(dev|:) ?tl", line)  # noqa: E731
    return ({r for r in routes if keep(r)},
            {" ".join(line.split()[1:4]) for line in addrs.splitlines() if keep(line)})


@pytest.fixture
def outside():
    """An "outside" namespace the host routes to: 198.51.100.1, behind the host's 198.51.100.254 on a veth."""
    ns, host_end = f"tltest-out{uuid.uuid4().hex[:5]}", f"tlout{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns], check=True)
        subprocess.run(["ip", "addr", "add", "198.51.100.254/24", "dev", host_end], check=True)
        subprocess.run(["ip", "link", "set", host_end, "up"], check=True)
        for cmd in (["addr", "add", f"{OUTSIDE}/24", "dev", "eth0"], ["link", "set", "eth0", "up"],
                    ["link", "set", "lo", "up"]):
            subprocess.run(["ip", "-n", ns, *cmd], check=True)
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", host_end], check=False)
        subprocess.run(["ip", "netns", "del", ns], check=False)


def ping_loss(lab: str, target: str, count: int = 5) -> float:
    out = subprocess.run(["nsenter", f"--net=/run/netns/{naming.node_namespace(lab, 'r1')}", "ping", "-n", "-q",
                          "-c", str(count), "-i", "0.2", "-W", "1", target], capture_output=True, text=True).stdout
    m = re.search(r"([0-9.]+)% packet loss", out)
    return float(m.group(1)) if m else 100.0


def test_ten_labs_from_one_document_reach_the_outside_at_once(deploy, outside):
    before = host_view()
    labs = [f"u{uuid.uuid4().hex[:6]}" for _ in range(10)]
    for lab in labs:
        deploy(parse_document(uplinked()), lab)
    routes, _ = host_view()
    assert not any("203.0.113." in r for r in routes), routes  # no user address on the host
    with ThreadPoolExecutor(10) as pool:
        door = list(pool.map(lambda lab: ping_loss(lab, "203.0.113.1"), labs))
        beyond = list(pool.map(lambda lab: ping_loss(lab, OUTSIDE, 10), labs))
    print(f"10 labs with the same door 203.0.113.1/24: loss to the door {door}, to {OUTSIDE} {beyond}")
    assert door == [0.0] * 10 and beyond == [0.0] * 10
    # each door's host end is a distinct transit /30 of the pool
    transits = set()
    for line in subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout.splitlines():
        if re.search(r": tl[a-z0-9]+ ", line) and "inet 100." in line:
            transits.add(ipaddress.ip_interface(line.split()[3]).network)
    assert len(transits) >= 10 and all(t.subnet_of(uplinks.pool()) and t.prefixlen == 30 for t in transits)
    assert host_view()[1] == before[1]


def _host_lan() -> ipaddress.IPv4Interface | None:
    for line in subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True,
                               text=True).stdout.splitlines():
        if not re.search(r": tl", line):
            return ipaddress.IPv4Interface(line.split()[3])
    return None


def test_a_door_on_the_hosts_own_lan_address_changes_nothing_on_the_host(deploy, lab_id):
    lan = _host_lan()
    if lan is None:
        pytest.skip("the host has no global IPv4 address")
    others = [h for h in lan.network.hosts() if h != lan.ip]
    r1 = ipaddress.IPv4Interface((others[-1] if others else lan.ip, lan.network.prefixlen))
    before = host_view()
    deploy(parse_document(uplinked(door=str(lan), r1=str(r1))), lab_id)  # the host's own address as the door
    assert host_view() == before
    assert ping_loss(lab_id, str(lan.ip)) == 0.0  # the lab's gateway answers, inside the lab


def test_a_fabric_that_stops_masquerading_cannot_send_the_labs_addresses_out(deploy, lab_id, outside):
    deploy(parse_document(uplinked()), lab_id)
    assert ping_loss(lab_id, OUTSIDE) == 0.0
    # a lab process with CAP_NET_ADMIN over its own fabric could do this: drop the fabric's masquerade
    subprocess.run(["nsenter", f"--net=/run/netns/{naming.fabric_namespace(lab_id)}", "nft", "delete", "table", "ip",
                    "topolab_uplinks"], check=True)
    subprocess.run(["nsenter", f"--net=/run/netns/{naming.fabric_namespace(lab_id)}", "conntrack", "-F"],
                   check=False, capture_output=True)
    assert ping_loss(lab_id, OUTSIDE) == 100.0  # 203.0.113.2 arrives on the door: the host drops it


def test_a_pool_that_overlaps_a_host_route_is_refused_before_anything_is_made(deploy, lab_id, monkeypatch, outside):
    monkeypatch.setenv("TOPOLAB_UPLINK_POOL", "198.51.100.0/24")  # the outside link's subnet, routed by the host
    with pytest.raises(ApplyError, match="overlaps the host's route to 198.51.100.0/24"):
        deploy(parse_document(uplinked()), lab_id)
    assert not [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
                if n.startswith(f"tl-{lab_id}")]
