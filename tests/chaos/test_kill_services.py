"""daphne and Redis SIGKILLed mid-deploy (issue 17, part 1): the run still finishes (or fails cleanly), the
browser's event stream resumes without gaps once the server is back (seq numbers, as the page's client does it:
reconnect, then `resume` after the last seq it saw), and the run's final state in the database matches the kernel.

Real parts: daphne (HTTP with a token, WebSocket with a session cookie, on loopback), the agent (tests/chaos
kill_agent fixture, never armed), this run's Redis (killed and restarted on its socket, empty), the kernel.
"""
from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from e2e.conftest import _daphne
from pipeline import inventory, leaks, ns_exec, seed_lab, wait_run
from rest_framework.authtoken.models import Token
from support import lab_namespaces
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from webapp.accounts.models import Profile, Role
from webapp.labs.models import Lab
from webapp.runs.models import LabState, RunEvent

pytestmark = [pytest.mark.webapp, pytest.mark.kernel, pytest.mark.slow, pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(os.geteuid() != 0, reason="the agent needs root")]


class BrowserStream:
    """The page's event stream: a WebSocket to /ws/labs/<pk>/ that reconnects when the server goes, and resumes
    after the last seq it saw. Collects every event (snapshot, errors and pongs left out)."""

    def __init__(self, port: int, lab_pk: int, cookie: str):
        self.url, self.cookie = f"ws://127.0.0.1:{port}/ws/labs/{lab_pk}/", cookie
        self.origin = f"http://127.0.0.1:{port}"
        self.events: list[dict] = []
        self.last: int | None = None
        self.reconnects = 0
        self.connected = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BrowserStream:
        self.thread.start()
        assert self.connected.wait(20), "the WebSocket did not connect"
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                with connect(self.url, origin=self.origin, additional_headers={"Cookie": self.cookie},
                             open_timeout=3) as ws:
                    snapshot = json.loads(ws.recv(timeout=5))
                    after = snapshot.get("seq", 0) if self.last is None else self.last
                    ws.send(json.dumps({"type": "resume", "after": after}))
                    self.connected.set()
                    while not self.stop.is_set():
                        try:
                            event = json.loads(ws.recv(timeout=0.2))
                        except TimeoutError:
                            continue
                        if "seq" in event and event.get("type") not in ("snapshot", "error", "pong"):
                            self.events.append(event)
                            self.last = event["seq"]
            except (OSError, ConnectionClosed, TimeoutError, ValueError):
                pass
            if not self.stop.is_set():
                self.reconnects += 1
                time.sleep(0.3)

    def wait_for(self, predicate, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in list(self.events):
                if predicate(event):
                    return event
            time.sleep(0.05)
        raise AssertionError(f"no such event within {timeout} s; last: {self.events[-5:]}")


def _wait_step(run_id: int, step: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not RunEvent.objects.filter(run_id=run_id, type="run.step", payload__step__gte=step).exists():
        assert time.monotonic() < deadline, f"run {run_id} did not reach step {step}"
        time.sleep(0.005)


def test_daphne_and_redis_killed_mid_deploy_the_run_ends_the_stream_resumes_without_gaps_the_db_matches(
        kill_agent, seed_isp, topolab_subprocess_env, test_tmpdir, spawn, redis_control, chaos_figures):
    agent = kill_agent
    user = get_user_model().objects.create_user(f"dan{uuid.uuid4().hex[:6]}", password="x-correct-horse")
    Profile.objects.create(user=user, role=Role.INSTRUCTOR)
    token = Token.objects.create(user=user).key
    browser = Client()
    browser.force_login(user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    doc = seed_lab(seed_isp["bridge"], vm=False)
    lab = Lab.objects.create(owner=user, name="seed-lab", document=doc)
    env = {**topolab_subprocess_env, "TOPOLAB_AGENT_QUEUE": agent.queue,
           "TOPOLAB_UPLINK_BRIDGES": seed_isp["bridge"]}
    env.pop("TOPOLAB_DEBUG", None)
    before = inventory(agent.run_dir)
    log = test_tmpdir / "daphne-kill.log"
    part = "kill daphne and Redis mid-deploy"
    found: list[str] = []

    def post(url: str, kind: str) -> int:
        request = urllib.request.Request(f"{url}/api/labs/{lab.pk}/{kind}", data=b"", method="POST",
                                         headers={"Authorization": f"Token {token}"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 202
            return json.load(answer)["id"]

    def check(stream: BrowserStream, run_id: int, first_seq: int) -> None:
        """The run ended; the stream has every event since `first_seq`, once, in order; the DB matches the
        kernel."""
        run = wait_run(run_id, 120)
        stream.wait_for(lambda e: e.get("run") == run_id and e["type"] in ("run.finished", "run.failed"), 30)
        seqs = [e["seq"] for e in stream.events if e["seq"] > first_seq]
        stored = list(RunEvent.objects.filter(lab=lab, seq__gt=first_seq).order_by("seq")
                      .values_list("seq", flat=True))
        if seqs != stored[:len(seqs)] or seqs != list(range(first_seq + 1, first_seq + 1 + len(seqs))):
            found.append(f"run {run_id}: the stream has gaps or duplicates: {seqs} (stored {stored})")
        if run.status == "succeeded":
            nodes = LabState.objects.get(lab=lab).nodes
            if any(nodes.get(n) != "running" for n in doc["nodes"]):
                found.append(f"run {run_id} succeeded, the database says {nodes}")
            h1 = f"tl-{lab.lab_id}-h1"
            if ns_exec(h1, "ping", "-c", "1", "-W", "2", "10.0.1.254").returncode:
                found.append(f"run {run_id} succeeded and running in the database, h1 cannot ping r1")
        else:  # failed cleanly: said why
            assert run.error, f"run {run_id} failed without a reason"
        print(f"run {run_id}: {run.status} {run.error or ''}; {len(seqs)} events streamed, "
              f"{stream.reconnects} reconnects")

    port = None
    procs: list = []
    try:
        with _daphne(spawn, env, log, procs) as url:
            port = int(url.rsplit(":", 1)[1])
            with BrowserStream(port, lab.pk, cookie) as stream:
                first = LabState.objects.get_or_create(lab=lab)[0].last_seq
                run_id = post(url, "deploy")
                _wait_step(run_id, 6)
                procs[0].kill()  # daphne, mid-deploy
                procs[0].wait(10)
                chaos_figures.add(part, faults=1)
                with _daphne(spawn, env, log, procs, port=port) as url2:
                    check(stream, run_id, first)
                    if not found:
                        chaos_figures.add(part, recovered=1)
                    # destroy, then Redis mid-deploy
                    destroy = post(url2, "destroy")
                    assert wait_run(destroy, 60).status == "succeeded"
                    assert not leaks(before, inventory(agent.run_dir))
                    first = LabState.objects.get(lab=lab).last_seq
                    stream.wait_for(lambda e: e["seq"] == first, 30)
                    run_id = post(url2, "deploy")
                    _wait_step(run_id, 6)
                    redis_control.kill()
                    chaos_figures.add(part, faults=1)
                    time.sleep(1)
                    redis_control.restart()
                    count = len(found)
                    check(stream, run_id, first)
                    if len(found) == count:
                        chaos_figures.add(part, recovered=1)
                    destroy = post(url2, "destroy")
                    assert wait_run(destroy, 60).status == "succeeded"
    finally:
        agent.stop()
        from netops import engine

        os.environ["TOPOLAB_RUN_DIR"], old = str(agent.run_dir), os.environ.get("TOPOLAB_RUN_DIR")
        try:
            engine.down(lab.lab_id)
        finally:
            if old is None:
                os.environ.pop("TOPOLAB_RUN_DIR")
            else:
                os.environ["TOPOLAB_RUN_DIR"] = old
    left = leaks(before, inventory(agent.run_dir))
    chaos_figures.add(part, leaks=len(left))
    assert not lab_namespaces(lab.lab_id) and not left, left
    assert not found, "\n".join(found)
