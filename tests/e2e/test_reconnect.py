"""The editor survives a server restart: real Chromium, a real daphne of this module's own (so it can be stopped
and started again on the same port) and a real Celery agent (root).

Deploy is pressed, daphne is stopped (SIGTERM) at once, the agent finishes the deploy and stores its events while
the page has no server; daphne comes back on the same port and the page, without a reload, reconnects by itself,
catches up (every node running) and logs each event it missed exactly once, in order. Destroy then turns the
nodes grey and the kernel has no namespace of the lab left.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect
from rest_framework.test import APIClient
from support import lab_namespaces

from webapp.labs.models import Lab

pytestmark = [pytest.mark.e2e, pytest.mark.kernel, pytest.mark.django_db(transaction=True)]

if os.geteuid() != 0:
    pytest.skip("the agent needs root", allow_module_level=True)

PASSWORD = "correct horse battery"
DOC = {
    "version": 1, "name": "e2e-reconnect",
    "nodes": {
        "sw": {"kind": "bridge", "ui": {"x": 300, "y": 200}},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.2.1/24"}}, "ui": {"x": 140, "y": 380}},
        "h2": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.2.2/24"}}, "ui": {"x": 300, "y": 380}},
        "h3": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.2.3/24"}}, "ui": {"x": 460, "y": 380}},
    },
    "links": [{"endpoints": ["h1:eth0", "sw"]}, {"endpoints": ["h2:eth0", "sw"]}, {"endpoints": ["h3:eth0", "sw"]}],
}
STATES = "() => Object.fromEntries(window.topolab.cy.nodes().map((n) => [n.id(), n.data('deployState')]))"
ALL_RUNNING = "() => window.topolab.cy.nodes().every((n) => n.data('deployState') === 'running')"
ALL_ABSENT = "() => window.topolab.cy.nodes().every((n) => n.data('deployState') === 'absent')"
# Every WebSocket frame the page receives, tagged with the number of the socket it came over (instrumentation
# only: the page's own WebSocket does the work).
RECORD_FRAMES = """
(() => {
  const Native = window.WebSocket;
  window.__wsFrames = [];
  window.__wsCount = 0;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      const conn = ++window.__wsCount;
      this.addEventListener("message", (m) => window.__wsFrames.push({ conn, data: JSON.parse(m.data) }));
    }
  };
})();
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daphne:
    """A daphne of this test that can be stopped (SIGTERM by pid) and started again on the same port."""

    def __init__(self, spawn, env, log_path) -> None:
        self.spawn, self.env, self.log_path = spawn, env, log_path
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        assert self.proc is None
        deadline = time.monotonic() + 30
        while True:  # the port may linger for a moment after a stop
            self.proc = self.spawn(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "webapp.asgi:application"],
                log_path=self.log_path, env=self.env,
            )
            while self.proc.poll() is None:
                try:
                    urllib.request.urlopen(f"{self.url}/healthz", timeout=1)
                    return
                except OSError:
                    if time.monotonic() > deadline:
                        self.stop()
                        pytest.fail(f"daphne did not answer within 30 s:\n{self.log_path.read_text()}")
                    time.sleep(0.1)
            self.proc = None
            if time.monotonic() > deadline:
                pytest.fail(f"daphne exited:\n{self.log_path.read_text()}")
            time.sleep(0.3)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # SIGTERM, to this pid only
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def answers(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.url}/healthz", timeout=1)
            return True
        except OSError:
            return False


