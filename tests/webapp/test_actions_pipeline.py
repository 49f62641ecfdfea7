"""Node and link actions, and redeploys that leave untouched nodes alone (issue 18), through the API, a real Celery
agent and the real stream agent (consoles, captures), checked in the kernel."""
from __future__ import annotations

import copy
import os
import subprocess
import time

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient
from support import lab_namespaces

from netops import capture, procs
from webapp.consoles.conf import capture_path
from webapp.labs.models import Lab
from webapp.runs.models import LabState, Run, RunEvent

pytestmark = [pytest.mark.webapp, pytest.mark.kernel, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

if os.geteuid() != 0:
    pytest.skip("the agent needs root", allow_module_level=True)

DOC = {
    "version": 1, "name": "acts",
    "nodes": {
        "r1": {"kind": "router", "description": "the gateway", "interfaces": {"eth0": {"address": "10.0.1.254/24"}}},
        "br-in": {"kind": "bridge"},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}},
               "routes": [{"to": "default", "via": "10.0.1.254"}]},
    },
    "links": [{"endpoints": ["r1:eth0", "br-in"]}, {"endpoints": ["h1:eth0", "br-in"]}],
}


@pytest.fixture
def owner():
    return get_user_model().objects.create_user("olivia", password="x-correct-horse")


@pytest.fixture
def api(owner) -> APIClient:
    client = APIClient()
    client.force_authenticate(owner)
    return client


def ns_exec(ns: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=60)


def wait_run(run_id: int, timeout: float = 120) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # its last event is stored just after its status
        run = Run.objects.get(pk=run_id)
        if run.status in ("succeeded", "failed") and RunEvent.objects.filter(
                run=run, type__in=["run.finished", "run.failed"]).exists():
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} still {Run.objects.get(pk=run_id).status} after {timeout} s")


def run_ok(response) -> Run:
    assert response.status_code == 202, response.content
    run = wait_run(response.json()["id"])
    assert run.status == "succeeded", run.error
    return run


def act(api, lab, **body) -> Run:
    return run_ok(api.post(f"/api/labs/{lab.pk}/actions/", body, format="json"))


def deploy(api, lab) -> Run:
    return run_ok(api.post(f"/api/labs/{lab.pk}/deploy"))


def node_states(lab) -> dict:
    return LabState.objects.get(lab=lab).nodes


@pytest.fixture
def deployed(celery_worker, kernel_lock, owner, api):
    lab = Lab.objects.create(owner=owner, name="acts", document=copy.deepcopy(DOC))
    deploy(api, lab)
    try:
        yield lab
    finally:
        run_ok(api.post(f"/api/labs/{lab.pk}/destroy"))
        assert lab_namespaces(lab.lab_id) == []


def test_stop_start_and_link_actions_run_through_the_agent_and_status_agrees(deployed, api):
    from webapp.runs.tasks import check_deployed_labs

    lab = deployed
    h1 = f"tl-{lab.lab_id}-h1"
    run = act(api, lab, action="stop", node="h1")
    assert run.kind == "action"
    assert node_states(lab)["h1"] == "stopped"
    assert f"tl-{lab.lab_id}-h1" not in lab_namespaces(lab.lab_id)
    status = api.get(f"/api/labs/{lab.pk}/status").json()
    assert status["nodes"]["h1"]["state"] == "stopped" and status["drift"] == [] and status["stopped"] == ["h1"]
    assert check_deployed_labs.delay().get(timeout=30) == 0  # stopped as asked: the health check says nothing
    assert node_states(lab)["h1"] == "stopped"
    # a redeploy keeps it stopped
    deploy(api, lab)
    assert node_states(lab)["h1"] == "stopped" and h1 not in lab_namespaces(lab.lab_id)

    act(api, lab, action="start", node="h1")
    assert node_states(lab)["h1"] == "running"
    assert ns_exec(h1, "ping", "-c", "1", "-W", "3", "10.0.1.254").returncode == 0

    act(api, lab, action="link-down", link=["br-in", "h1:eth0"])
    assert LabState.objects.get(lab=lab).links == {"br-in h1:eth0": "down"}
    flags = ns_exec(h1, "ip", "-o", "link", "show", "dev", "eth0").stdout
    assert "NO-CARRIER" in flags and "LOWER_UP" not in flags, flags
    status = api.get(f"/api/labs/{lab.pk}/status").json()
    assert status["links"]["links.1"]["state"] == "down" and status["drift"] == []
    snapshot_links = LabState.objects.get(lab=lab).links
    deploy(api, lab)  # a redeploy keeps the cable pulled
    assert LabState.objects.get(lab=lab).links == snapshot_links
    assert "LOWER_UP" not in ns_exec(h1, "ip", "-o", "link", "show", "dev", "eth0").stdout
    act(api, lab, action="link-up", link=["h1:eth0", "br-in"])
    assert LabState.objects.get(lab=lab).links == {}
    assert ns_exec(h1, "ping", "-c", "1", "-W", "3", "10.0.1.254").returncode == 0

    run = act(api, lab, action="link-conditions", link=["h1:eth0", "br-in"], conditions={"rate": "5mbit"})
    assert "rate 5Mbit" in ns_exec(h1, "tc", "qdisc", "show", "dev", "eth0").stdout
    finished = RunEvent.objects.get(run=run, type="run.finished").payload
    assert finished["document"]["links"][1]["rate"] == "5mbit"  # what runs now, for the editor
    assert LabState.objects.get(lab=lab).deployed_document["links"][1]["rate"] == "5mbit"
    types = [e.type for e in RunEvent.objects.filter(run=run).order_by("seq")]
    assert types[0] == "run.started" and types[-1] == "run.finished" and "run.step" in types


