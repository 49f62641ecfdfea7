"""Helpers of the deploy-pipeline tests (tests/webapp/test_deploy_pipeline.py) and of the chaos suite
(tests/chaos): the seed lab's document, a host's snapshot, an ISP namespace behind a host bridge, a WebSocket
watcher of a lab's events, and a Celery agent that a test starts, SIGKILLs and restarts (OwnAgent).
"""
from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from django.test import Client
from support import kernel_inventory

from webapp.runs.models import Run


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60)


def ns_exec(ns: str, *argv: str) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", ns, *argv, check=False)


def host_snapshot() -> dict:
    return {
        "namespaces": sorted(sh("ip", "netns", "list").stdout.split("\n")),
        "links": sorted(line.split(":", 2)[1].strip() for line in sh("ip", "-o", "link").stdout.splitlines()),
        "nft": sh("nft", "list", "ruleset").stdout,
    }


@contextmanager
def isp_namespace(address: str = "203.0.113.1/24", extra: str | None = None) -> Iterator[dict[str, str]]:
    """An "ISP" namespace at `address` behind a new host bridge, with NO route back to a lab's 10.0.1.0/24; with
    `extra`, one more address on its loopback (an address only this ISP answers). Removed afterwards."""
    tag = uuid.uuid4().hex[:6]
    ns, bridge, outer = f"tltest-isp{tag}", f"tlbr{tag}", f"tlisp{tag}"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", bridge, "type", "bridge")
        sh("ip", "link", "set", bridge, "up")
        sh("ip", "link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", outer, "master", bridge, "up")
        ns_exec(ns, "ip", "addr", "add", address, "dev", "eth0")
        ns_exec(ns, "ip", "link", "set", "eth0", "up")
        ns_exec(ns, "ip", "link", "set", "lo", "up")
        if extra:
            ns_exec(ns, "ip", "addr", "add", extra, "dev", "lo")
        yield {"namespace": ns, "bridge": bridge}
    finally:
        sh("ip", "link", "del", outer, check=False)
        sh("ip", "link", "del", bridge, check=False)
        sh("ip", "netns", "del", ns, check=False)


class Watcher:
    """A real WebSocket client (the ASGI app, the test Redis) in its own thread, collecting a lab's events."""

    def __init__(self, user, lab_pk: int):
        from channels.testing import WebsocketCommunicator  # noqa: F401

        client = Client()
        client.force_login(user)
        self.cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
        self.lab_pk = lab_pk
        self.events: list[dict] = []
        self.received_at: list[float] = []
        self.inbox: queue.Queue = queue.Queue()
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Watcher:
        self.thread.start()
        assert self.ready.wait(15), "the WebSocket did not connect"
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)

    async def _run(self) -> None:
        from channels.testing import WebsocketCommunicator

        from webapp.asgi import application

        comm = WebsocketCommunicator(application, f"/ws/labs/{self.lab_pk}/", headers=[
            (b"origin", b"http://testserver"), (b"host", b"testserver"), (b"cookie", self.cookie)])
        connected, _ = await comm.connect(timeout=10)
        assert connected
        snapshot = await comm.receive_json_from(timeout=10)
        await comm.send_json_to({"type": "resume", "after": snapshot["seq"]})
        self.ready.set()
        while not self.stop.is_set():
            # receive_nothing polls without cancelling the app (a receive timeout would cancel the consumer).
            if await comm.receive_nothing(timeout=0.1, interval=0.005):
                continue
            event = await comm.receive_json_from()
            self.received_at.append(time.time())
            self.events.append(event)
            self.inbox.put(event)
        await comm.disconnect()

    def wait_for(self, predicate, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.inbox.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                logs = "\n".join(p.read_text()[-3000:] for p in WORKER_LOGS if p.exists())
                raise AssertionError(f"no matching event within {timeout} s; last: {self.events[-5:]}\n{logs}") \
                    from None
            if predicate(event):
                return event

    def dump(self) -> str:
        return "\n".join(str(e) for e in self.events[-20:])

    def run_end(self, run_id: int, timeout: float = 120) -> dict:
        return self.wait_for(lambda e: e.get("run") == run_id and e["type"] in ("run.finished", "run.failed"),
                             timeout)


WORKER_LOGS: list = []  # log files of the agents in use, shown when a run does not end


def wait_run(run_id: int, timeout: float = 120) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if run.status in ("succeeded", "failed"):
            return run
        time.sleep(0.2)
    logs = "\n".join(p.read_text()[-4000:] for p in WORKER_LOGS if p.exists())
    raise AssertionError(f"run {run_id} still {Run.objects.get(pk=run_id).status} after {timeout} s\n{logs}")


def seed_document(isp_bridge: str, *, vm: bool) -> dict:
    nodes = {
        "r1": {"kind": "router",
               "interfaces": {"eth0": {"address": "10.0.1.254/24", "dhcp_server": {"range": "10.0.1.100-10.0.1.150"}},
                              "eth1": {"address": "203.0.113.2/24"}},
               "routes": [{"to": "default", "via": "203.0.113.1"}],
               "nat": {"masquerade": ["eth1"]}},
        "br-in": {"kind": "bridge"},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}},
               "routes": [{"to": "default", "via": "10.0.1.254"}]},
        "h2": {"kind": "host", "interfaces": {"eth0": {"address": "dhcp", "mac": "52:54:00:00:00:02"}}},
        "wan": {"kind": "external", "bridge": isp_bridge},
    }
    links = [{"endpoints": ["r1:eth0", "br-in"]}, {"endpoints": ["h1:eth0", "br-in"]},
             {"endpoints": ["h2:eth0", "br-in"]}, {"endpoints": ["r1:eth1", "wan"]}]
    if vm:
        nodes["vm1"] = {"kind": "vm", "image": "tiny", "memory": 128,
                        "interfaces": {"eth0": {"address": "dhcp", "mac": "52:54:00:aa:bb:cc"}}}
        links.append({"endpoints": ["vm1:eth0", "br-in"]})
    return {"version": 1, "name": "seed-lab", "nodes": nodes, "links": links}


