"""VM nodes on real namespaces: the tiny guest boots under the host's accelerator, gets a DHCP lease from dnsmasq in
a router namespace over tap + bridge, answers ping, talks to its neighbour, and leaves nothing behind.

These tests build the lab plumbing themselves with plain `ip` commands (fabric namespace, bridge, taps, a router
and a host namespace); the code under test is netops.qemu (+ images, the tiny image and its guest init).
Needs root, qemu-system-x86 and the tiny image (scripts/build-tiny-image.sh; built here when missing).
"""
from __future__ import annotations

import ipaddress
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support import CellLab

from netops import cell, dnsmasq, images, model, naming, procs, qemu

REPO = Path(__file__).resolve().parent.parent.parent

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not Path("/usr/bin/qemu-system-x86_64").exists(), reason="needs qemu-system-x86"),
]


def sh(*argv: str) -> subprocess.CompletedProcess:
    """Fixture plumbing only (the code under test never runs `ip` like this)."""
    return subprocess.run(list(argv), check=True, capture_output=True, text=True)


@pytest.fixture(scope="session")
def tiny_library() -> Path:
    """The image library holding `tiny` (built with the real script when missing)."""
    library = Path(os.environ.get("TOPOLAB_IMAGE_DIR") or REPO / "var" / "images")
    subprocess.run(["bash", str(REPO / "scripts" / "build-tiny-image.sh"), str(library / "tiny")], check=True,
                   capture_output=True)
    return library


@pytest.fixture(scope="session")
def host_accel(tiny_library: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The real accelerator decision for this host, probed once (in a private run root)."""
    env = {"TOPOLAB_RUN_DIR": str(tmp_path_factory.mktemp("accel")), "TOPOLAB_IMAGE_DIR": str(tiny_library)}
    saved = {k: os.environ.get(k) for k in (*env, "TOPOLAB_ACCEL")}
    os.environ.update(env)
    os.environ.pop("TOPOLAB_ACCEL", None)
    try:
        first = qemu.accel_info()
        second = qemu.accel_info()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {"first": first, "second": second}


@dataclass
class Plumbing:
    lab: str
    fabric: str
    bridge: str = "br0"
    namespaces: list[str] = field(default_factory=list)
    vms: list[str] = field(default_factory=list)
    dhcp: list[tuple[str, str]] = field(default_factory=list)
    taps: dict[str, dict[str, str]] = field(default_factory=dict)
    cell: CellLab | None = None  # the lab's cell: its namespaces are made there

    def vm_taps(self, node: model.Node) -> dict[str, str]:
        """One persistent tap per interface, in the fabric namespace, on the bridge, up, owned by the lab's uid (the
        engine's job: the lab's qemu attaches to it without any capability)."""
        taps = {}
        uid = str(self.cell.cell.uid)
        for name in node.interfaces:
            tap = naming.fabric_ifname(node.name, name)
            sh("ip", "-n", self.fabric, "tuntap", "add", "dev", tap, "mode", "tap", "user", uid, "group", uid)
            sh("ip", "-n", self.fabric, "link", "set", tap, "master", self.bridge, "up")
            taps[name] = tap
        return taps

    def namespace_node(self, node: str, address: str) -> str:
        ns = self.cell.ns(node)
        outer = naming.fabric_ifname(node, "eth0")
        sh("ip", "-n", self.fabric, "link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", self.fabric, "link", "set", outer, "master", self.bridge, "up")
        sh("ip", "-n", ns, "addr", "add", address, "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        return ns

    def start(self, node: model.Node) -> int:
        self.taps[node.name] = self.vm_taps(node)
        self.vms.append(node.name)
        return qemu.start_vm(self.lab, node, self.taps[node.name], self.fabric)


@pytest.fixture
def plumbing(lab_id: str, tiny_library: Path, host_accel: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    lab = lab_id
    monkeypatch.setenv("TOPOLAB_IMAGE_DIR", str(tiny_library))
    monkeypatch.setenv("TOPOLAB_ACCEL", host_accel["first"]["accel"])
    p = Plumbing(lab=lab, fabric=naming.fabric_namespace(lab), cell=CellLab(lab))
    try:
        sh("ip", "-n", p.fabric, "link", "add", p.bridge, "type", "bridge")
        sh("ip", "-n", p.fabric, "link", "set", p.bridge, "up")
        yield p
    finally:
        for vm in p.vms:
            qemu.stop_vm(lab, vm, timeout=2.0)
        for node, iface in p.dhcp:
            dnsmasq.stop(lab, node, iface)
        # only the nodes' inits are left (pid 1 of each node's PID namespace, which its dnsmasq joined)
        assert [proc.role for proc in procs.find(lab) if proc.role != procs.init_role(proc.node)] == []
        p.cell.remove()


def router(p: Plumbing) -> model.Interface:
    """r1 with 10.0.1.254/24 on the bridge, serving DHCP 10.0.1.100-150."""
    iface = model.Interface("eth0", addresses=(ipaddress.ip_interface("10.0.1.254/24"),),
                            dhcp_server=model.DhcpServer(ipaddress.ip_address("10.0.1.100"),
                                                         ipaddress.ip_address("10.0.1.150"), lease_time=600))
    ns = p.namespace_node("r1", "10.0.1.254/24")
    p.dhcp.append(("r1", "eth0"))
    dnsmasq.start(p.lab, "r1", iface, ns)
    return iface


def vm_node(name: str, **iface_kw) -> model.Node:
    iface_kw.setdefault("dhcp", not iface_kw.get("addresses"))
    return model.Node(name=name, kind="vm", image="tiny", memory=128,
                      interfaces={"eth0": model.Interface("eth0", **iface_kw)})


def wait_lease(lab: str, mac: str, timeout: float = 60.0) -> ipaddress.IPv4Address:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for lease in dnsmasq.leases(lab, "r1", "eth0"):
            if lease.mac == mac:
                return lease.ip
        time.sleep(0.2)
    raise AssertionError(f"no DHCP lease for {mac} within {timeout} s")


def ping(namespace: str, address: str, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = procs.run(["ping", "-c", "1", "-W", "1", address], namespace=namespace, check=False)
        if done.returncode == 0:
            return True
    return False


class Console:
    """The VM's serial console socket, as the console feature will use it."""

    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.sock.settimeout(0.5)
        self.seen = b""

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode())

    def expect(self, pattern: str, timeout: float = 30.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern.encode(), self.seen)
            if found:
                self.seen = self.seen[found.end():]
                return found
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                break
            self.seen += chunk
        raise AssertionError(f"console never showed {pattern!r}; last output: {self.seen[-500:]!r}")

    def close(self) -> None:
        self.sock.close()


