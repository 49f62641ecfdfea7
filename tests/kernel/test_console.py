"""Consoles and captures against the real kernel: a pty shell inside a node namespace, a VM's serial console, and
tcpdump on a link while h1 pings r1 (netops.console, netops.capture)."""
from __future__ import annotations

import os
import re
import select
import shutil
import socket
import tempfile
import time
from pathlib import Path

import dpkt
import pytest
from support import read_until

from netops import capture, cell, console, engine, naming, procs
from netops.errors import ApplyError, TopologyError
from netops.topology import parse_document

REPO = Path(__file__).resolve().parents[2]


def lan(name: str = "consoles", vm: bool = False) -> dict:
    doc = {
        "version": 1,
        "name": name,
        "nodes": {
            "r1": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.1.254/24"}}},
            "br-in": {"kind": "bridge"},
            "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}},
                   "routes": [{"to": "default", "via": "10.0.1.254"}]},
        },
        "links": [{"endpoints": ["r1:eth0", "br-in"]}, {"endpoints": ["h1:eth0", "br-in"]}],
    }
    if vm:
        doc["nodes"]["vm1"] = {"kind": "vm", "image": "tiny", "memory": 128,
                               "interfaces": {"eth0": {}}}
        doc["links"].append({"endpoints": ["vm1:eth0", "br-in"]})
    return doc


def tagged(lab: str) -> list[procs.TaggedProcess]:
    return procs.find(lab)


