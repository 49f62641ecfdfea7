"""A lab is a cell (issue 11): tried as a student with a console would, against a second lab and the host.

Two labs with identical documents run side by side (the attacker's and the victim's). From consoles of a host node
and of a router with an uplink, and from processes of the lab that are not in a console's PID namespace (the way
dnsmasq or qemu run), every attempt to reach the host or the other lab fails and leaves both as they were, while
what a network engineer does inside a node keeps working.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from netops import cell, console, engine, naming, procs, qemu
from netops.kernel import cgroups, userns
from netops.topology import parse_document

REPO = Path(__file__).resolve().parents[2]


def seed(isp_bridge: str, *, vm: bool = False, limits: dict | None = None) -> dict:
    """The seed lab: r1 with DHCP on the LAN and SNAT to an "ISP" through a host bridge, h1 static, h2 DHCP."""
    doc = {
        "version": 1,
        "name": "cell",
        "nodes": {
            "r1": {"kind": "router",
                   "interfaces": {"eth0": {"address": "10.0.1.254/24",
                                           "dhcp_server": {"range": "10.0.1.100-10.0.1.150"}},
                                  "eth1": {"address": "203.0.113.2/24"}},
                   "routes": [{"to": "default", "via": "203.0.113.1"}], "nat": {"masquerade": ["eth1"]}},
            "lan": {"kind": "bridge"},
            "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}},
                   "routes": [{"to": "default", "via": "10.0.1.254"}]},
            "h2": {"kind": "host", "interfaces": {"eth0": {"address": "dhcp"}}},
            "wan": {"kind": "external", "bridge": isp_bridge},
        },
        "links": [{"endpoints": ["r1:eth0", "lan"]}, {"endpoints": ["h1:eth0", "lan"]},
                  {"endpoints": ["h2:eth0", "lan"]}, {"endpoints": ["r1:eth1", "wan"]}],
    }
    if vm:
        doc["nodes"]["vm1"] = {"kind": "vm", "image": "tiny", "memory": 128, "interfaces": {"eth0": {"address": "dhcp"}}}
        doc["links"].append({"endpoints": ["vm1:eth0", "lan"]})
    if limits:
        doc["nodes"]["h1"]["limits"] = limits
    return doc


class Console:
    """A console shell of a node, driven like a user at a terminal."""

    def __init__(self, lab: str, node: str) -> None:
        self.shell = console.open_shell(lab, node, f"c{uuid.uuid4().hex[:8]}", rows=50, cols=200)
        self.run("true")

    def run(self, command: str, timeout: float = 15.0) -> str:
        """Type `command`, wait for it to finish; its output (the typed line excluded), ending in END-<m>-<rc>."""
        marker = uuid.uuid4().hex[:8]
        self.shell.write(f"{command}\necho E''ND-{marker}-$?\n".encode())  # typed text never matches END-
        done = re.compile(rf"END-{marker}-(\d+)\r?\n".encode())
        seen = b""
        deadline = time.monotonic() + timeout
        while not done.search(seen):
            assert time.monotonic() < deadline, f"{command!r} did not finish; got {seen[-2000:]!r}"
            chunk = self.shell.read()
            assert chunk is not None, f"the console closed; got {seen[-2000:]!r}"
            seen += chunk
            if not chunk:
                time.sleep(0.02)
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace").replace("\r", ""))
        lines = text.split("\n")
        first = command.split("\n")[0]
        start = next((i + 1 for i, line in enumerate(lines) if first in line), 0)  # after the typed command
        out = [line for line in lines[start:] if "E''ND-" not in line]
        return "\n".join(out)

    @staticmethod
    def status(out: str) -> int:
        return int(re.findall(r"END-[0-9a-f]{8}-(\d+)", out)[-1])

    def close(self) -> None:
        self.shell.close()


def cell_run(lab: str, node: str | None, argv: list[str], caps=("net_admin", "net_raw"), timeout: float = 20):
    """Run argv as a process of the lab that is NOT in a console's PID and mount namespaces (as its daemons run),
    with a console's capabilities: the strongest position a student's code can reach inside the lab."""
    ns = naming.node_namespace(lab, node) if node else naming.fabric_namespace(lab)
    return procs.run_in_cell(argv, lab=lab, role="test:attack", namespace=ns, caps=caps, timeout=timeout)


def host_links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def link_names(ns: str) -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"] if ns is None else
                         ["nsenter", f"--net=/run/netns/{ns}", "ip", "-o", "link", "show"],
                         capture_output=True, text=True, check=True).stdout
    return {line.split(":", 2)[1].strip().split("@")[0] for line in out.splitlines()}


@pytest.fixture
def labs(deploy, isp_namespace):
    """(attacker, victim): two deployed labs with the same document."""
    attacker, victim = f"a{uuid.uuid4().hex[:6]}", f"v{uuid.uuid4().hex[:6]}"
    for lab in (attacker, victim):
        deploy(parse_document(seed(isp_namespace["bridge"])), lab)
    return attacker, victim


# ---------------------------------------------------------------------------------------------- ownership


def test_each_lab_owns_its_namespaces_through_a_user_namespace_of_its_own(labs):
    attacker, victim = labs
    initial = os.stat("/proc/self/ns/user").st_ino
    owners = {}
    for lab in labs:
        names = [n for n in os.listdir("/run/netns") if (naming.parse_namespace(n) or ("",))[0] == lab]
        assert len(names) == 4  # fabric, r1, h1, h2
        inodes = set()
        for name in names:
            fd = userns.owner_fd(f"/run/netns/{name}")
            inodes.add(os.fstat(fd).st_ino)
            os.close(fd)
        assert len(inodes) == 1 and initial not in inodes
        owners[lab] = inodes.pop()
    assert owners[attacker] != owners[victim]
    a, v = cell.get(attacker), cell.get(victim)
    assert a.slot != v.slot and not a.owns_host_uid(v.uid) and not v.owns_host_uid(a.uid)
    # the run dir is the agent's (others may pass through, not look), the cell dir the lab's own
    run, mine = naming.run_dir(attacker), cell.cell_dir(attacker)
    assert (os.stat(run).st_uid, os.stat(run).st_mode & 0o777) == (0, 0o711)
    assert (os.stat(mine).st_uid, os.stat(mine).st_mode & 0o777) == (a.uid, 0o700)
    for f in ("topology.json", "signatures.json", "limits.json"):
        st = os.stat(run / f)
        assert st.st_uid == 0 and st.st_mode & 0o077 == 0, f


def test_every_process_of_a_lab_runs_as_the_labs_uid_in_its_cgroup(labs):
    attacker, _ = labs
    a = cell.get(attacker)
    found = procs.find(attacker)
    roles = {p.role for p in found}
    assert {"dnsmasq:r1:eth0", "udhcpc:h2:eth0"} <= roles
    initial = os.stat("/proc/self/ns/user").st_ino
    for proc in found:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        uids = [int(x) for x in status.split("Uid:")[1].split()[:4]]
        assert all(a.owns_host_uid(u) for u in uids), (proc, uids)
        assert os.stat(f"/proc/{proc.pid}/ns/user").st_ino != initial
        assert re.search(r"NoNewPrivs:\s+1", status), proc
        # no capability in the host's user namespace: CapEff counts there only for the lab's namespace
        assert cgroups.membership(proc.pid) == (attacker, proc.node, proc.role)


# ---------------------------------------------------------------------------------------------- reaching out


@pytest.mark.parametrize("node", ["h1", "r1"])
def test_a_console_cannot_plant_or_move_links_into_the_host_or_another_lab(labs, node):
    attacker, victim = labs
    before_host, before_victim = host_links(), link_names(naming.node_namespace(victim, "h1"))
    c = Console(attacker, node)
    try:
        # by name: another lab's namespaces are not even visible, and /run/netns is empty in the console
        out = c.run(f"ip link add x1 type veth peer name y1 netns {naming.node_namespace(victim, 'h1')}")
        assert Console.status(out) != 0
        assert c.run("ls -A /run/netns /run/topolab/ | grep -v ':$' | grep -c .").split()[0] == "0"
        # by pid: pid 1 is the node's init, in the node; the peer lands in the node, not the host
        out = c.run("ip link add x2 type veth peer name y2 netns 1 && ip -o link show y2")
        assert "y2" in out
        c.run("ip link del x2")
    finally:
        c.close()
    assert host_links() == before_host
    assert link_names(naming.node_namespace(victim, "h1")) == before_victim


@pytest.mark.parametrize("node", ["h1", "r1"])
def test_a_lab_process_that_can_name_the_host_gets_eperm_for_it(labs, node):
    """Outside a console's PID namespace a lab process sees the host's pids and /run/netns: the kernel still
    refuses every namespace the lab does not own."""
    attacker, victim = labs
    before_host, before_victim = host_links(), link_names(naming.node_namespace(victim, "h1"))
    attempts = {
        "veth peer into netns 1": ["ip", "link", "add", "x3", "type", "veth", "peer", "name", "y3", "netns", "1"],
        "veth peer into the victim": ["ip", "link", "add", "x4", "type", "veth", "peer", "name", "y4", "netns",
                                      naming.node_namespace(victim, "h1")],
        "own eth0 into netns 1": ["ip", "link", "set", "eth0", "netns", "1"],
        "own eth0 into the victim": ["ip", "link", "set", "eth0", "netns", naming.node_namespace(victim, "h1")],
    }
    for what, argv in attempts.items():
        done = cell_run(attacker, node, argv)
        assert done.returncode != 0, what
        assert b"Operation not permitted" in done.stderr, (what, done.stderr)
    assert host_links() == before_host
    assert link_names(naming.node_namespace(victim, "h1")) == before_victim
    assert "eth0" in link_names(naming.node_namespace(attacker, node))


NETNSID_ATTACK = r"""
import socket, struct, sys
from pyroute2.netlink import NLM_F_REQUEST, NLM_F_ACK
from pyroute2.netlink.rtnl import RTM_SETLINK, RTM_DELLINK
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

