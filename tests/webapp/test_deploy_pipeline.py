"""Deploy and destroy through the API with the real Redis and a real Celery agent (root), events over a real
WebSocket, and the result checked in the kernel (ping, lease), never only in our own bookkeeping.

The tests take /run/topolab-kernel-tests.lock (as tests/kernel does) so that comparing the host's namespaces,
links and nft ruleset before and after is not disturbed by another engineer's kernel tests.
"""
from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient
from support import lab_namespaces

from webapp.accounts.models import Profile, Role
from webapp.labs.models import Lab
from webapp.runs.models import Run, RunEvent
from webapp.runs.services import WORKER_STOPPED

pytestmark = [pytest.mark.webapp, pytest.mark.kernel, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

if os.geteuid() != 0:
    pytest.skip("the agent needs root", allow_module_level=True)


# ---------------------------------------------------------------------------------------------- helpers


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


@pytest.fixture
def owner():
    return get_user_model().objects.create_user(f"olivia{uuid.uuid4().hex[:6]}", password="x-correct-horse")


@pytest.fixture
def api(owner) -> APIClient:
    client = APIClient()
    client.force_authenticate(owner)
    return client


@pytest.fixture
def isp(settings, owner):
    """An "ISP" namespace at 203.0.113.1/24 behind a host bridge, with NO route back to the lab's 10.0.1.0/24.
    The operator allows labs on that bridge, and the owner is an instructor (who may use allowed bridges)."""
    tag = uuid.uuid4().hex[:6]
    ns, bridge, outer = f"tltest-isp{tag}", f"tlbr{tag}", f"tlisp{tag}"
    settings.TOPOLAB_UPLINK_BRIDGES = bridge
    Profile.objects.create(user=owner, role=Role.INSTRUCTOR)
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", bridge, "type", "bridge")
        sh("ip", "link", "set", bridge, "up")
        sh("ip", "link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", outer, "master", bridge, "up")
        ns_exec(ns, "ip", "addr", "add", "203.0.113.1/24", "dev", "eth0")
        ns_exec(ns, "ip", "link", "set", "eth0", "up")
        ns_exec(ns, "ip", "link", "set", "lo", "up")
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


@pytest.fixture(autouse=True)
def _worker_logs(test_tmpdir):
    WORKER_LOGS[:] = [test_tmpdir / "celery-worker.log"]


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


# ---------------------------------------------------------------------------------------------- tests


def test_seed_lab_deploys_streams_events_works_in_the_kernel_and_destroys_clean(
        celery_worker, kernel_lock, isp, owner, api):
    before = host_snapshot()
    with_vm = vm_supported()
    doc = seed_document(isp["bridge"], vm=with_vm)
    lab = Lab.objects.create(owner=owner, name="seed", document=doc)
    try:
        with Watcher(owner, lab.pk) as ws:
            response = api.post(f"/api/labs/{lab.pk}/deploy")
            assert response.status_code == 202, response.content
            run_id = response.json()["id"]
            assert wait_run(run_id, 180).status == "succeeded", Run.objects.get(pk=run_id).error
            end = ws.run_end(run_id, timeout=10)
            assert end["type"] == "run.finished", end

            types = [e["type"] for e in ws.events]
            assert types[0] == "run.started" and "run.step" in types
            seqs = [e["seq"] for e in ws.events]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gaps or duplicates on the wire"
            running = {e["node"] for e in ws.events if e["type"] == "node.state" and e["state"] == "running"}
            assert running == set(doc["nodes"])
            assert all(e["lab"] == lab.pk and e["run"] == run_id for e in ws.events)

        # The kernel: h1 reaches the ISP through r1's masquerade (the ISP has no route back to 10.0.1.0/24).
        h1, h2 = f"tl-{lab.lab_id}-h1", f"tl-{lab.lab_id}-h2"
        assert ns_exec(h1, "ping", "-c", "1", "-W", "3", "203.0.113.1").returncode == 0
        addr = ns_exec(h2, "ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
        leased = re.search(r"inet 10\.0\.1\.(\d+)/24", addr)
        assert leased and 100 <= int(leased.group(1)) <= 150, f"h2 has no address from r1's DHCP range: {addr}"
        assert ns_exec(h2, "ping", "-c", "1", "-W", "3", "10.0.1.1").returncode == 0

        # The lease, as netops status sees it through the agent.
        status = api.get(f"/api/labs/{lab.pk}/status")
        assert status.status_code == 200, status.content
        body = status.json()
        macs = {lease["mac"] for lease in body["nodes"]["r1"]["leases"]}
        assert "52:54:00:00:00:02" in macs
        assert body["nodes"]["h1"]["state"] == "running" and body["deployed"] is True
        if with_vm:
            deadline = time.monotonic() + 60
            while "52:54:00:aa:bb:cc" not in macs and time.monotonic() < deadline:
                time.sleep(2)
                macs = {le["mac"] for le in api.get(f"/api/labs/{lab.pk}/status").json()["nodes"]["r1"]["leases"]}
            assert "52:54:00:aa:bb:cc" in macs, "the VM got no DHCP lease"

        # Deploying again applies only the difference: nothing.
        again = api.post(f"/api/labs/{lab.pk}/deploy").json()
        assert wait_run(again["id"]).status == "succeeded"
        redone = [e.payload.get("message") for e in RunEvent.objects.filter(run_id=again["id"], type="run.step")]
        first = RunEvent.objects.filter(run_id=run_id, type="run.step").count()
        assert len(redone) <= 2 < first, f"a second deploy redid {redone} (first deploy: {first} steps)"
        print(f"second deploy of the unchanged lab redid: {redone}")
    finally:
        destroy = api.post(f"/api/labs/{lab.pk}/destroy")
        assert destroy.status_code == 202, destroy.content
        assert wait_run(destroy.json()["id"]).status == "succeeded"
    assert lab_namespaces(lab.lab_id) == []
    assert host_snapshot() == before
    states = Lab.objects.get(pk=lab.pk).deploy_state.nodes
    assert set(states.values()) == {"absent"}


def test_a_damaged_lab_is_reported_by_the_health_check(celery_worker, kernel_lock, owner, api):
    from webapp.runs.tasks import check_deployed_labs

    lab = Lab.objects.create(owner=owner, name="hurt", document=hosts_document(2))
    try:
        assert wait_run(api.post(f"/api/labs/{lab.pk}/deploy").json()["id"]).status == "succeeded"
        with Watcher(owner, lab.pk) as ws:
            assert check_deployed_labs.delay().get(timeout=30) == 0  # healthy: nothing to say
            sh("ip", "netns", "del", f"tl-{lab.lab_id}-h2")  # by hand, behind Topolab's back
            assert check_deployed_labs.delay().get(timeout=30) == 1
            event = ws.wait_for(lambda e: e["type"] == "node.state", timeout=10)
            assert event["node"] == "h2" and event["state"] == "failed"
            assert "namespace missing" in event["message"]
    finally:
        assert wait_run(api.post(f"/api/labs/{lab.pk}/destroy").json()["id"]).status == "succeeded"
    assert lab_namespaces(lab.lab_id) == []


def test_two_deploys_of_one_lab_at_once_give_one_202_and_one_409(celery_worker, kernel_lock, owner):
    lab = Lab.objects.create(owner=owner, name="race", document=hosts_document(2))
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def deploy() -> None:
        from django.db import connection

        client = APIClient()
        client.force_authenticate(owner)
        barrier.wait()
        codes.append(client.post(f"/api/labs/{lab.pk}/deploy").status_code)
        connection.close()

    threads = [threading.Thread(target=deploy) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert sorted(codes) == [202, 409]
        run = Run.objects.get(lab=lab)
        assert wait_run(run.pk).status == "succeeded"
    finally:
        api = APIClient()
        api.force_authenticate(owner)
        assert wait_run(api.post(f"/api/labs/{lab.pk}/destroy").json()["id"]).status == "succeeded"
    assert lab_namespaces(lab.lab_id) == []


def test_five_labs_deployed_at_once_all_succeed(celery_worker, kernel_lock, owner, api, settings):
    settings.TOPOLAB_QUOTA_USER_RUNNING_LABS = 0  # no limit: this is about the agent, not about quotas
    labs = [Lab.objects.create(owner=owner, name=f"five{i}", document=hosts_document(3)) for i in range(5)]
    try:
        runs = [api.post(f"/api/labs/{lab.pk}/deploy") for lab in labs]
        assert [r.status_code for r in runs] == [202] * 5, [r.content for r in runs]
        assert [wait_run(r.json()["id"], 180).status for r in runs] == ["succeeded"] * 5
        for lab in labs:  # the same addresses in five labs, each its own world
            assert ns_exec(f"tl-{lab.lab_id}-h1", "ping", "-c", "1", "-W", "2", "10.0.0.3").returncode == 0
    finally:
        ends = [api.post(f"/api/labs/{lab.pk}/destroy").json()["id"] for lab in labs]
        assert [wait_run(r).status for r in ends] == ["succeeded"] * 5
    for lab in labs:
        assert lab_namespaces(lab.lab_id) == []


# ---------------------------------------------------------------------------------------------- a dying worker


class OwnAgent:
    """A Celery agent this test starts, SIGKILLs and restarts, on a queue of its own (so the session's
    celery_worker fixture, if running, cannot take its tasks)."""

    def __init__(self, spawn, env: dict, log_path, queue_name: str):
        self.spawn, self.env, self.log_path, self.queue = spawn, env, log_path, queue_name
        self.proc: subprocess.Popen | None = None
        self.generation = 0

    def start(self) -> None:
        from webapp.celery import app

        self.generation += 1
        node = f"{self.queue}-{self.generation}@localhost"
        self.proc = self.spawn([
            sys.executable, "-W", "ignore::celery.platforms.SecurityWarning", "-m", "celery", "-A", "webapp",
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


def test_a_worker_killed_mid_deploy_leaves_a_failed_run_that_deploy_finishes_and_destroy_removes(
        kernel_lock, topolab_subprocess_env, test_tmpdir, spawn, owner, api, monkeypatch, settings):
    settings.TOPOLAB_QUOTA_USER_NODES = 0  # no limit: a lab big enough to be killed in the middle
    queue_name = f"agent-kill-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("TOPOLAB_AGENT_QUEUE", queue_name)
    env = {**topolab_subprocess_env, "TOPOLAB_AGENT_QUEUE": queue_name,
           "TOPOLAB_RUN_DIR": str(test_tmpdir / f"run-{queue_name}")}
    agent = OwnAgent(spawn, env, test_tmpdir / f"{queue_name}.log", queue_name)
    before = host_snapshot()
    lab = Lab.objects.create(owner=owner, name="big", document=hosts_document(60))
    agent.start()
    try:
        run_id = api.post(f"/api/labs/{lab.pk}/deploy").json()["id"]
        deadline = time.monotonic() + 60
        while RunEvent.objects.filter(run_id=run_id, type="node.state", payload__state="running").count() < 10:
            assert time.monotonic() < deadline, "the deploy did not get going"
            time.sleep(0.01)
        agent.kill()
        run = Run.objects.get(pk=run_id)
        assert run.status == "running"
        assert 0 < len(lab_namespaces(lab.lab_id)) < 62, "the kill came too late or too early to mean anything"

        agent.start()  # worker_ready: recovery
        run = wait_run(run_id, 30)
        assert run.status == "failed" and run.error == WORKER_STOPPED

        again = api.post(f"/api/labs/{lab.pk}/deploy")
        assert again.status_code == 202, again.content
        assert wait_run(again.json()["id"], 180).status == "succeeded"
        assert len(lab_namespaces(lab.lab_id)) == 61
        assert ns_exec(f"tl-{lab.lab_id}-h1", "ping", "-c", "1", "-W", "2", "10.0.0.61").returncode == 0
    finally:
        destroy = api.post(f"/api/labs/{lab.pk}/destroy").json()["id"]
        assert wait_run(destroy, 120).status == "succeeded"
        agent.stop()
    assert host_snapshot() == before
