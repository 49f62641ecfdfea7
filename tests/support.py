"""Helpers shared by test modules (pytest puts tests/ on sys.path: `pythonpath` in pyproject.toml).

Fixtures live in the conftest files; plain functions and the kernel-test lock live here, once.
"""
from __future__ import annotations

import fcntl
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# The chaos suite (tests/chaos): `make chaos` sets TOPOLAB_CHAOS_FULL=1 for its full counts.
CHAOS_FULL = os.environ.get("TOPOLAB_CHAOS_FULL") == "1"


def chaos_count(name: str, fast: int, full: int) -> int:
    """A chaos part's count: TOPOLAB_CHAOS_<NAME> if set, else `full` under `make chaos`, else `fast`."""
    return int(os.environ.get(f"TOPOLAB_CHAOS_{name.upper()}", full if CHAOS_FULL else fast))


KERNEL_LOCK_PATH = "/run/topolab-kernel-tests.lock"


class KernelLock:
    """The machine-wide lock every test that makes kernel objects holds, so test runs of engineers sharing a
    machine never meet (and the inventory guard of tests/kernel sees only its own objects).

    Re-entrant within this process: a kernel test session holds it for its whole length, and a webapp or e2e test
    of the same run that deploys takes it again without deadlocking on its own flock."""

    def __init__(self, path: str = KERNEL_LOCK_PATH) -> None:
        self.path = path
        self._fd: int | None = None
        self._depth = 0
        self._mutex = threading.Lock()

    def acquire(self) -> None:
        with self._mutex:
            if self._depth == 0:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._fd = fd
            self._depth += 1

    def release(self) -> None:
        with self._mutex:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None

    @contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


KERNEL_LOCK = KernelLock()


def lab_namespaces(lab_id: str) -> list[str]:
    """The namespaces of lab `lab_id` as the kernel lists them (`ip netns list`), not as netops believes."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n == f"tl-{lab_id}" or n.startswith(f"tl-{lab_id}-")]


def wait_run(run_id: int, timeout: float = 120) -> Any:
    """The Run `run_id` once it is no longer queued or running (a real agent works on it); fails after `timeout`."""
    from webapp.runs.models import Run

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if not run.active:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {Run.objects.get(pk=run_id).status} after {timeout} s")


def read_until(read, needle: bytes, timeout: float = 10.0) -> bytes:
    """Collect output from read() (b"" = nothing yet, None = closed) until `needle` shows up."""
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not seen within {timeout} s; got {seen[-2000:]!r}")
        chunk = read()
        if chunk is None:
            raise AssertionError(f"closed before {needle!r}; got {seen[-2000:]!r}")
        if not chunk:
            time.sleep(0.02)
        seen += chunk
    return seen


class CellLab:
    """Namespaces made in a lab cell by hand (no engine): for tests of what runs in a cell."""

    def __init__(self, lab: str) -> None:
        from netops import cell

        self.lab = lab
        self.cell = cell.allocate(lab)
        cell.prepare_dirs(self.cell)
        self.namespaces: list[str] = []
        self.fabric = self.ns(None)

    def ns(self, node: str | None) -> str:
        from netops import naming
        from netops.kernel import netns

        name = naming.node_namespace(self.lab, node) if node else naming.fabric_namespace(self.lab)
        with netns.Namespaces(cell=netns.CellNamespaces(self.cell.ids(), list(self.namespaces))) as spaces:
            spaces.create(name, lambda: None)
        self.namespaces.append(name)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        return name

    def remove(self) -> None:
        from netops import cell, naming, procs
        from netops.kernel import cgroups, netns

        procs.kill_all(self.lab)
        for name in reversed(self.namespaces):
            netns.delete(name)
        cgroups.remove(self.lab)
        subprocess.run(["rm", "-rf", "--one-file-system", str(naming.run_dir(self.lab))], check=False)
        cell.release(self.lab)


def lab_processes(lab: str) -> list:
    """The lab's processes but its nodes' inits (pid 1 of each node's PID namespace: they live as long as their
    node, from the first console or daemon on; destroy ends them)."""
    from netops import procs

    return [p for p in procs.find(lab) if p.role != procs.init_role(p.node)]


# ---------------------------------------------------------------------------------------------- simulated hosts

UNDERLAY_NET = "198.51.100"  # TEST-NET-2, only inside the tests' own namespaces


def netns_exec(ns: str, argv: list[str], *, check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "--", *argv], capture_output=True, text=True,
                          timeout=timeout, check=check)


class Underlay:
    """Simulated lab hosts' network: an underlay bridge in a namespace of the test's, and one underlay namespace
    per host on it with a TEST-NET-2 address (the agents' VXLAN sockets live there: TOPOLAB_UNDERLAY_NETNS)."""

    def __init__(self, names: list[str]) -> None:
        import uuid

        tag = uuid.uuid4().hex[:6]
        self.switch = f"tltest-ulsw{tag}"
        self.underlay: dict[str, str] = {}  # host -> its underlay namespace
        self.address: dict[str, str] = {}  # host -> its underlay address
        subprocess.run(["ip", "netns", "add", self.switch], check=True)
        try:
            netns_exec(self.switch, ["ip", "link", "add", "ul0", "type", "bridge"], check=True)
            netns_exec(self.switch, ["ip", "link", "set", "ul0", "up"], check=True)
            for i, host in enumerate(names, start=1):
                ns = f"tltest-ul{host}{tag}"
                subprocess.run(["ip", "netns", "add", ns], check=True)
                self.underlay[host], self.address[host] = ns, f"{UNDERLAY_NET}.{i}"
                netns_exec(self.switch, ["ip", "link", "add", f"p{host}", "type", "veth", "peer", "name", "eth0",
                                         "netns", ns], check=True)
                netns_exec(self.switch, ["ip", "link", "set", f"p{host}", "master", "ul0", "up"], check=True)
                for argv in (["ip", "addr", "add", f"{self.address[host]}/24", "dev", "eth0"],
                             ["ip", "link", "set", "eth0", "up"], ["ip", "link", "set", "lo", "up"]):
                    netns_exec(ns, argv, check=True)
        except BaseException:
            self.remove()
            raise

    def remove(self) -> None:
        for ns in [*self.underlay.values(), self.switch]:
            subprocess.run(["ip", "netns", "del", ns], check=False)


class UdpCapture:
    """tcpdump of VXLAN (UDP 4789) on an underlay namespace's eth0, started and stopped by its pid."""

    def __init__(self, ns: str, out) -> None:
        self.out, self.err = out, out.with_suffix(".err")
        with open(out, "w") as stdout, open(self.err, "w") as stderr:
            self.proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", "--", "tcpdump", "-n", "-l", "-i",
                                          "eth0", "udp", "port", "4789"], stdout=stdout, stderr=stderr)
        deadline = time.monotonic() + 10
        while "listening on" not in self.err.read_text():  # it captures from then on
            assert self.proc.poll() is None and time.monotonic() < deadline, self.err.read_text()
            time.sleep(0.05)

    def stop(self) -> str:
        time.sleep(0.5)  # the last lines out
        self.proc.terminate()
        self.proc.wait(timeout=10)
        return self.out.read_text()