target_name, action = sys.argv[1], sys.argv[2]
results = []
sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
sock.bind((0, 0))
for nsid in range(0, 8):
    msg = ifinfmsg()
    msg["family"] = 0
    msg["index"] = int(sys.argv[3])
    if action == "down":
        msg["flags"], msg["change"] = 0, 1
    msg["attrs"] = [("IFLA_TARGET_NETNSID", nsid)]
    msg["header"]["type"] = RTM_SETLINK if action == "down" else RTM_DELLINK
    msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK
    msg["header"]["sequence_number"] = nsid + 1
    msg.encode()
    sock.send(msg.data)
    reply = sock.recv(65536)
    error = struct.unpack("=i", reply[16:20])[0]
    results.append((nsid, error))
print(results)
"""


def test_a_lab_process_cannot_reach_host_interfaces_through_a_netnsid(labs, isp_namespace):
    """IFLA_TARGET_NETNSID names a namespace by an id the caller's namespace knows: the fabric of a lab with an
    uplink knows the host's. Setting a host link down or deleting it that way is refused."""
    attacker, _ = labs
    host_if = next(n for n in host_links() if n.startswith("tlisp"))  # the test's own ISP veth, up, in the host
    index = int(Path(f"/sys/class/net/{host_if}/ifindex").read_text())
    for where in (None, "r1"):  # the fabric (which holds the door to the host) and the router
        ns = naming.fabric_namespace(attacker) if where is None else naming.node_namespace(attacker, where)
        ids = subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "ip", "netns", "list-id"], capture_output=True,
                             text=True).stdout
        for action in ("down", "del"):
            done = cell_run(attacker, where, [sys.executable, "-c", NETNSID_ATTACK, host_if, action, str(index)])
            assert done.returncode == 0, done.stderr
            results = eval(done.stdout.decode())
            assert all(err != 0 for _nsid, err in results), (where, action, ids, results)
        assert Path(f"/sys/class/net/{host_if}/operstate").read_text().strip() in ("up", "lowerlayerdown", "unknown")
        assert host_if in host_links()