@pytest.fixture
def capture_dir():
    """A directory tcpdump (dropped to its own user) can write into: 0711, like var/captures."""
    path = Path(tempfile.mkdtemp(prefix="topolab-capture-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path)


def pcap_file(directory: Path, name: str, lab: str) -> Path:
    """The file the agent makes for a capture: the lab's tcpdump writes it as the lab's uid."""
    path = directory / name
    path.touch(mode=0o640)
    os.chown(path, cell.get(lab).uid, -1)
    return path


@pytest.fixture
def deployed(deploy, lab_id):
    deploy(parse_document(lan()), lab_id)
    return lab_id


# ---------------------------------------------------------------------------------------------- console


def test_a_shell_runs_inside_the_node_and_sees_its_address(deployed):
    shell = console.open_shell(deployed, "h1", "t1", rows=30, cols=100)
    try:
        shell.write(b"ip -br addr show dev eth0; id -un; stty size\n")
        out = read_until(shell.read, b"100\r\n")
        assert b"10.0.1.1/24" in out
        assert b"root" in out  # root of the lab's user namespace...
        cell_of_lab = cell.get(deployed)
        for proc in procs.find(deployed, console.role("t1")):  # ...which is the lab's own host uid, not root
            uids = [int(x) for x in Path(f"/proc/{proc.pid}/status").read_text().split("Uid:")[1].split()[:4]]
            assert all(cell_of_lab.owns_host_uid(u) for u in uids), (proc, uids)
        assert b"30 100" in out
        shell.resize(40, 132)
        shell.write(b"stty size\n")
        read_until(shell.read, b"40 132")
        # the shell is in the lab's cgroup, so destroy would stop it too
        assert shell.pid in [p.pid for p in procs.find(deployed, console.role("t1"))]
    finally:
        shell.close()
    assert not shell.alive()


def test_the_shell_is_named_after_its_node_and_sees_its_own_sys(deployed):
    host_name = socket.gethostname()
    shell = console.open_shell(deployed, "h1", "t5")
    try:
        shell.write(b"echo host-$(hostname); echo net-$(ls /sys/class/net | tr '\\n' ,); echo done-$((3*3))\n")
        out = read_until(shell.read, b"done-9")
        assert b"host-h1\r\n" in out
        assert b"net-eth0,lo,\r\n" in out  # the node's interfaces, not the host's
    finally:
        shell.close()
    assert socket.gethostname() == host_name  # the host keeps its name
    assert sorted(os.listdir("/sys/class/net")) != ["eth0", "lo"]  # and its /sys


def test_closing_a_console_leaves_no_process_even_background_jobs(deployed):
    shell = console.open_shell(deployed, "r1", "t2")
    shell.write(b"sleep 300 & sleep 301 & echo started-$((6*7))\n")
    read_until(shell.read, b"started-42")
    children = procs.find(deployed, console.role("t2"))
    assert len(children) >= 3, children  # the shell and both sleeps carry the tag
    shell.close()
    assert procs.find(deployed, console.role("t2")) == []
    for child in children:
        assert procs.inspect(child.pid) is None


def test_the_console_shell_cannot_read_root_files_or_enter_other_namespaces(deployed):
    shell = console.open_shell(deployed, "h1", "t3")
    try:
        shell.write(b"cat /etc/shadow >/dev/null 2>&1 || echo no-shadow-$((1+1)); "
                    b"nsenter --net=/run/netns/" + naming.node_namespace(deployed, "r1").encode()
                    + b" true 2>/dev/null || echo no-enter-$((2+2))\n")
        out = read_until(shell.read, b"no-enter-4")
        assert b"no-shadow-2" in out
    finally:
        shell.close()


def test_a_console_is_refused_for_nodes_that_do_not_run_or_are_not_nodes(deployed):
    with pytest.raises(ApplyError, match="not running"):
        console.open_shell(deployed, "h9", "t4")
    with pytest.raises(ApplyError):
        console.open_shell(deployed, "h1;rm", "t4")
    with pytest.raises(ApplyError, match="session id"):
        console.open_shell(deployed, "h1", "x y")
    assert procs.find(deployed) == []


def test_destroying_the_lab_ends_its_consoles(deploy, lab_id):
    deploy(parse_document(lan()), lab_id)
    shell = console.open_shell(lab_id, "h1", "t5")
    shell.write(b"echo up-$((3*3))\n")
    read_until(shell.read, b"up-9")
    engine.down(lab_id)
    shell.process.wait(timeout=10)
    deadline = time.monotonic() + 5
    while (chunk := shell.read()) is not None:  # drain what is left; then the pty reports the hangup
        assert time.monotonic() < deadline, "the pty was not hung up"
        time.sleep(0.02 if not chunk else 0)
    shell.close()
    assert procs.find(lab_id) == []


# ---------------------------------------------------------------------------------------------- capture


def test_a_capture_on_the_h1_link_records_the_pings_to_r1(deployed, capture_dir, tmp_path, ns_exec):
    topo = capture.deployed_topology(deployed)
    point = capture.capture_point(topo, deployed, link=1)
    assert point == capture.CapturePoint(naming.node_namespace(deployed, "h1"), "eth0", "h1:eth0 ↔ br-in")
    path = pcap_file(capture_dir, "c1.pcap", deployed)
    capture.compile_filter(point, "icmp or arp")
    log = cell.cell_dir(deployed) / "c1.log"  # the lab's tcpdump writes its log where the lab may write
    pid = capture.start(deployed, 1, point, path, "icmp or arp", log_path=log)
    try:
        wait_for(lambda: log.exists() and b"listening on" in log.read_bytes(), "tcpdump to listen")
        ping = ns_exec(naming.node_namespace(deployed, "h1"), ["ping", "-c", "3", "-i", "0.2", "10.0.1.254"])
        assert ping.returncode == 0, ping.stdout + ping.stderr
        wait_for(lambda: sum(1 for p in capture.read_pcap(path) if p.protocol == "ICMP") >= 6, "6 ICMP packets")
        live = capture.read_pcap(path)
        infos = [(p.src, p.dst, p.info.split(",")[0].rsplit(" id=")[0]) for p in live if p.protocol == "ICMP"]
        assert ("10.0.1.1", "10.0.1.254", "echo request") in infos
        assert ("10.0.1.254", "10.0.1.1", "echo reply") in infos
    finally:
        assert capture.stop(deployed, 1) == 1
    assert procs.inspect(pid) is None
    # an independent parser reads the same file
    with open(path, "rb") as f:
        frames = [dpkt.ethernet.Ethernet(buf) for _, buf in dpkt.pcap.Reader(f)]
    icmp = [e.data.data for e in frames if isinstance(e.data, dpkt.ip.IP) and isinstance(e.data.data, dpkt.icmp.ICMP)]
    assert {m.type for m in icmp} == {0, 8} and len(icmp) >= 6


def test_a_filter_that_does_not_compile_is_refused_with_tcpdumps_message(deployed):
    point = capture.capture_point(capture.deployed_topology(deployed), deployed, node="r1", interface="eth0")
    with pytest.raises(TopologyError, match="filter: .*syntax error|filter: .*"):
        capture.compile_filter(point, "icmp and and")
    assert procs.find(deployed) == []


def test_injected_interfaces_and_filters_never_start_tcpdump(deployed, tmp_path):
    topo = capture.deployed_topology(deployed)
    for iface in ("eth0 -z /bin/sh", "-w", "eth0\n", "../eth0"):
        with pytest.raises(TopologyError, match="is not an interface of h1"):
            capture.capture_point(topo, deployed, node="h1", interface=iface)
    point = capture.capture_point(topo, deployed, node="h1", interface="eth0")
    for bad in ("-w /etc/passwd", "icmp; rm -rf /", "icmp\n-w x", "$(reboot)", "`id`", "'x'"):
        with pytest.raises(TopologyError, match="^filter: "):
            capture.start(deployed, 2, point, tmp_path / "x.pcap", bad)
    assert procs.find(deployed) == [] and not (tmp_path / "x.pcap").exists()


def test_destroying_the_lab_stops_its_captures(deploy, lab_id, capture_dir):
    deploy(parse_document(lan()), lab_id)
    point = capture.capture_point(capture.deployed_topology(lab_id), lab_id, link=0)
    assert point.namespace == naming.node_namespace(lab_id, "r1")
    path = pcap_file(capture_dir, "d.pcap", lab_id)
    pid = capture.start(lab_id, 3, point, path)
    assert procs.inspect(pid) is not None
    engine.down(lab_id)
    assert procs.inspect(pid) is None and capture.running(lab_id, 3) == []


# ---------------------------------------------------------------------------------------------- VM console


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/qemu-system-x86_64").exists(), reason="needs qemu-system-x86")
def test_the_vm_console_shows_the_guest_and_reconnects_to_the_same_guest(deploy, lab_id, monkeypatch):
    from netops import images

    try:
        images.get_image("tiny")
    except TopologyError:
        pytest.skip("the tiny image is not built (make setup builds it)")
    monkeypatch.setenv("TOPOLAB_ACCEL", os.environ.get("TOPOLAB_ACCEL", "tcg"))
    deploy(parse_document(lan("vmcon", vm=True)), lab_id)

    def uptime() -> float:
        """Connect, press Enter until the guest's prompt shows, read its uptime, disconnect."""
        sock = console.vm_console_socket(lab_id, "vm1")
        try:
            def read():
                ready, _, _ = select.select([sock], [], [], 0.2)
                return sock.recv(65536) if ready else b""

            deadline = time.monotonic() + 90
            while True:
                sock.sendall(b"\r")
                try:
                    read_until(read, b"vm1:~# ", timeout=3)
                    break
                except AssertionError:
                    if time.monotonic() > deadline:
                        raise
            time.sleep(0.5)
            while read():  # prompts the Enters above still bring: drain them, then ask
                pass
            sock.sendall(b"cat /proc/uptime\r")
            out, deadline = b"", time.monotonic() + 20
            while not (found := re.search(rb"\n(\d+\.\d+) \d+\.\d+", out)):
                assert time.monotonic() < deadline, out
                out += read()
            return float(found.group(1))
        finally:
            sock.close()

    first = uptime()
    second = uptime()
    assert second >= first  # the same running guest, not a reboot


def wait_for(predicate, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
