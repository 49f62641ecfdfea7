"""A simulated lab host for the tests: a real agent (Celery worker) as host `name`, on a private queue of its own
(the session's worker never takes its tasks; the worker adds `agent.<name>` itself), heartbeating fast. With an
`underlay` (support.Underlay) it is a host of a lab across hosts on this one kernel: its own name tag
(TOPOLAB_HOST_TAG) and underlay namespace. Started, stopped and SIGKILLed by its process group.

Used by tests/webapp/test_hosts.py (heartbeats, down hosts) and test_multihost*.py (labs across hosts)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

BEAT, DOWN_AFTER = 0.5, 3.0


class SimHost:
    def __init__(self, spawn: Any, env: dict, log_path: Any, name: str, underlay: Any = None, *,
                 concurrency: int = 2, beat: float = BEAT, down_after: float = DOWN_AFTER):
        self.queue = f"agent-sim-{uuid.uuid4().hex[:6]}"
        self.env = {**env, "TOPOLAB_HOST": name, "TOPOLAB_AGENT_QUEUE": self.queue,
                    "TOPOLAB_HEARTBEAT_INTERVAL": str(beat), "TOPOLAB_HOST_DOWN_AFTER": str(down_after)}
        if underlay is not None:
            self.env.update({"TOPOLAB_HOST_TAG": name, "TOPOLAB_UNDERLAY_NETNS": underlay.underlay[name],
                             "TOPOLAB_UNDERLAY_ADDRESS": underlay.address[name]})
        self.spawn, self.log_path, self.name, self.concurrency = spawn, log_path, name, concurrency
        self.proc: subprocess.Popen | None = None
        self.stream: subprocess.Popen | None = None
        self.node = ""  # its Celery node name, new at each start

    def start(self) -> None:
        from webapp.celery import app

        self.node = f"{self.queue}-{uuid.uuid4().hex[:4]}@localhost"
        self.proc = self.spawn([
            sys.executable, "-W", "ignore::celery.platforms.SecurityWarning", "-m", "celery", "-A", "webapp",
            "worker", "-Q", self.queue, "-n", self.node, "--concurrency", str(self.concurrency),
            "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
            log_path=self.log_path, env=self.env, new_session=True)
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[self.node], timeout=0.5):
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, self.log_path.read_text()[-3000:]

    def start_stream_agent(self) -> None:
        """This host's stream agent (consoles, captures), as `python -m webapp.agent` with the host's settings."""
        self.stream = self.spawn([sys.executable, "-m", "webapp.agent"], log_path=self.log_path.with_suffix(".stream"),
                                 env=self.env, new_session=True)

    def kill(self) -> None:
        """SIGKILL the worker's process group (its agent stops answering, as a host that died)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        for proc in (self.stream, self.proc):
            if proc is None:
                continue
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60)


def inventory() -> dict:
    """What the kernel holds that a lab could leave: namespaces, root links, the nft ruleset."""
    return {
        "namespaces": sorted(n.split()[0] for n in sh("ip", "netns", "list").stdout.splitlines() if n.strip()),
        "links": sorted(line.split(":", 2)[1].strip() for line in sh("ip", "-o", "link").stdout.splitlines()),
        "nft": sh("nft", "list", "ruleset").stdout,
    }


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout} s")


def up(*names: str) -> bool:
    """Whether every host `names` is up (its heartbeat fresh)."""
    from webapp.hosts.models import Host

    hosts = {h.name: h for h in Host.objects.filter(name__in=names)}
    return all(n in hosts and hosts[n].up for n in names)


@contextmanager
def simulated_hosts(spawn: Any, env: dict, tmpdir: Any, names: list[str]) -> Iterator[tuple[Any, dict[str, SimHost]]]:
    """Hosts `names` on a test underlay (support.Underlay), each with its agent and stream agent running and
    announced: (underlay, {name: SimHost}); stopped, their underlay and Host rows removed after."""
    from support import Underlay

    from webapp.hosts.models import Host

    underlay = Underlay(names)
    hosts = {n: SimHost(spawn, env, tmpdir / f"sim-{n}.log", n, underlay) for n in names}
    try:
        for host in hosts.values():
            host.start()
            host.start_stream_agent()
        wait_for(lambda: up(*names), 30, "the simulated hosts announced themselves")
        yield underlay, hosts
    finally:
        for host in hosts.values():
            host.stop()
        underlay.remove()
        Host.objects.filter(name__in=names).delete()