def cookie_of(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def run_seconds(run: Run) -> float:
    """From the run's run.started event to its run.finished (the agent's own time, not its queue's)."""
    ts = dict(RunEvent.objects.filter(run=run, type__in=["run.started", "run.finished"]).values_list("type", "ts"))
    return (ts["run.finished"] - ts["run.started"]).total_seconds()


def test_a_console_and_a_capture_outlive_redeploys_of_a_description_and_of_another_node(
        deployed, stream_agent, owner, api):
    from channels.testing import WebsocketCommunicator

    from webapp.asgi import application
    from webapp.consoles.models import Capture, ConsoleSession

    lab = deployed
    cookie = cookie_of(owner)
    h1 = f"tl-{lab.lab_id}-h1"
    client = Client()
    client.force_login(owner)
    answer = client.post(f"/api/labs/{lab.pk}/captures/", {"link": 1, "filter": "icmp"},
                         content_type="application/json")
    assert answer.status_code == 201, answer.content
    cap = answer.json()
    pcap = capture_path(cap["id"])

    def icmp() -> int:
        return sum(1 for p in capture.read_pcap(pcap) if p.protocol == "ICMP")

    def wait_for(predicate, what: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    async def session():
        comm = WebsocketCommunicator(application, f"/ws/labs/{lab.pk}/console/h1/", headers=[
            (b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie)])
        assert (await comm.connect(timeout=10))[0]

        async def until(needle: bytes) -> bytes:
            out = b""
            deadline = time.monotonic() + 15
            while needle not in out:
                assert time.monotonic() < deadline, out[-500:]
                message = await comm.receive_output(timeout=deadline - time.monotonic())
                assert message["type"] != "websocket.close", f"the console closed: {out[-300:]!r}"
                out += message.get("bytes") or b""
            return out

        await until(b"$ ")
        record = await ConsoleSession.objects.aget(lab=lab, node="h1", kind="console")
        role = f"console:s{record.pk}"
        shell = [p.pid for p in procs.find(lab.lab_id, role)]
        assert ns_exec(h1, "ping", "-c", "2", "-i", "0.2", "10.0.1.254").returncode == 0
        wait_for(lambda: icmp() >= 4, "the pings in the capture")
        tcpdump = [p.pid for p in procs.find(lab.lab_id, f"capture:{cap['id']}")]

        # a description-only change, then one that changes another node (r1 gets a second link)
        await lab.arefresh_from_db()
        doc = copy.deepcopy(lab.document)
        doc["nodes"]["r1"]["description"] = "the gateway, described again"
        doc["nodes"]["h1"]["ui"] = {"x": 40, "y": 80}
        await Lab.objects.filter(pk=lab.pk).aupdate(document=doc, version=lab.version + 1)
        quiet = await _deploy_async(api, lab)
        other = copy.deepcopy(doc)
        other["nodes"]["r1"]["interfaces"]["eth1"] = {"address": "10.0.2.254/24"}
        other["nodes"]["h2"] = {"kind": "host", "interfaces": {"eth0": {"address": "10.0.2.1/24"}}}
        other["links"].append({"endpoints": ["r1:eth1", "h2:eth0"]})
        await Lab.objects.filter(pk=lab.pk).aupdate(document=other, version=lab.version + 2)
        changed = await _deploy_async(api, lab)

        assert [p.pid for p in procs.find(lab.lab_id, role)] == shell, "the shell was restarted"
        assert [p.pid for p in procs.find(lab.lab_id, f"capture:{cap['id']}")] == tcpdump
        await comm.send_to(bytes_data=b"echo still-$((40+2))\n")
        await until(b"still-42")
        await comm.disconnect()
        return quiet, changed

    quiet, changed = async_to_sync(session)()
    assert RunEvent.objects.filter(run=quiet, type="run.step").count() == 0  # a no-op run
    seconds = run_seconds(quiet)
    print(f"description-only redeploy: run.started -> run.finished {seconds * 1000:.0f} ms")
    assert seconds < 0.2, f"a description-only redeploy took {seconds:.3f} s"
    steps = [(e.node, e.payload.get("message", "")) for e in RunEvent.objects.filter(run=changed, type="run.step")]
    print(f"the redeploy that changed r1 and added h2 ran: {steps}")
    assert steps and {node for node, _ in steps} <= {"", "r1", "h2"}, steps  # nothing of h1's
    before = icmp()
    assert ns_exec(h1, "ping", "-c", "2", "-i", "0.2", "10.0.1.254").returncode == 0
    wait_for(lambda: icmp() >= before + 4, "pings after the redeploys in the same capture")
    assert Capture.objects.get(pk=cap["id"]).status == "running"
    assert ns_exec(f"tl-{lab.lab_id}-r1", "ping", "-c", "1", "-W", "3", "10.0.2.1").returncode == 0


async def _deploy_async(api, lab) -> Run:
    from asgiref.sync import sync_to_async

    return await sync_to_async(deploy, thread_sensitive=False)(api, lab)