@pytest.fixture
def own_daphne(django_db_setup, topolab_subprocess_env, test_tmpdir, spawn):
    server = Daphne(spawn, topolab_subprocess_env, test_tmpdir / "daphne-reconnect.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def expected_log(events: list[dict]) -> list[str]:
    """The lines deploy.js writes for these events (one per event that it logs)."""
    lines = []
    for e in events:
        if e["type"] == "run.started":
            lines.append(f"{e['kind']} #{e['run']} started")
        elif e["type"] == "run.step":
            prefix = f"[{e.get('step')}/{e['total']}] " if e.get("total") else ""
            lines.append(f"{prefix}{e['node'] + ': ' if e.get('node') else ''}{e.get('message') or 'step'}")
        elif e["type"] == "node.state":
            if e["state"] in ("failed", "degraded"):
                lines.append(f"{e['node']}: {e['state']}" + (f" ({e['message']})" if e.get("message") else ""))
        elif e["type"] == "run.finished":
            lines.append(e.get("message") or "finished")
        elif e["type"] == "run.failed":
            lines.append(f"failed: {e['element'] + ': ' if e.get('element') else ''}{e['message']}")
        elif e.get("message"):
            lines.append(e["message"])
    return lines


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_editor_reconnects_after_daphne_restart_and_catches_up(
        browser, own_daphne, login, screenshot, celery_worker, kernel_lock):
    from webapp.runs import services
    from webapp.runs.models import LabState, Run

    user = get_user_model().objects.create_user("rhea", password=PASSWORD)
    lab = Lab.objects.create(owner=user, name="e2e-reconnect", document=DOC)
    context = browser.new_context(base_url=own_daphne.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    context.add_init_script(RECORD_FRAMES)
    page = context.new_page()
    api = APIClient()
    api.force_authenticate(user)
    try:
        # History first (one deploy and destroy by the real agent), so the page starts at a seq > 0 and resuming
        # from 0 (or from the snapshot) is told apart from resuming after the last seq it saw.
        for kind in ("deploy", "destroy"):
            assert api.post(f"/api/labs/{lab.pk}/{kind}").status_code in (201, 202)
            wait_for(lambda: not Run.objects.filter(lab=lab, status__in=["queued", "running"]).exists(), 60, kind)
        assert list(Run.objects.filter(lab=lab).order_by("pk").values_list("status", flat=True)) == ["succeeded", "succeeded"]
        assert lab_namespaces(lab.lab_id) == []
        login(page, "rhea", PASSWORD)
        page.goto(f"/labs/{lab.pk}/")
        page.wait_for_function("window.topolab && window.topolab.deploy")
        status = page.locator("#deploy-status")
        expect(status).to_have_text("Not deployed")
        assert set(page.evaluate(STATES).values()) == {"absent"}
        first_seq = page.evaluate("window.topolab.deploy.state.lastSeq")
        assert first_seq == LabState.objects.get(lab=lab).last_seq > 0
        navigations = []
        page.on("framenavigated", lambda frame: navigations.append(frame.url))

        # Deploy, and take the server away as soon as the run is queued.
        with page.expect_response(lambda r: r.url.endswith(f"/api/labs/{lab.pk}/deploy")) as posted:
            page.click("#btn-deploy")
        assert posted.value.status in (201, 202), posted.value.status
        own_daphne.stop()
        assert not own_daphne.answers()
        run = Run.objects.filter(lab=lab, kind="deploy").latest("pk")
        # The page notices and says so (the visible connection indicator).
        expect(status).to_have_text("Reconnecting…")
        expect(status).to_have_attribute("data-state", "offline")
        seq_at_stop = page.evaluate("window.topolab.deploy.state.lastSeq")
        conns_at_stop = page.evaluate("window.__wsCount")

        # While nothing serves the page, the agent finishes the deploy and stores its events.
        wait_for(lambda: Run.objects.get(pk=run.pk).status not in ("queued", "running"), 60, "the deploy to end")
        assert Run.objects.get(pk=run.pk).status == "succeeded", Run.objects.get(pk=run.pk).status
        last_seq = LabState.objects.get(lab=lab).last_seq
        assert seq_at_stop < last_seq, "the page saw everything before the stop: no catch-up"
        assert not page.evaluate(ALL_RUNNING), "the page cannot know the nodes run while the server is down"
        time.sleep(2)  # a few failed reconnects: the backoff grows
        assert page.evaluate("window.__wsCount") > conns_at_stop, "the page gave up reconnecting"
        expect(status).to_have_text("Reconnecting…")

        # Same port again: the page reconnects on its own and catches up.
        own_daphne.start()
        page.wait_for_function(ALL_RUNNING, timeout=30_000)
        expect(status).to_have_text("Deployed")
        expect(status).to_have_attribute("data-state", "deployed")
        assert page.evaluate("window.topolab.deploy.state.socket.readyState") == 1  # OPEN
        assert page.evaluate(STATES) == {"sw": "running", "h1": "running", "h2": "running", "h3": "running"}
        colour = page.evaluate("() => window.topolab.cy.getElementById('h2').style('underlay-color')")
        assert colour.replace(" ", "") == "rgb(22,163,74)", colour  # green
        assert page.evaluate("window.topolab.deploy.state.lastSeq") == last_seq
        assert len(lab_namespaces(lab.lab_id)) == 4  # fabric + h1, h2, h3

        # The events it missed came over the new socket, each once, and the log has every event once, in order.
        frames = page.evaluate("window.__wsFrames")
        last_conn = frames[-1]["conn"]
        assert last_conn > conns_at_stop
        caught_up = [f["data"]["seq"] for f in frames if f["conn"] == last_conn and "seq" in f["data"]
                     and f["data"]["type"] != "snapshot"]
        missed = list(range(seq_at_stop + 1, last_seq + 1))
        assert caught_up == missed, (caught_up, missed)
        events = services.events_after(lab.pk, first_seq)
        assert [e["seq"] for e in events] == list(range(first_seq + 1, last_seq + 1))
        page.click("#btn-deploy-log")
        lines = page.locator("#deploy-log-list li").all_inner_texts()
        # the log opened with the run before (the destroy), as it stood when the page was loaded
        before = Run.objects.filter(lab=lab, kind="destroy").latest("pk")
        history = expected_log([e.as_message() for e in before.events.order_by("seq")])
        assert history and lines[:len(history)] == history, lines
        lines = lines[len(history):]
        assert lines[0] == f"deploy #{run.pk} queued", lines
        assert lines[1:] == expected_log(events), lines
        assert sum(1 for line in lines if line.startswith("[")) >= 4  # the steps are there, not just start/end
        assert navigations == [], "the page reloaded"
        screenshot(page, "reconnect")  # var/artifacts/reconnect.png

        # Destroy through the UI: grey again, and nothing left in the kernel.
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#btn-destroy")
        page.wait_for_function(ALL_ABSENT, timeout=60_000)
        expect(status).to_have_text("Destroyed")
        colour = page.evaluate("() => window.topolab.cy.getElementById('h2').style('underlay-color')")
        assert colour.replace(" ", "") == "rgb(148,163,184)", colour  # grey
        assert navigations == [], "the page reloaded"
        assert lab_namespaces(lab.lab_id) == []
    finally:
        context.close()
        if LabState.objects.filter(lab=lab, deployed=True).exists():  # a failure above: clean up without daphne
            deadline = time.monotonic() + 60
            while Run.objects.filter(lab=lab, status__in=["queued", "running"]).exists():
                assert time.monotonic() < deadline
                time.sleep(0.5)
            api.post(f"/api/labs/{lab.pk}/destroy")
            while LabState.objects.filter(lab=lab, deployed=True).exists() and time.monotonic() < deadline:
                time.sleep(0.5)
    assert lab_namespaces(lab.lab_id) == []
