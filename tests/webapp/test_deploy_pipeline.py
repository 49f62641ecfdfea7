"""Deploy and destroy through the API with the real Redis and a real Celery agent (root), events over a real
WebSocket, and the result checked in the kernel (ping, lease), never only in our own bookkeeping.

The tests take /run/topolab-kernel-tests.lock (as tests/kernel does) so that comparing the host's namespaces,
links and nft ruleset before and after is not disturbed by another engineer's kernel tests.
"""
from __future__ import annotations

import os
import re
import threading
import time
import uuid

import pytest
from django.contrib.auth import get_user_model
from pipeline import (
    WORKER_LOGS,
    OwnAgent,
    Watcher,
    host_snapshot,
    hosts_document,
    isp_namespace,
    ns_exec,
    seed_document,
    sh,
    vm_supported,
    wait_run,
)
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
    with isp_namespace() as found:
        settings.TOPOLAB_UPLINK_BRIDGES = found["bridge"]
        Profile.objects.create(user=owner, role=Role.INSTRUCTOR)
        yield found


@pytest.fixture(autouse=True)
def _worker_logs(test_tmpdir):
    WORKER_LOGS[:] = [test_tmpdir / "celery-worker.log"]


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


# ---------------------------------------------------------------------------------------------- a dying worker


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