# ---------------------------------------------------------------------------------------------- process usage


def usage(pids: list[int]) -> tuple[int, int]:
    """(RSS in KiB, open file descriptors) summed over `pids` (the chaos cycles, benchmarks/soak.py)."""
    rss = fds = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            rss += int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))
        fds += len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds


def fd_targets(pids: list[int]) -> list[str]:
    found = []
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                found.append(re.sub(r"\[\d+\]", "[]", os.readlink(f"/proc/{pid}/fd/{fd}")))
            except OSError:
                continue
    return sorted(found)


def process_group(pgid: int) -> list[int]:
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.getpgid(int(pid)) == pgid:
                    pids.append(int(pid))
            except ProcessLookupError:
                continue
    return pids


# ---------------------------------------------------------------------------------------------- kernel inventory

WATCHED_PROCESSES = re.compile(r"^(dnsmasq|qemu-system.*|tcpdump|udhcpc|zebra|ospfd|ospf6d|bgpd|staticd|watchfrr|vtysh)$")


def _namespaces() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


def _root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "-d", "link", "show"], capture_output=True, text=True, check=True).stdout
    links = set()
    for line in out.splitlines():
        name = line.split(":", 2)[1].strip().split("@")[0]
        alias = re.search(r" alias (\S+)", line)
        links.add(f"{name} alias={alias.group(1) if alias else ''}")
    return links


def _ruleset() -> str:
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout


def _processes() -> set[str]:
    found = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1: stat.rindex(")")]
        state = stat[stat.rindex(")") + 2]
        if WATCHED_PROCESSES.match(comm) and state not in "ZX":
            found.add(f"{comm}[{pid}]")
    return found


def _frr_runstate() -> set[str]:
    """FRR's run state dir: one entry per FRR pathspace (netops.frr), besides what FRR itself keeps there."""
    try:
        return set(os.listdir("/var/run/frr"))
    except FileNotFoundError:
        return set()


def _cgroups() -> set[str]:
    """Lab cgroups (every hierarchy) and the uid ranges handed out to labs."""
    from netops import cell
    from netops.kernel import cgroups

    found = {f"cgroup {lab}" for lab in cgroups.labs()}
    found |= {f"uid range {slot} of {lab}" for lab, slot in cell.allocated_keys().items()}
    # simulated hosts (netops.naming TOPOLAB_HOST_TAG) keep their cgroups in trees of their own: topolab-<tag>
    for parent in {cgroups.ROOT, cgroups.ROOT / "pids"}:
        try:
            found |= {f"cgroup tree {e.name}" for e in os.scandir(parent)
                      if e.is_dir() and e.name.startswith(cgroups.TOP + "-")}
        except FileNotFoundError:
            pass
    return found


def _user_namespaces() -> set[str]:
    """User namespaces other than the host's that some live process is in (a leaked cell keeps one alive; a zombie
    holds its credentials until PID 1 reaps it, which on these machines may be much later: it is dead)."""
    initial = os.stat("/proc/self/ns/user").st_ino
    found = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                        continue
                ino = os.stat(f"/proc/{pid}/ns/user").st_ino
            except OSError:
                continue
            if ino != initial:
                found.add(f"userns {ino}")
    return found


def kernel_inventory() -> dict[str, object]:
    """What a test compares before and after: a test (or a lab it deployed and destroyed) must leave it as it found it."""
    return {"namespaces": _namespaces(), "root links": _root_links(), "nft ruleset": _ruleset(),
            "processes": _processes(), "cgroups and uid ranges": _cgroups(), "user namespaces": _user_namespaces(),
            "FRR run state": _frr_runstate()}
