"""The audit log of consoles and captures is visible: in the admin (read-only) and at
GET /api/labs/<pk>/console-sessions/ for whoever may view the lab.

The console session is a real one: the real ASGI app and WebSocket consumer, the real stream agent, a real shell
in a real namespace. People: the owner (olga), an outsider (mallory), a superuser (root_admin), nobody signed in.
"""
from __future__ import annotations

import os
import time

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils.dateparse import parse_datetime
from support import KERNEL_LOCK

from netops import engine, procs
from netops.topology import parse_document
from webapp.asgi import application
from webapp.consoles import services
from webapp.consoles.models import Capture, ConsoleSession
from webapp.labs.models import Lab

pytestmark = [pytest.mark.webapp]

DOC = {"version": 1, "name": "audit", "nodes": {"h1": {"kind": "host"}}, "links": []}



def client_of(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def deployed_lab(olga):
    """Olga's one-host lab, deployed with netops.engine.up and destroyed after the test (kernel lock held)."""
    with KERNEL_LOCK.held():
        lab = Lab.objects.create(owner=olga, name="audit", document=DOC)
        engine.up(parse_document(DOC), lab=lab.lab_id)
        try:
            yield lab
        finally:
            engine.down(lab.lab_id)
            assert procs.find(lab.lab_id) == []


async def console_round_trip(path: str, cookie: bytes) -> bytes:
    """Open the console, wait for the prompt, run one command, read its answer, close."""
    comm = WebsocketCommunicator(application, path, headers=[
        (b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie)])
    connected, _ = await comm.connect(timeout=10)
    assert connected
    out = b""
    sent = False
    deadline = time.monotonic() + 20
    while b"audit-42" not in out:
        assert time.monotonic() < deadline, out[-500:]
        message = await comm.receive_output(timeout=deadline - time.monotonic())
        assert message["type"] != "websocket.close", (message, out[-500:])
        out += message.get("bytes") or b""
        if not sent and b"$ " in out:
            await comm.send_to(bytes_data=b"echo audit-$((6*7))\n")
            sent = True
    await comm.disconnect()
    return out


@pytest.mark.kernel
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(os.geteuid() != 0, reason="a real console needs root (real namespaces)")
def test_a_console_session_through_the_websocket_is_listed_with_user_node_start_and_end(
        stream_agent, deployed_lab, olga, mallory):
    lab = deployed_lab
    before = time.time()
    owner = client_of(olga)
    cookie = f"sessionid={owner.cookies['sessionid'].value}".encode()
    async_to_sync(console_round_trip)(f"/ws/labs/{lab.pk}/console/h1/", cookie)

    deadline = time.monotonic() + 15
    while True:  # the consumer closes the session as the socket goes; the API shows what the database holds
        answer = owner.get(f"/api/labs/{lab.pk}/console-sessions/")
        assert answer.status_code == 200, answer.content
        rows = answer.json()
        if rows and rows[0]["ended"]:
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)
    assert len(rows) == 1
    row = rows[0]
    assert (row["kind"], row["user"], row["node"], row["capture"]) == ("console", "olga", "h1", None)
    started, ended = parse_datetime(row["started"]), parse_datetime(row["ended"])
    assert before - 1 <= started.timestamp() <= ended.timestamp() <= time.time() + 1
    assert row["bytes_in"] == len(b"echo audit-$((6*7))\n") and row["bytes_out"] > 0
    assert row["reason"].startswith("closed by the browser")

    assert client_of(mallory).get(f"/api/labs/{lab.pk}/console-sessions/").status_code == 404
    assert client_of(None).get(f"/api/labs/{lab.pk}/console-sessions/").status_code in (401, 403)


@pytest.mark.django_db
def test_the_list_is_the_labs_own_newest_first_and_names_each_capture(olga, mallory):
    lab = Lab.objects.create(owner=olga, name="audit", document=DOC)
    other = Lab.objects.create(owner=mallory, name="other", document=DOC)
    first = services.start_session(olga, lab, "h1", ConsoleSession.Kind.CONSOLE)
    services.end_session(first.pk, reason="closed by the browser (1000)", bytes_in=3, bytes_out=40)
    services.start_session(mallory, other, "h1", ConsoleSession.Kind.CONSOLE)
    cap = services.create_capture(olga, lab, {"link": None, "node": "h1", "interface": "lo", "filter": ""})

    rows = client_of(olga).get(f"/api/labs/{lab.pk}/console-sessions/").json()
    assert [(r["kind"], r["node"], r["capture"]) for r in rows] == [
        ("capture", "h1:lo", cap.pk), ("console", "h1", None)]
    assert rows[0]["ended"] is None and rows[1]["reason"] == "closed by the browser (1000)"
    assert client_of(mallory).get(f"/api/labs/{lab.pk}/console-sessions/").status_code == 404


@pytest.mark.django_db
def test_the_admin_lists_the_audit_rows_and_cannot_change_or_delete_them(olga):
    admin = get_user_model().objects.create_superuser("root_admin", password="pw-admin-123")
    lab = Lab.objects.create(owner=olga, name="audit", document=DOC)
    session = services.start_session(olga, lab, "h1", ConsoleSession.Kind.CONSOLE)
    services.end_session(session.pk, reason="closed by the browser (1000)", bytes_in=5, bytes_out=77)
    cap = services.create_capture(olga, lab, {"link": None, "node": "h1", "interface": "lo", "filter": ""})
    client = client_of(admin)

    page = client.get("/admin/consoles/consolesession/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "olga" in text and lab.lab_id in text and "closed by the browser (1000)" in text and "77" in text
    assert client.get("/admin/consoles/consolesession/?kind__exact=capture").content.decode().count(
        "closed by the browser") == 0
    assert client.get("/admin/consoles/capture/").status_code == 200

    for model, pk in (("consolesession", session.pk), ("capture", cap.pk)):
        assert client.get(f"/admin/consoles/{model}/add/").status_code == 403
        assert client.get(f"/admin/consoles/{model}/{pk}/change/").status_code == 200  # viewable
        assert client.post(f"/admin/consoles/{model}/{pk}/change/", {"node": "x", "reason": "x"}).status_code == 403
        assert client.post(f"/admin/consoles/{model}/{pk}/delete/", {"post": "yes"}).status_code == 403
    session.refresh_from_db()
    assert session.node == "h1" and session.reason == "closed by the browser (1000)"
    assert ConsoleSession.objects.count() == 2 and Capture.objects.count() == 1