def test_a_lab_cannot_read_another_labs_files_or_signal_its_processes(labs):
    attacker, victim = labs
    victim_dnsmasq = procs.find(victim, "dnsmasq:r1:eth0")[0]
    victim_files = [naming.run_dir(victim) / "topology.json", cell.cell_dir(victim) / "dnsmasq-r1-eth0.log",
                    cell.cell_dir(victim) / "dnsmasq-r1-eth0.leases"]
    for path in victim_files:
        done = cell_run(attacker, "h1", ["cat", str(path)])
        assert done.returncode != 0 and b"Permission denied" in done.stderr, (path, done)
    done = cell_run(attacker, "h1", ["ls", str(naming.run_dir(victim))])
    assert done.returncode != 0
    for sig in ("-TERM", "-KILL"):
        done = cell_run(attacker, "h1", ["kill", sig, str(victim_dnsmasq.pid)])
        assert done.returncode != 0 and b"Operation not permitted" in done.stderr, done
    assert procs.inspect(victim_dnsmasq.pid) is not None
    # nor the agent's own files of the lab itself
    done = cell_run(attacker, "h1", ["sh", "-c", f"echo x > {naming.run_dir(attacker) / 'signatures.json'}"])
    assert done.returncode != 0
    # and a console sees no process but its own: kill -1 ends nothing else, of this lab or another
    c = Console(attacker, "h1")
    try:
        out = c.run("ps -e -o pid= | wc -l; kill -9 -1")
        assert int(out.split()[0]) <= 4  # init, bash, ps (and wc)
    finally:
        c.close()
    assert procs.inspect(victim_dnsmasq.pid) is not None
    assert procs.find(attacker, "dnsmasq:r1:eth0")  # the attacker's own DHCP server is still there too


