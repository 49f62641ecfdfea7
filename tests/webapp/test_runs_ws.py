"""The lab events WebSocket against the real ASGI app and the test Redis channel layer.

Three people: the owner, another user, and nobody signed in; plus a page from a foreign origin.
"""
from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from webapp.asgi import application
from webapp.labs.models import Lab
from webapp.runs import services
from webapp.runs.models import Run

pytestmark = [pytest.mark.webapp, pytest.mark.django_db(transaction=True)]

DOC = {"version": 1, "name": "ws", "nodes": {"h1": {"kind": "host"}}, "links": []}
ORIGIN = (b"origin", b"http://testserver")


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def communicator(lab_pk: int, cookie: bytes | None = None, origin=ORIGIN) -> WebsocketCommunicator:
    headers = [origin, (b"host", b"testserver")]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, f"/ws/labs/{lab_pk}/", headers=headers)


@pytest.fixture
def people():
    User = get_user_model()
    return User.objects.create_user("olivia", password="x-correct-horse"), \
        User.objects.create_user("oscar", password="x-correct-horse")


@pytest.fixture
def lab(people):
    return Lab.objects.create(owner=people[0], name="ws", document=DOC)


async def closed_with(comm: WebsocketCommunicator) -> int | None:
    connected, _ = await comm.connect()
    assert connected  # accepted, then closed with a reason code
    output = await comm.receive_output(timeout=5)
    await comm.disconnect()  # end the application instance here, not in the event loop's teardown
    assert output["type"] == "websocket.close"
    return output.get("code")


async def test_it_refuses_a_visitor_without_a_session(lab):
    assert await closed_with(communicator(lab.pk)) == 4403


async def test_it_refuses_another_users_session(lab, people):
    cookie = await sync_to_async(session_cookie)(people[1])
    assert await closed_with(communicator(lab.pk, cookie)) == 4404


async def test_it_refuses_an_unknown_lab(lab, people):
    cookie = await sync_to_async(session_cookie)(people[0])
    assert await closed_with(communicator(lab.pk + 1000, cookie)) == 4404


async def test_it_refuses_a_foreign_origin(lab, people):
    cookie = await sync_to_async(session_cookie)(people[0])
    comm = communicator(lab.pk, cookie, origin=(b"origin", b"http://evil.example"))
    connected, _ = await comm.connect()
    assert not connected
    await comm.disconnect()


async def receive_events(comm: WebsocketCommunicator, count: int) -> list[dict]:
    return [await comm.receive_json_from(timeout=5) for _ in range(count)]


async def test_it_sends_a_snapshot_then_replays_after_seq_and_streams_live_without_gaps_or_duplicates(lab, people):
    record = sync_to_async(services.record_event)
    run = await sync_to_async(Run.objects.create)(lab=lab, kind="deploy", status="running")
    for state in ("starting", "running"):
        await record(lab.pk, run.pk, "node.state", node="h1", state=state)
    await record(lab.pk, run.pk, "run.step", message="step three", step=3, total=9)

    comm = communicator(lab.pk, await sync_to_async(session_cookie)(people[0]))
    connected, _ = await comm.connect()
    assert connected
    snapshot = await comm.receive_json_from(timeout=5)
    assert snapshot["type"] == "snapshot"
    assert snapshot["seq"] == 3 and snapshot["nodes"] == {"h1": "running"}
    assert snapshot["run"]["id"] == run.pk

    # Live events that arrive before the client resumes are not lost: the resume replays them.
    await record(lab.pk, run.pk, "run.step", message="step four", step=4, total=9)
    await asyncio.sleep(0.2)
    await comm.send_json_to({"type": "resume", "after": 1})
    replayed = await receive_events(comm, 3)
    assert [e["seq"] for e in replayed] == [2, 3, 4]
    assert replayed[0] == {**replayed[0], "type": "node.state", "node": "h1", "state": "running", "run": run.pk}

    # Then live, each once, in order, even when written from several threads at once.
    await asyncio.gather(*(record(lab.pk, run.pk, "run.step", message=f"s{i}") for i in range(20)))
    live = await receive_events(comm, 20)
    assert [e["seq"] for e in live] == list(range(5, 25))
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()


async def test_a_reconnecting_client_gets_only_what_it_missed(lab, people):
    record = sync_to_async(services.record_event)
    cookie = await sync_to_async(session_cookie)(people[0])
    comm = communicator(lab.pk, cookie)
    await comm.connect()
    snapshot = await comm.receive_json_from(timeout=5)
    await comm.send_json_to({"type": "resume", "after": snapshot["seq"]})
    await record(lab.pk, None, "node.state", node="h1", state="running")
    seen = await comm.receive_json_from(timeout=5)
    await comm.disconnect()

    for i in range(3):  # while the browser is away
        await record(lab.pk, None, "run.step", message=f"missed {i}")
    comm = communicator(lab.pk, cookie)
    await comm.connect()
    assert (await comm.receive_json_from(timeout=5))["seq"] == seen["seq"] + 3
    await comm.send_json_to({"type": "resume", "after": seen["seq"]})
    missed = await receive_events(comm, 3)
    assert [e["message"] for e in missed] == ["missed 0", "missed 1", "missed 2"]
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()


async def test_a_bad_resume_is_answered_with_an_error(lab, people):
    comm = communicator(lab.pk, await sync_to_async(session_cookie)(people[0]))
    await comm.connect()
    await comm.receive_json_from(timeout=5)
    await comm.send_json_to({"type": "resume", "after": "yesterday"})
    assert (await comm.receive_json_from(timeout=5))["type"] == "error"
    await comm.disconnect()


async def test_a_page_opened_after_a_failed_deploy_is_told_why_and_where(lab, people):
    await sync_to_async(Run.objects.create)(lab=lab, kind="deploy", status="failed",
                                            error="host bridge br-ex does not exist", error_element="nodes.wan.bridge")
    comm = communicator(lab.pk, await sync_to_async(session_cookie)(people[0]))
    connected, _ = await comm.connect()
    assert connected
    snapshot = await comm.receive_json_from(timeout=5)
    assert snapshot["run"] is None
    assert snapshot["last_run"]["status"] == "failed"
    assert snapshot["last_run"]["error"] == "host bridge br-ex does not exist"
    assert snapshot["last_run"]["error_element"] == "nodes.wan.bridge"
    await comm.disconnect()