def qemu_processes(lab: str) -> list[procs.TaggedProcess]:
    return [p for p in procs.find(lab) if p.role.startswith("qemu:")]


def test_the_accelerator_is_decided_once_and_is_tcg_unless_kvm_really_boots(host_accel: dict) -> None:
    first, second = host_accel["first"], host_accel["second"]
    assert first["accel"] in ("kvm", "tcg") and second["accel"] == first["accel"]
    if os.path.exists("/dev/kvm"):
        assert first["cached"] is False and second["cached"] is True, "the probe must run once, then be cached"
    if first["accel"] == "kvm":
        assert "reached the guest" in first["reason"]
    else:
        assert first["reason"]  # says why (here: /dev/kvm exists but the KVM boot hangs)


def test_a_tiny_vm_gets_a_lease_answers_ping_and_powers_off_cleanly(plumbing: Plumbing) -> None:
    p = plumbing
    router(p)
    h1 = p.namespace_node("h1", "10.0.1.1/24")
    node = vm_node("vm1")
    started = time.monotonic()
    pid = p.start(node)
    assert qemu.start_vm(p.lab, node, p.taps["vm1"], p.fabric) == pid, "start_vm is idempotent"
    mac = qemu.stable_mac(p.lab, "vm1", "eth0")
    leased = wait_lease(p.lab, mac)
    boot_to_lease = time.monotonic() - started
    assert leased in ipaddress.ip_network("10.0.1.0/24") and 100 <= int(str(leased).split(".")[-1]) <= 150
    assert ping(h1, str(leased)), f"h1 cannot ping vm1 at {leased}"
    print(f"\nvm1: lease {leased} {boot_to_lease:.1f} s after start_vm ({os.environ['TOPOLAB_ACCEL']})")

    status = qemu.vm_status(p.lab, "vm1")
    assert status["alive"] and status["pid"] == pid and status["image"] == "tiny" and status["memory"] == 128
    assert status["accel"] == os.environ["TOPOLAB_ACCEL"]
    # qemu runs inside the fabric namespace (where its tap is), not in the root namespace
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{p.fabric}").st_ino
    console = Console(qemu.console_path(p.lab, "vm1"))
    try:
        console.send("\n")
        console.expect(r"vm1:~# ")
        console.send("ip -4 -o addr show dev eth0; echo DONE-$((40+2))\n")
        console.expect(rf"(?s)inet {re.escape(str(leased))}/24.*DONE-42")
    finally:
        console.close()

    run_dir = cell.cell_dir(p.lab)  # the VM's files are the lab's own
    assert b"TOPOLAB-BOOT-OK" in (run_dir / "vm1.console.log").read_bytes()
    assert qemu.stop_vm(p.lab, "vm1") is True, "the guest should power off on the ACPI button"
    assert qemu_processes(p.lab) == []
    assert not any(run_dir.glob("vm1.*.qcow2")) and not (run_dir / "vm1.console").exists()
    assert not (run_dir / "vm1.qmp").exists() and not (run_dir / "vm1.pid").exists()
    assert not qemu.vm_status(p.lab, "vm1")["alive"]


