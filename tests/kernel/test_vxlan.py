"""A lab across hosts, on one kernel (issue 13, part 3): simulated hosts, each an agent (`python -m netops` with
TOPOLAB_HOST_TAG) whose underlay is a namespace of its own on a test underlay bridge; their VXLAN sockets live
there, so the lab's frames really cross a UDP underlay between hosts."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import UdpCapture, Underlay
from support import netns_exec as ns_exec

from netops import engine, naming
from netops.errors import ApplyError, TopologyError
from netops.kernel import userns
from netops.span import Span
from netops.topology import parse_document

REPO = Path(__file__).resolve().parents[2]


def doc(name: str = "across", *, delay_ms: float | None = None) -> dict:
    """A switch with h1 (host a) and h2 (host b), and a direct link h3 (a) -- h4 (b)."""
    direct: dict = {"endpoints": ["h3:eth0", "h4:eth0"]}
    if delay_ms is not None:
        direct["delay"] = f"{delay_ms:g}ms"
    return {
        "version": 1, "name": name,
        "nodes": {
            "sw": {"kind": "bridge"},
            "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}}},
            "h2": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.2/24"}}},
            "h3": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.2.1/24"}}},
            "h4": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.2.2/24"}}},
        },
        "links": [{"endpoints": ["h1:eth0", "sw"]}, {"endpoints": ["h2:eth0", "sw"]}, direct],
    }


PLACEMENT = {"h1": "a", "h2": "b", "h3": "a", "h4": "b"}
SEGMENTS = ["sw", "link:h3:eth0--h4:eth0"]


class Hosts(Underlay):
    """Simulated hosts (tests/support.py's Underlay) and how this file's agents run on them."""

    def span(self, vnis: dict[str, int], placement: dict[str, str]) -> dict:
        return {"placement": placement, "underlays": dict(self.address), "vnis": vnis}

    def env(self, host: str) -> dict[str, str]:
        return {**os.environ, "TOPOLAB_HOST_TAG": host, "TOPOLAB_UNDERLAY_NETNS": self.underlay[host]}

    def agent(self, host: str, *argv: str) -> subprocess.CompletedProcess:
        """`python -m netops ...` as host `host`'s agent."""
        return subprocess.run([sys.executable, "-m", "netops", *argv], capture_output=True, text=True, cwd=REPO,
                              env=self.env(host), timeout=180)


def _owner_is_initial(ns: str) -> bool:
    """Whether namespace `ns` is owned by the host's initial user namespace (not a lab's cell)."""
    fd = userns.owner_fd(f"/run/netns/{ns}")
    try:
        return os.fstat(fd).st_ino == userns.initial_inode()
    finally:
        os.close(fd)


def ns_of(host: str, lab: str, node: str) -> str:
    return f"tl{host}-{lab}-{node}"


def ping(ns: str, address: str, *extra: str) -> subprocess.CompletedProcess:
    return ns_exec(ns, ["ping", "-c", "1", "-W", "3", *extra, address])


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    h = Hosts(["a", "b"])
    try:
        yield h
    finally:
        h.remove()


@pytest.fixture
def across(hosts: Hosts, tmp_path: Path) -> Iterator[Callable[..., None]]:
    """across(document, lab, vnis) deploys the lab on hosts a and b (their agents); down on both afterwards."""
    deployed: list[tuple[str, Path]] = []

    def up(document: dict, lab: str, vnis: dict[str, int], placement: dict[str, str] = PLACEMENT) -> None:
        doc_file, span_file = tmp_path / f"{lab}.json", tmp_path / f"{lab}-span.json"
        doc_file.write_text(json.dumps(document))
        span_file.write_text(json.dumps(hosts.span(vnis, placement)))
        deployed.append((lab, span_file))
        for host in ("a", "b"):
            r = hosts.agent(host, "up", str(doc_file), "--lab", lab, "--span", str(span_file), "--host", host)
            assert r.returncode == 0, f"up on {host}: {r.stdout}\n{r.stderr}"

    yield up
    errors = []
    for lab, span_file in deployed:
        for host in ("a", "b"):
            r = hosts.agent(host, "down", "--lab", lab, "--span", str(span_file), "--host", host)
            if r.returncode != 0:
                errors.append(f"down {lab} on {host}: {r.stderr}")
    assert not errors, errors


def test_a_switch_and_a_direct_link_across_two_hosts(hosts, across, lab_id, tmp_path):
    vnis = {"sw": 4242, "link:h3:eth0--h4:eth0": 4243}
    across(doc(), lab_id, vnis)
    h1, h2, h3 = ns_of("a", lab_id, "h1"), ns_of("b", lab_id, "h2"), ns_of("a", lab_id, "h3")
    # each host has its own nodes only: h1 and h3 on a, h2 and h4 on b
    names = set(os.listdir("/run/netns"))
    assert {f"tla-{lab_id}", h1, h3, f"tlb-{lab_id}", h2, ns_of("b", lab_id, "h4")} <= names
    assert ns_of("b", lab_id, "h1") not in names and ns_of("a", lab_id, "h2") not in names
    assert f"tl-{lab_id}" not in names

    capture = UdpCapture(hosts.underlay["b"], tmp_path / "b.pcap.txt")
    try:
        assert ping(h1, "10.0.1.2").returncode == 0
        assert ping(h3, "10.0.2.2").returncode == 0
    finally:
        seen = capture.stop()
    # the frames crossed the underlay as VXLAN from a's underlay address, with the lab's VNIs
    assert re.search(rf"{hosts.address['a']}\.\d+ > {hosts.address['b']}\.4789: VXLAN.*vni 4242", seen), seen
    assert re.search(rf"{hosts.address['a']}\.\d+ > {hosts.address['b']}\.4789: VXLAN.*vni 4243", seen), seen

    # the tunnel: in the lab's tunnel namespace, which is the host's (not the lab's cell: no lab process can edit
    # its flood list), on a bridge with a veth to the segment's bridge in the fabric; the flood list is the other
    # host's underlay
    fabric_a, tunnels_a = f"tla-{lab_id}", f"tla-{lab_id}-_tunnels"
    details = ns_exec(tunnels_a, ["ip", "-d", "-o", "link", "show", "type", "vxlan"], check=True).stdout
    assert details.count("vxlan id") == 2 and "vxlan id 4242" in details and f"local {hosts.address['a']}" in details
    assert "mtu 1450" in details
    fdb = ns_exec(tunnels_a, ["bridge", "fdb", "show", "type", "vxlan"]).stdout
    assert "00:00:00:00:00:00 dev" in fdb and f"dst {hosts.address['b']}" in fdb, fdb
    assert _owner_is_initial(tunnels_a) and not _owner_is_initial(fabric_a)
    # no VXLAN device in the fabric, none left in the underlay
    assert "vxlan" not in ns_exec(fabric_a, ["ip", "-d", "-o", "link"]).stdout
    assert "vxlan" not in ns_exec(hosts.underlay["a"], ["ip", "-d", "-o", "link"]).stdout
    # MTU: the lab interfaces on spanning segments have 1450; a 1450-byte packet passes unfragmented
    assert "mtu 1450" in ns_exec(h1, ["ip", "-o", "link", "show", "eth0"]).stdout
    assert ping(h1, "10.0.1.2", "-M", "do", "-s", "1422").returncode == 0
    assert ping(h1, "10.0.1.2", "-M", "do", "-s", "1423").returncode != 0

    # a second up on a host changes nothing
    doc_file, span_file = tmp_path / f"{lab_id}.json", tmp_path / f"{lab_id}-span.json"
    r = hosts.agent("a", "up", str(doc_file), "--lab", lab_id, "--span", str(span_file), "--host", "a")
    assert r.returncode == 0 and "nothing to change" in r.stdout, r.stdout + r.stderr
    assert ns_exec(tunnels_a, ["ip", "-d", "-o", "link", "show", "type", "vxlan"]).stdout.split(":")[0] == \
        details.split(":")[0]

    # a tunnel deleted by hand is made again by the next up (a half-built lab is finished)
    ifname = details.split(":")[1].strip().split("@")[0]
    ns_exec(tunnels_a, ["ip", "link", "del", ifname], check=True)
    assert ping(h1, "10.0.1.2").returncode != 0 or ping(h3, "10.0.2.2").returncode != 0
    r = hosts.agent("a", "up", str(doc_file), "--lab", lab_id, "--span", str(span_file), "--host", "a")
    assert r.returncode == 0, r.stderr
    assert ping(h1, "10.0.1.2").returncode == 0 and ping(h3, "10.0.2.2").returncode == 0

    # an action on a host acts on its part: h1 stopped on a, the tunnels and the direct link stay
    r = hosts.agent("a", "node", "stop", "--lab", lab_id, "h1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert ns_of("a", lab_id, "h1") not in os.listdir("/run/netns")
    assert ping(h3, "10.0.2.2").returncode == 0
    assert ns_of("b", lab_id, "h4") in os.listdir("/run/netns") and ns_of("a", lab_id, "h4") not in os.listdir(
        "/run/netns")
    r = hosts.agent("a", "node", "start", "--lab", lab_id, "h1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert ping(h1, "10.0.1.2").returncode == 0

    # each host's status is of its part: its nodes, no link bridge
    r = hosts.agent("a", "status", "--lab", lab_id, "--json")
    assert r.returncode == 0, r.stderr
    nodes = json.loads(r.stdout)["nodes"]
    assert {n: v["state"] for n, v in nodes.items()} == {"sw": "running", "h1": "running", "h3": "running"}

    # the default host (no tag) sees nothing of the simulated hosts' labs
    assert naming.parse_namespace(f"tla-{lab_id}") is None
    assert engine.status(lab_id).nodes == {}


def test_two_labs_with_identical_documents_never_see_each_others_frames(hosts, across, lab_id):
    other = lab_id[:-1] + ("x" if lab_id[-1] != "x" else "y")
    across(doc(), lab_id, {"sw": 5101, "link:h3:eth0--h4:eth0": 5102})
    across(doc(), other, {"sw": 5201, "link:h3:eth0--h4:eth0": 5202})
    assert ping(ns_of("a", lab_id, "h1"), "10.0.1.2").returncode == 0
    assert ping(ns_of("a", lab_id, "h3"), "10.0.2.2").returncode == 0
    # the other lab's nodes with the same addresses never heard of lab_id's (no ARP reached them)
    for node, peer in (("h2", "10.0.1.1"), ("h4", "10.0.2.1")):
        neigh = ns_exec(ns_of("b", other, node), ["ip", "neigh", "show", peer]).stdout
        assert neigh.strip() == "", neigh
    # lab_id's h1 reached its own h2 (the MAC it learned is lab_id's h2's)
    mac = ns_exec(ns_of("b", lab_id, "h2"), ["ip", "-o", "link", "show", "eth0"]).stdout.split("link/ether ")[1][:17]
    assert mac in ns_exec(ns_of("a", lab_id, "h1"), ["ip", "neigh", "show", "10.0.1.2"]).stdout


def test_link_conditions_of_a_direct_link_across_hosts_apply_once_each_way(hosts, across, lab_id):
    across(doc(delay_ms=40), lab_id, {"sw": 5301, "link:h3:eth0--h4:eth0": 5302})
    rtts = []
    for _ in range(3):
        out = ping(ns_of("a", lab_id, "h3"), "10.0.2.2").stdout
        found = re.search(r"time=([\d.]+) ms", out)
        assert found, out
        rtts.append(float(found.group(1)))
    assert 75 <= min(rtts) < 140, rtts  # 40 ms each way: once, not on both hosts


def test_dhcp_from_a_router_on_one_host_reaches_a_host_on_another(hosts, across, lab_id):
    document = {
        "version": 1, "name": "dhcp-across",
        "nodes": {
            "sw": {"kind": "bridge"},
            "r1": {"kind": "router", "interfaces": {"eth0": {
                "address": "10.0.1.254/24", "dhcp_server": {"range": "10.0.1.100-10.0.1.150"}}}},
            "h2": {"kind": "host", "interfaces": {"eth0": {"address": "dhcp"}}},
        },
        "links": [{"endpoints": ["r1:eth0", "sw"]}, {"endpoints": ["h2:eth0", "sw"]}],
    }
    across(document, lab_id, {"sw": 5401}, {"r1": "a", "h2": "b"})
    addr = ns_exec(ns_of("b", lab_id, "h2"), ["ip", "-4", "-o", "addr", "show", "eth0"]).stdout
    assert re.search(r"inet 10\.0\.1\.1[0-4]\d/24|inet 10\.0\.1\.150/24", addr), addr
    assert ping(ns_of("b", lab_id, "h2"), "10.0.1.254").returncode == 0


# ---------------------------------------------------------------------------------------------- hostile


def test_an_underlay_namespace_of_a_lab_or_one_that_does_not_exist_is_refused(hosts, lab_id):
    topology = parse_document(doc())
    span = Span(local="a", placement=PLACEMENT, underlays=dict(hosts.address), vnis={"sw": 7, SEGMENTS[1]: 8},
                underlay_netns=f"tl-{lab_id}")
    with pytest.raises(ApplyError, match="lab's namespace"):
        engine.up(topology, lab_id, span=span)
    span = Span(local="a", placement=PLACEMENT, underlays=dict(hosts.address), vnis={"sw": 7, SEGMENTS[1]: 8},
                underlay_netns=f"tltest-nosuch{lab_id}")
    with pytest.raises(ApplyError, match="does not exist"):
        engine.up(topology, lab_id, span=span)
    # a span missing a VNI, or a node placed nowhere, is refused at its path before anything is made
    with pytest.raises(TopologyError, match="nodes.sw"):
        engine.up(topology, lab_id, span=Span(local="a", placement=PLACEMENT, underlays=dict(hosts.address)))
    assert not [n for n in os.listdir("/run/netns") if lab_id in n]
    engine.down(lab_id)


def test_clean_on_one_simulated_host_never_touches_the_others(hosts, across, lab_id):
    from netops import cell

    across(doc(), lab_id, {"sw": 5501, "link:h3:eth0--h4:eth0": 5502})
    r = hosts.agent("a", "clean")
    assert r.returncode == 0, r.stderr
    names = set(os.listdir("/run/netns"))
    assert not [n for n in names if n.startswith(f"tla-{lab_id}")]
    assert {f"tlb-{lab_id}", f"tlb-{lab_id}-h2", f"tlb-{lab_id}-h4", f"tlb-{lab_id}-_tunnels"} <= names
    keys = cell.allocated_keys()
    assert f"b.{lab_id}" in keys and f"a.{lab_id}" not in keys
    # what is left of the lab on b still runs: its tunnel sends toward a, where nothing answers any more
    assert "vxlan id 5501" in ns_exec(f"tlb-{lab_id}-_tunnels", ["ip", "-d", "-o", "link"]).stdout


def test_a_switch_across_three_hosts_floods_to_both_others(tmp_path, lab_id):
    h = Hosts(["a", "b", "c"])
    document = {
        "version": 1, "name": "three",
        "nodes": {"sw": {"kind": "bridge"},
                  **{f"h{i}": {"kind": "host", "interfaces": {"eth0": {"address": f"10.0.1.{i}/24"}}}
                     for i in (1, 2, 3)}},
        "links": [{"endpoints": [f"h{i}:eth0", "sw"]} for i in (1, 2, 3)],
    }
    placement = {"h1": "a", "h2": "b", "h3": "c"}
    doc_file, span_file = tmp_path / "doc.json", tmp_path / "span.json"
    doc_file.write_text(json.dumps(document))
    span_file.write_text(json.dumps(h.span({"sw": 5601}, placement)))
    try:
        for host in "abc":
            r = h.agent(host, "up", str(doc_file), "--lab", lab_id, "--span", str(span_file), "--host", host)
            assert r.returncode == 0, r.stdout + r.stderr
        fdb = ns_exec(f"tla-{lab_id}-_tunnels", ["bridge", "fdb", "show", "type", "vxlan"]).stdout
        assert f"dst {h.address['b']}" in fdb and f"dst {h.address['c']}" in fdb, fdb
        for src, node in (("a", "h1"), ("b", "h2"), ("c", "h3")):
            for i in (1, 2, 3):
                assert ping(ns_of(src, lab_id, node), f"10.0.1.{i}").returncode == 0, (node, i)
    finally:
        errors = []
        for host in "abc":
            r = h.agent(host, "down", "--lab", lab_id, "--span", str(span_file), "--host", host)
            if r.returncode != 0:
                errors.append(r.stderr)
        h.remove()
        assert not errors, errors