def test_a_nodes_consoles_and_daemons_share_one_pid_namespace_and_tmp_of_the_node(labs):
    """One PID namespace, one /tmp and one hostname per node (its init's), shared by all its consoles and its
    daemons: `ps` in r1 shows r1's dnsmasq and the other console's processes, nothing of h1, the host or another
    lab; `kill -9 -1` in r1 ends r1's processes only; h1 does not see r1's /tmp."""
    attacker, victim = labs
    victim_dnsmasq = procs.find(victim, "dnsmasq:r1:eth0")[0]
    own_dnsmasq = procs.find(attacker, "dnsmasq:r1:eth0")[0]
    first, second, other = Console(attacker, "r1"), Console(attacker, "r1"), Console(attacker, "h1")
    try:
        first.run("echo from-the-first > /tmp/shared; sleep 300 &")
        assert second.run("cat /tmp/shared").split()[0] == "from-the-first"
        assert second.run("hostname").split()[0] == "r1"
        seen = second.run("ps -e -o comm=").split()
        assert "dnsmasq" in seen and "sleep" in seen, seen
        assert seen.count("bash") == 2, seen  # the two consoles of r1; not h1's
        assert len(seen) <= 8, seen  # init, dnsmasq, two shells, sleep, ps (and the marker's echo)
        assert "No such file" in other.run("cat /tmp/shared")
        assert "dnsmasq" not in other.run("ps -e -o comm=").split()
        # the init is pid 1 of the node, and holds the node's network namespace (`netns 1` is the node)
        init = procs.find(attacker, procs.init_role("r1"))
        assert len(init) == 1 and init[0].node == "r1"
        assert os.stat(f"/proc/{init[0].pid}/ns/pid").st_ino == os.stat(f"/proc/{own_dnsmasq.pid}/ns/pid").st_ino
        second.run("kill -9 -1")
        deadline = time.monotonic() + 5
        while procs.inspect(own_dnsmasq.pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert procs.inspect(own_dnsmasq.pid) is None  # r1's own daemon: the student's to end
        assert first.shell.process.wait(timeout=5) is not None  # the other console of r1 ended too
        assert second.run("echo still-here").split()[0] == "still-here"  # kill -1 spares the caller
        second.run("kill 1; kill -HUP 1; kill -9 1")  # the node's init ignores its own node's signals
        assert other.run("echo h1-lives").split()[0] == "h1-lives"  # and every other node
    finally:
        for c in (first, second, other):
            c.close()
    assert procs.inspect(victim_dnsmasq.pid) is not None  # another lab's daemon lives on
    assert procs.find(attacker, procs.init_role("r1")), "kill -1 never reaches the node's init"


def mq_open(c: Console, name: str, create: bool = False) -> int:
    """mq_open(3) of a POSIX message queue in console `c`: its descriptor, or -1."""
    flags = "os.O_CREAT | os.O_RDWR" if create else "os.O_RDONLY"
    code = f"import ctypes, os; print(ctypes.CDLL('librt.so.1').mq_open(b'{name}', {flags}, 0o666, None))"
    return int(c.run(f'python3 -c "{code}"').split()[0])


def test_a_nodes_ipc_and_world_writable_dirs_are_its_own(labs):
    """The host's world-writable places are the node's own: a file a console writes in /tmp, /var/tmp, /dev/shm or
    /run/lock is seen by the node's other console, never by the host, another node or another lab (nor does it
    fill the host's disk); a System V shared memory segment and a POSIX message queue likewise (own IPC
    namespace, joined by the node's consoles)."""
    attacker, victim = labs
    marker = uuid.uuid4().hex[:8]
    first, second, other, foreign = (Console(attacker, "r1"), Console(attacker, "r1"), Console(attacker, "h1"),
                                     Console(victim, "h1"))
    try:
        for where in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock"):
            path = f"{where}/probe-{marker}"
            assert Console.status(first.run(f"echo {marker} > {path}")) == 0, where
            assert marker in second.run(f"cat {path}"), where
            assert "No such file" in other.run(f"cat {path}"), where
            assert "No such file" in foreign.run(f"cat {path}"), where
            assert not os.path.exists(path), f"{path} reached the host"
        made = first.run("ipcmk -M 4096 -p 0666")
        shmid = re.search(r"Shared memory id: (\d+)", made)
        assert shmid, made
        assert f" {shmid.group(1)} " in f" {second.run('ipcs -m')} ".replace("\n", " ")
        for outsider in (other, foreign):
            assert "0x" not in outsider.run("ipcs -m | grep -v '^key'"), "another node sees the segment"
        host = subprocess.run(["ipcs", "-m", "-i", shmid.group(1)], capture_output=True, text=True)
        assert host.returncode != 0 or "0666" not in host.stdout, host.stdout  # not the host's segment either
        queue = f"/probe-{marker}"
        assert mq_open(first, queue, create=True) >= 0
        assert mq_open(second, queue) >= 0
        assert mq_open(other, queue) == -1 and mq_open(foreign, queue) == -1
    finally:
        for c in (first, second, other, foreign):
            c.close()


def test_a_forged_process_tag_changes_nothing_for_the_victims_redeploy(deploy, isp_namespace):
    attacker, victim = f"a{uuid.uuid4().hex[:6]}", f"v{uuid.uuid4().hex[:6]}"
    deploy(parse_document(seed(isp_namespace["bridge"])), attacker)
    doc = parse_document(seed(isp_namespace["bridge"], vm=True))
    deploy(doc, victim)
    assert procs.find(victim, qemu.role("vm1"))
    qemu.stop_vm(victim, "vm1")
    c = Console(attacker, "h1")
    try:
        c.run(f"TOPOLAB_LAB={victim} TOPOLAB_ROLE={qemu.role('vm1')} sleep 1000 &")
        engine.up(doc, victim)  # the VM's node is rebuilt: it was stopped behind the engine's back
    finally:
        c.close()
    running = procs.find(victim, qemu.role("vm1"))
    assert running and running[0].argv[0].startswith("qemu-system"), running
    assert all(p.lab == attacker for p in procs.find() if "sleep" in p.argv[:1])


# ---------------------------------------------------------------------------------------------- limits


def _ping_loss(lab: str, count: int = 20) -> float:
    out = subprocess.run(["nsenter", f"--net=/run/netns/{naming.node_namespace(lab, 'h1')}", "ping", "-n", "-q",
                          "-c", str(count), "-i", "0.1", "-W", "1", "10.0.1.254"], capture_output=True, text=True)
    m = re.search(r"(\d+(?:\.\d+)?)% packet loss", out.stdout)
    return float(m.group(1)) if m else 100.0


def test_a_fork_bomb_and_a_memory_hog_stop_at_their_nodes_limits(deploy, isp_namespace):
    attacker, victim = f"a{uuid.uuid4().hex[:6]}", f"v{uuid.uuid4().hex[:6]}"
    deploy(parse_document(seed(isp_namespace["bridge"], limits={"pids": 64, "memory": "96M", "cpu": 0.5})),
           attacker)
    deploy(parse_document(seed(isp_namespace["bridge"])), victim)
    c = Console(attacker, "h1")
    try:
        # a fork bomb: the node's pids limit stops it; the victim's ping and the host keep answering
        c.shell.write(b"bomb() { bomb | bomb & }; bomb\n")
        time.sleep(2)
        usage = cgroups.node_usage(attacker, "h1")
        assert usage["pids"] <= 64, usage
        started = time.monotonic()
        loss = _ping_loss(victim)
        host_latency = time.monotonic()
        subprocess.run(["true"], check=True)
        host_latency = time.monotonic() - host_latency
        print(f"during the fork bomb: attacker h1 pids {usage['pids']} of 64; victim ping loss {loss}% "
              f"({time.monotonic() - started:.1f} s for 20 pings); host fork+exec {host_latency * 1000:.1f} ms")
        assert loss == 0.0
    finally:
        c.close()
    assert procs.find(attacker, c.shell.session and console.role(c.shell.session)) == []
    c = Console(attacker, "h1")
    try:
        # a memory hog: killed inside its node, by its node's limit
        out = c.run("python3 -c 'a = bytearray(400 << 20); print(len(a))'; echo rc=$?", timeout=60)
        assert "rc=137" in out, out
        assert "419430400" not in out
    finally:
        c.close()
    assert _ping_loss(victim, 5) == 0.0
    usage = engine.status(attacker).as_dict()["nodes"]["r1"]["usage"]  # r1 runs dnsmasq: its cgroup's figures
    assert usage["pids"] >= 1 and usage["memory"] > 0, usage


def test_limits_in_the_document_are_checked_at_their_path():
    from netops.errors import TopologyError

    with pytest.raises(TopologyError) as err:
        parse_document(seed("br0", limits={"memory": "lots", "pids": 3, "cpu": "fast", "disk": 1}))
    text = str(err.value)
    for path in ("nodes.h1.limits.memory", "nodes.h1.limits.pids", "nodes.h1.limits.cpu", "nodes.h1.limits.disk"):
        assert path in text, text


# ---------------------------------------------------------------------------------------------- what keeps working


def test_a_network_engineers_commands_work_inside_the_node(labs, isp_namespace):
    attacker, _ = labs
    c = Console(attacker, "r1")
    try:
        for command in ("ip addr add 192.0.2.1/32 dev lo", "ip route add 198.51.100.0/24 via 203.0.113.1",
                        "ip link set eth0 down", "ip link set eth0 up", "nft add table inet t1",
                        "nft add chain inet t1 c1", "sysctl -w net.ipv4.ip_forward=1",
                        "ping -c 1 -W 2 203.0.113.1", "timeout 5 tcpdump -n -c 1 -i eth1 icmp & sleep 1; "
                        "ping -c 2 -W 2 203.0.113.1 >/dev/null; wait"):
            out = c.run(command, timeout=20)
            assert Console.status(out) == 0, (command, out)
        assert "1 packet captured" in c.run("timeout 5 tcpdump -n -c 1 -i eth1 icmp 2>&1 & sleep 1; "
                                            "ping -c 2 -W 2 203.0.113.1 >/dev/null; wait", timeout=20)
        assert "198.51.100.0/24" in c.run("ip route")
    finally:
        c.close()
    # the lab's own services: h2's lease from r1's dnsmasq, and h1 through r1's SNAT to the ISP
    out = subprocess.run(["nsenter", f"--net=/run/netns/{naming.node_namespace(attacker, 'h2')}", "ip", "-4", "-o",
                          "addr", "show", "eth0"], capture_output=True, text=True).stdout
    assert re.search(r"inet 10\.0\.1\.(1[0-4]\d|150)/24", out), out
    done = subprocess.run(["nsenter", f"--net=/run/netns/{naming.node_namespace(attacker, 'h1')}", "ping", "-c", "1",
                           "-W", "2", "203.0.113.1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