def test_two_static_vms_on_one_bridge_reach_each_other(plumbing: Plumbing) -> None:
    p = plumbing
    h1 = p.namespace_node("h1", "10.0.9.254/24")
    vm1 = vm_node("vm1", addresses=(ipaddress.ip_interface("10.0.9.1/24"),))
    vm2 = vm_node("vm2", addresses=(ipaddress.ip_interface("10.0.9.2/24"),))
    p.start(vm1)
    p.start(vm2)
    assert len(qemu_processes(p.lab)) == 2
    assert ping(h1, "10.0.9.1", timeout=60) and ping(h1, "10.0.9.2", timeout=60)
    console = Console(qemu.console_path(p.lab, "vm1"))
    try:
        console.send("\n")
        console.expect(r"vm1:~# ")
        console.send("ping -c 2 -W 2 10.0.9.2 >/dev/null && echo REACHED-$((40+2))\n")
        console.expect(r"REACHED-42")
    finally:
        console.close()


def test_a_disk_image_runs_on_an_overlay_and_the_base_is_never_written(plumbing: Plumbing, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         request: pytest.FixtureRequest) -> None:
    p = plumbing
    top = Path(tempfile.mkdtemp(prefix="topolab-vmlib-"))  # the lab's qemu (its own uid) must reach the library
    top.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(top, ignore_errors=True))
    library = top / "lib"
    src = tmp_path / "src"
    src.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(src / "blank.qcow2"), "16M"], check=True)
    image = images.add_image("blank", src / "blank.qcow2", directory=library, memory=64)
    monkeypatch.setenv("TOPOLAB_IMAGE_DIR", str(library))
    base = image.file(image.disk)
    before = (base.stat().st_mtime_ns, images._sha256(base))
    node = model.Node(name="disk1", kind="vm", image="blank",
                      interfaces={"eth0": model.Interface("eth0", dhcp=True)})
    pid = p.start(node)
    overlay = qemu.overlay_path(p.lab, "disk1")
    info = images.qemu_img_info(overlay)
    assert info["format"] == "qcow2" and info["full-backing-filename"] == str(base)
    assert any(a.startswith(f"file={overlay},format=qcow2,") for a in procs.inspect(pid).argv)
    qemu.stop_vm(p.lab, "disk1", timeout=1.0)  # SeaBIOS finds nothing to boot: no ACPI handler, signals stop it
    assert qemu_processes(p.lab) == [] and not overlay.exists()
    assert (base.stat().st_mtime_ns, images._sha256(base)) == before


# ---------------------------------------------------------------------------------------------- through the engine


@pytest.fixture
def engine_env(tiny_library: Path, host_accel: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOPOLAB_IMAGE_DIR", str(tiny_library))
    monkeypatch.setenv("TOPOLAB_ACCEL", host_accel["first"]["accel"])


def seed_lab(isp_bridge: str) -> dict:
    """DESIGN.md's seed lab, trimmed to what is asserted: r1 (DHCP + masquerade), br-in, h1, vm1, wan."""
    return {
        "version": 1, "name": "seed-vm",
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
            "vm1": {"kind": "vm", "image": "tiny", "memory": 128,
                    "interfaces": {"eth0": {"address": "dhcp", "mac": "52:54:00:aa:bb:cc"}}},
            "wan": {"kind": "external", "bridge": isp_bridge},
        },
        "links": [{"endpoints": ["r1:eth0", "br-in"]}, {"endpoints": ["h1:eth0", "br-in"]},
                  {"endpoints": ["vm1:eth0", "br-in"]}, {"endpoints": ["r1:eth1", "wan"]}],
    }


