"""Helpers shared by test modules (pytest puts tests/ on sys.path: `pythonpath` in pyproject.toml).

Fixtures live in the conftest files; plain functions and the kernel-test lock live here, once.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