def vm_supported() -> bool:
    try:
        from netops import images

        images.get_image("tiny")
    except Exception:  # noqa: BLE001 - no image library or no image: leave the VM out
        return False
    return True


def hosts_document(count: int) -> dict:
    nodes = {"sw": {"kind": "bridge"}}
    links = []
    for i in range(1, count + 1):
        nodes[f"h{i}"] = {"kind": "host", "interfaces": {"eth0": {"address": f"10.0.{i // 250}.{i % 250 + 1}/16"}}}
        links.append({"endpoints": [f"h{i}:eth0", "sw"]})
    return {"version": 1, "name": f"hosts{count}", "nodes": nodes, "links": links}


class OwnAgent:
    """A Celery agent this test starts, SIGKILLs and restarts, on a queue of its own (so the session's
    celery_worker fixture, if running, cannot take its tasks)."""

    def __init__(self, spawn, env: dict, log_path, queue_name: str, argv0: list[str] | None = None):
        self.spawn, self.env, self.log_path, self.queue = spawn, env, log_path, queue_name
        self.argv0 = argv0 or ["-m", "celery"]  # or a script that starts Celery (tests/chaos/kill_agent.py)
        self.proc: subprocess.Popen | None = None
        self.generation = 0

    def start(self) -> None:
        from webapp.celery import app

        self.generation += 1
        node = f"{self.queue}-{self.generation}@localhost"
        self.proc = self.spawn([
            sys.executable, "-W", "ignore::celery.platforms.SecurityWarning", *self.argv0, "-A", "webapp",
            "worker", "-Q", self.queue, "-n", node, "--concurrency", "1", "--loglevel", "INFO",
            "--without-gossip", "--without-mingle"], log_path=self.log_path, env=self.env, new_session=True)
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[node], timeout=0.5):
            assert self.proc.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, self.log_path.read_text()

    def kill(self) -> None:
        """SIGKILL the worker and its pool (the process group this test started), as a crash would."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


SEED = Path(__file__).resolve().parents[1] / "examples" / "seed-lab.yaml"


def seed_lab(bridge: str, *, vm: bool) -> dict:
    """examples/seed-lab.yaml as it is, its `wan` on the test ISP's bridge (in place of br-ex); without vm1 unless
    `vm`."""
    doc = yaml.safe_load(SEED.read_text())
    doc["nodes"]["wan"]["bridge"] = bridge
    if not vm:
        del doc["nodes"]["vm1"]
        doc["links"] = [link for link in doc["links"] if "vm1:eth0" not in link["endpoints"]]
    return doc


def inventory(run_dir: Path) -> dict[str, object]:
    """support.kernel_inventory() and the files under an agent's run dir."""
    found = kernel_inventory()
    found["files under the run dir"] = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*")) \
        if run_dir.exists() else []
    return found


def leaks(before: dict, after: dict) -> list[str]:
    """What differs between two inventories, one line per kind of object."""
    out = []
    for key, b in before.items():
        a = after[key]
        if isinstance(b, set):
            if a - b:
                out.append(f"{key} left behind: {sorted(a - b)}")
            if b - a:
                out.append(f"{key} gone that existed before: {sorted(b - a)}")
        elif isinstance(b, list):
            if a != b:
                out.append(f"{key}: left {sorted(set(a) - set(b))}, gone {sorted(set(b) - set(a))}")
        elif a != b:
            out.append(f"{key} changed:\n--- before\n{b}\n--- after\n{a}")
    return out