def console_run(lab: str, node: str, command: str, timeout: float = 60.0) -> None:
    """Run `command` in the VM's shell; it must print DONE-42 (the echoed command line shows `$((40+2))`)."""
    console = Console(qemu.console_path(lab, node))
    try:
        console.send("\n")
        console.expect(rf"{node}:~# ", timeout=timeout)
        console.send(f"{command} && echo DONE-$((40+2))\n")
        console.expect(r"DONE-42", timeout=timeout)
    finally:
        console.close()


def assert_no_vm_traces(lab: str) -> None:
    assert qemu_processes(lab) == []
    run_dir = cell.cell_dir(lab)
    leftovers = [p.name for p in run_dir.glob("*") if p.suffix in (".console", ".qmp", ".pid", ".qcow2")] \
        if run_dir.exists() else []
    assert leftovers == []
    assert not Path(f"/run/netns/{naming.fabric_namespace(lab)}").exists()  # taps live (and die) there


def test_seed_lab_vm_gets_a_lease_is_pinged_by_h1_and_reaches_the_isp_through_nat(
        deploy, lab_id: str, isp_namespace: dict, engine_env: None) -> None:
    from netops import engine
    from netops.topology import parse_document

    deploy(parse_document(seed_lab(isp_namespace["bridge"])), lab_id)
    leased = None
    deadline = time.monotonic() + 60
    while leased is None and time.monotonic() < deadline:
        leased = next((lease.ip for lease in dnsmasq.leases(lab_id, "r1", "eth0")
                       if lease.mac == "52:54:00:aa:bb:cc"), None)
        time.sleep(0.2)
    assert leased is not None, "vm1 got no lease from r1"
    assert ipaddress.ip_address("10.0.1.100") <= leased <= ipaddress.ip_address("10.0.1.150")
    assert ping(naming.node_namespace(lab_id, "h1"), str(leased)), f"h1 cannot ping vm1 at {leased}"
    # the ISP has no route back to 10.0.1.0/24: an answer proves r1's masquerade
    console_run(lab_id, "vm1", "ping -c 2 -W 2 203.0.113.1 >/dev/null")
    status = qemu.vm_status(lab_id, "vm1")
    assert status["alive"] and status["macs"] == {"eth0": "52:54:00:aa:bb:cc"}
    engine.down(lab_id)
    assert_no_vm_traces(lab_id)


def test_two_vms_on_one_bridge_reach_each_other_through_the_engine(deploy, lab_id: str, engine_env: None) -> None:
    from netops import engine
    from netops.topology import parse_document

    doc = {
        "version": 1, "name": "two-vms",
        "nodes": {
            "sw": {"kind": "bridge"},
            "r1": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.7.254/24",
                                                            "dhcp_server": {"range": "10.0.7.10-10.0.7.20"}}}},
            "vm1": {"kind": "vm", "image": "tiny", "interfaces": {"eth0": {"address": "dhcp"}}},
            "vm2": {"kind": "vm", "image": "tiny", "interfaces": {"eth0": {"address": "dhcp"}}},
        },
        "links": [{"endpoints": ["r1:eth0", "sw"]}, {"endpoints": ["vm1:eth0", "sw"]},
                  {"endpoints": ["vm2:eth0", "sw"]}],
    }
    deploy(parse_document(doc), lab_id)
    assert len(qemu_processes(lab_id)) == 2
    leased = {}
    deadline = time.monotonic() + 90
    while len(leased) < 2 and time.monotonic() < deadline:
        for vm in ("vm1", "vm2"):
            mac = qemu.stable_mac(lab_id, vm, "eth0")
            for lease in dnsmasq.leases(lab_id, "r1", "eth0"):
                if lease.mac == mac:
                    leased[vm] = str(lease.ip)
        time.sleep(0.2)
    assert set(leased) == {"vm1", "vm2"}, f"leases: {leased}"
    console_run(lab_id, "vm1", f"ping -c 2 -W 2 {leased['vm2']} >/dev/null")
    console_run(lab_id, "vm2", f"ping -c 2 -W 2 {leased['vm1']} >/dev/null")
    engine.down(lab_id)
    assert_no_vm_traces(lab_id)


def test_a_vm_on_a_direct_link_to_a_router_gets_a_lease(deploy, lab_id: str, engine_env: None) -> None:
    from netops import engine
    from netops.topology import parse_document

    doc = {
        "version": 1, "name": "direct-vm",
        "nodes": {
            "r1": {"kind": "router", "interfaces": {"lan": {"address": "10.0.4.1/24",
                                                            "dhcp_server": {"range": "10.0.4.50-10.0.4.60"}}}},
            "vm1": {"kind": "vm", "image": "tiny", "interfaces": {"uplink": {"address": "dhcp"}}},
        },
        "links": [{"endpoints": ["vm1:uplink", "r1:lan"]}],
    }
    deploy(parse_document(doc), lab_id)
    mac = qemu.stable_mac(lab_id, "vm1", "uplink")
    deadline = time.monotonic() + 60
    leased = None
    while leased is None and time.monotonic() < deadline:
        leased = next((lease.ip for lease in dnsmasq.leases(lab_id, "r1", "lan") if lease.mac == mac), None)
        time.sleep(0.2)
    assert leased is not None and str(leased).startswith("10.0.4.")
    assert ping(naming.node_namespace(lab_id, "r1"), str(leased))
    console_run(lab_id, "vm1", "ip link show uplink >/dev/null")  # the guest NIC carries the topology's name
    engine.down(lab_id)
    assert_no_vm_traces(lab_id)


def test_a_static_vm_behind_a_router_is_pinged_by_a_host_and_routes_through_it(
        deploy, lab_id: str, engine_env: None) -> None:
    """Static addresses and routes on a VM, as on a host: the tiny guest takes them from its command line."""
    from netops import engine
    from netops.topology import parse_document

    doc = {
        "version": 1, "name": "static-vm",
        "nodes": {
            "r1": {"kind": "router", "interfaces": {"lan": {"address": "10.0.8.1/24"},
                                                   "far": {"address": "10.0.9.1/24"}}},
            "lan": {"kind": "bridge"},
            "far": {"kind": "bridge"},
            "vm1": {"kind": "vm", "image": "tiny", "interfaces": {"eth0": {"address": "10.0.8.2/24"}},
                    "routes": [{"to": "default", "via": "10.0.8.1"}]},
            "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.9.2/24"}},
                   "routes": [{"to": "default", "via": "10.0.9.1"}]},
        },
        "links": [{"endpoints": ["r1:lan", "lan"]}, {"endpoints": ["vm1:eth0", "lan"]},
                  {"endpoints": ["r1:far", "far"]}, {"endpoints": ["h1:eth0", "far"]}],
    }
    deploy(parse_document(doc), lab_id)
    # the guest answers at its static address from another subnet: its address and its default route both hold
    assert ping(naming.node_namespace(lab_id, "h1"), "10.0.8.2", timeout=60), "h1 cannot reach vm1 at its address"
    console_run(lab_id, "vm1", "ping -c 2 -W 2 10.0.9.2 >/dev/null")
    engine.down(lab_id)
    assert_no_vm_traces(lab_id)


def test_a_vm_restarted_reboots_in_the_same_qemu_and_a_stopped_vm_comes_back(deploy, lab_id: str,
                                                                            engine_env: None) -> None:
    """Issue 18: restart is the vm kind's (a reset over QMP: the guest reboots, its RAM root is fresh); stop powers
    it off (its taps stay), start boots it again."""
    from netops import actions, engine
    from netops.topology import parse_document

    doc = {
        "version": 1, "name": "vm-actions",
        "nodes": {
            "sw": {"kind": "bridge"},
            "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.9.254/24"}}},
            "vm1": {"kind": "vm", "image": "tiny", "interfaces": {"eth0": {"address": "10.0.9.1/24"}}},
        },
        "links": [{"endpoints": ["h1:eth0", "sw"]}, {"endpoints": ["vm1:eth0", "sw"]}],
    }
    deploy(parse_document(doc), lab_id)
    h1 = naming.node_namespace(lab_id, "h1")
    assert ping(h1, "10.0.9.1", timeout=60)
    console_run(lab_id, "vm1", "touch /tmp/before-reset")
    [before] = qemu_processes(lab_id)
    actions.restart_node(lab_id, "vm1")
    assert [p.pid for p in qemu_processes(lab_id)] == [before.pid]  # the same qemu: a reset, not a new VM
    console_run(lab_id, "vm1", "test ! -e /tmp/before-reset")  # a fresh boot: the RAM root is new
    assert ping(h1, "10.0.9.1", timeout=60)

    actions.stop_node(lab_id, "vm1")
    assert qemu_processes(lab_id) == []
    st = engine.status(lab_id).as_dict()
    assert st["nodes"]["vm1"]["state"] == "stopped" and st["drift"] == []
    actions.start_node(lab_id, "vm1")
    assert len(qemu_processes(lab_id)) == 1 and ping(h1, "10.0.9.1", timeout=60)
    engine.down(lab_id)
    assert_no_vm_traces(lab_id)
