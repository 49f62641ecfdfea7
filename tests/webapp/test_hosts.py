"""Lab hosts (webapp.hosts): each agent announces itself and keeps a Host row fresh; a host whose heartbeats stop
is down and its parts of runs across hosts fail naming it; GET /api/hosts/ is for staff only.

The agents here are real Celery workers (subprocesses) with TOPOLAB_HOST=simhost-a / simhost-b, on queues of
their own, heartbeating every 0.5 s and calling a host down after 3 s without one."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient
from simhost import BEAT, DOWN_AFTER, SimHost, wait_for

from webapp.celery import app
from webapp.hosts import services
from webapp.hosts.models import Host
from webapp.labs.models import Lab
from webapp.runs import parts
from webapp.runs.models import Run

pytestmark = [pytest.mark.webapp]

DOC = {"version": 1, "name": "span", "nodes": {"sw": {"kind": "bridge"}, "h1": {"kind": "host"}}, "links": []}


@pytest.fixture
def agents(topolab_subprocess_env, test_tmpdir, spawn):
    started: list[SimHost] = []

    def make(host: str) -> SimHost:
        agent = SimHost(spawn, topolab_subprocess_env, test_tmpdir / f"host-{host}.log", host, concurrency=1)
        started.append(agent)
        agent.start()
        return agent

    yield make
    for agent in started:
        agent.stop()


def _host(name: str) -> Host | None:
    return Host.objects.filter(name=name).first()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_agent_announces_its_host_takes_its_queue_and_is_marked_down_when_it_stops(agents, settings):
    settings.TOPOLAB_HOST_DOWN_AFTER = DOWN_AFTER
    started = timezone.now()
    a = agents("simhost-a")
    row = wait_for(lambda: _host("simhost-a"), 10, "simhost-a announced itself")
    assert row.up and row.first_seen >= started - timedelta(seconds=1)
    assert row.underlay_address == "127.0.0.1" and row.cpus >= 1 and row.memory_bytes > 1 << 20
    assert row.version and row.down_since is None
    first = row.last_heartbeat
    wait_for(lambda: _host("simhost-a").last_heartbeat > first, 5, "simhost-a's heartbeat advanced")
    assert _host("simhost-a").first_seen == row.first_seen

    # its own queue: both the one it was started with and agent.simhost-a, and a task sent there runs on it
    queues = app.control.inspect(destination=[a.node], timeout=2).active_queues()[a.node]
    assert {q["name"] for q in queues} == {a.queue, "agent.simhost-a"}
    result = app.send_task("webapp.core.tasks.ping", queue=parts.host_queue("simhost-a"))
    assert result.get(timeout=20) == "pong"
    assert f"ping[{result.id}] received" in a.log_path.read_text()  # it ran there, on no other worker

    # a second host, which checks the others; then a run with a part on each host
    agents("simhost-b")
    wait_for(lambda: _host("simhost-b"), 10, "simhost-b announced itself")
    owner = get_user_model().objects.create_user("hana", password="correct horse battery")
    lab = Lab.objects.create(owner=owner, name="span", document=DOC)
    run = Run.objects.create(lab=lab, kind=Run.Kind.DEPLOY, status=Run.Status.RUNNING,
                             parts=parts.new_parts(["simhost-a", "simhost-b"]))
    claimed = dict(run.parts)
    claimed["simhost-a"] = {**claimed["simhost-a"], "status": parts.PART_RUNNING}
    claimed["simhost-b"] = {**claimed["simhost-b"], "status": parts.PART_SUCCEEDED}
    Run.objects.filter(pk=run.pk).update(parts=claimed)
    time.sleep(2 * BEAT)
    assert Run.objects.get(pk=run.pk).status == Run.Status.RUNNING  # both hosts up: nothing is failed

    a.stop()
    stopped = time.monotonic()
    wait_for(lambda: not _host("simhost-a").up, DOWN_AFTER + 2, "simhost-a went down")
    run = wait_for(lambda: (r := Run.objects.get(pk=run.pk)).status == Run.Status.FAILED and r, DOWN_AFTER + 5,
                "the run failed")
    assert time.monotonic() - stopped < DOWN_AFTER + 5
    assert run.error.startswith("host simhost-a: its agent stopped answering"), run.error
    assert run.parts["simhost-a"]["status"] == parts.PART_FAILED and run.parts["simhost-b"]["status"] == "succeeded"
    assert _host("simhost-a").down_since is not None
    assert _host("simhost-b").up

    a.start()  # it comes back: up again
    wait_for(lambda: (h := _host("simhost-a")).up and h.down_since is None, 10, "simhost-a came back up")
    assert Run.objects.get(pk=run.pk).status == Run.Status.FAILED  # the run stays as it ended


@pytest.mark.django_db
def test_the_heartbeat_inserts_then_updates_one_row_and_brings_a_down_host_back(settings):
    Host.objects.all().delete()  # the session's worker may have announced its host
    settings.TOPOLAB_HOST, settings.TOPOLAB_UNDERLAY_ADDRESS = "unit-host", "192.0.2.7"
    long_ago = timezone.now() - timedelta(hours=1)
    first = services.heartbeat(nodes_running=3, now=long_ago)
    assert (first.name, first.underlay_address, first.nodes_running, first.first_seen) == \
        ("unit-host", "192.0.2.7", 3, long_ago)
    assert not first.up and services.check_hosts() == ["unit-host"]
    assert Host.objects.get(name="unit-host").down_since is not None
    again = services.heartbeat(nodes_running=1)
    assert Host.objects.filter(name="unit-host").count() == 1
    assert again.up and again.nodes_running == 1 and again.down_since is None and again.first_seen == long_ago
    assert services.check_hosts() == []


@pytest.mark.django_db
def test_a_run_part_on_a_down_host_fails_once_naming_it_and_other_runs_are_left_alone(settings):
    settings.TOPOLAB_HOST_DOWN_AFTER = 10
    Host.objects.all().delete()  # the session's worker may have announced its host
    owner = get_user_model().objects.create_user("ivo", password="correct horse battery")
    now = timezone.now()
    Host.objects.create(name="dead", underlay_address="192.0.2.1", last_heartbeat=now - timedelta(seconds=11))
    Host.objects.create(name="alive", underlay_address="192.0.2.2", last_heartbeat=now)
    on_dead = Run.objects.create(lab=Lab.objects.create(owner=owner, name="a", document=DOC), kind="deploy",
                                 status="running", parts=parts.new_parts(["dead", "alive"]))
    elsewhere = Run.objects.create(lab=Lab.objects.create(owner=owner, name="b", document=DOC), kind="deploy",
                                   status="queued", parts=parts.new_parts(["alive", "other"]))
    assert services.check_hosts() == ["dead"]
    on_dead.refresh_from_db()
    assert on_dead.parts["dead"]["status"] == "failed" and on_dead.parts["alive"]["status"] == "queued"
    assert on_dead.status == "running"  # the part on `alive` still runs; the last part ends the run
    assert parts.finish(on_dead, "alive") == {"error": f"host dead: {services.HOST_DOWN.format(seconds=10)}",
                                              "element": ""}
    assert services.check_hosts() == ["dead"]  # again: the part already failed is not failed twice
    assert parts.finish(on_dead, "dead", error="x", unfinished_only=True) is None
    elsewhere.refresh_from_db()
    assert {p["status"] for p in elsewhere.parts.values()} == {"queued"}


def test_a_bad_host_setting_stops_the_server_with_the_reason(topolab_subprocess_env):
    for var, value, says in [("TOPOLAB_HOST", "../x", "TOPOLAB_HOST: host name '../x'"),
                             ("TOPOLAB_HOST", "-Q", "TOPOLAB_HOST: host name '-Q'"),
                             ("TOPOLAB_UNDERLAY_ADDRESS", "10.0.0.300", "TOPOLAB_UNDERLAY_ADDRESS: underlay address"),
                             ("TOPOLAB_HEARTBEAT_INTERVAL", "0", "TOPOLAB_HEARTBEAT_INTERVAL must be"),
                             ("TOPOLAB_HOST_DOWN_AFTER", "6", "TOPOLAB_HOST_DOWN_AFTER must be at least twice"),
                             ("TOPOLAB_HOST_DOWN_AFTER", "nan", "TOPOLAB_HOST_DOWN_AFTER must be")]:
        done = subprocess.run([sys.executable, "manage.py", "check"], env={**topolab_subprocess_env, var: value},
                              capture_output=True, text=True, timeout=60,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
        assert done.returncode != 0 and says in done.stderr, done.stderr


@pytest.fixture
def people(db):
    users = get_user_model().objects
    return {"staff": users.create_user("sam", password="correct horse battery", is_staff=True),
            "student": users.create_user("stu", password="correct horse battery")}


@pytest.mark.django_db
def test_staff_see_the_hosts_others_are_refused_in_the_error_shape(people, settings):
    settings.TOPOLAB_HOST_DOWN_AFTER = 15
    Host.objects.all().delete()  # the session's worker may have announced its host
    now = timezone.now()
    Host.objects.create(name="lab-b", underlay_address="192.0.2.2", cpus=8, memory_bytes=1 << 34, nodes_running=4,
                        version="0.1.0", last_heartbeat=now - timedelta(seconds=60))
    Host.objects.create(name="lab-a", underlay_address="192.0.2.1", cpus=4, memory_bytes=1 << 33, last_heartbeat=now)
    staff = APIClient()
    staff.force_authenticate(people["staff"])
    response = staff.get("/api/hosts/")
    assert response.status_code == 200
    body = response.json()
    assert [(h["name"], h["address"], h["cpus"], h["memory"], h["nodes"], h["up"]) for h in body] == [
        ("lab-a", "192.0.2.1", 4, 1 << 33, 0, True), ("lab-b", "192.0.2.2", 8, 1 << 34, 4, False)]
    assert set(body[0]) == {"name", "address", "cpus", "memory", "nodes", "version", "first_seen",
                            "last_heartbeat", "up"}

    student = APIClient()
    student.force_authenticate(people["student"])
    for client, codes in [(student, {403}), (APIClient(), {401, 403})]:
        refused = client.get("/api/hosts/")
        assert refused.status_code in codes
        assert [e["path"] for e in refused.json()["errors"]] == [""] and "lab-a" not in refused.content.decode()
    assert student.post("/api/hosts/", {}, format="json").status_code == 403
    assert staff.post("/api/hosts/", {}, format="json").status_code == 405


@pytest.mark.django_db
def test_the_schema_documents_the_hosts_list(people):
    staff = APIClient()
    staff.force_authenticate(people["staff"])
    op = staff.get("/api/schema/?format=json").json()["paths"]["/api/hosts/"]["get"]
    assert op["operationId"] == "hosts_list" and {"200", "401", "403"} <= set(op["responses"])


@pytest.mark.django_db(transaction=True)
def test_worker_start_recovery_sees_a_part_still_waiting_on_a_host_queue(redis_server):
    """A part's task waiting in agent.<host> (its agent is down or busy) keeps its run alive at another worker's
    start: alive_task_ids reads every host's queue, not only the shared one."""
    from webapp.runs import services as run_services
    from webapp.runs.signals import agent_queues, alive_task_ids

    owner = get_user_model().objects.create_user("rita", password="correct horse battery")
    lab = Lab.objects.create(owner=owner, name="span", document=DOC)
    host = f"nobody-{uuid.uuid4().hex[:6]}"  # no worker consumes agent.<host>
    run = Run.objects.create(lab=lab, kind=Run.Kind.DEPLOY, status=Run.Status.QUEUED,
                             parts=parts.new_parts([host, "simhost-q"]))
    Host.objects.create(name="simhost-q", underlay_address="192.0.2.9")
    assert {parts.host_queue(host), "agent.simhost-q"} <= set(agent_queues())
    with app.connection_for_write() as conn:
        parts.enqueue(run)  # both parts wait in their hosts' queues
        try:
            waiting = run.parts[host]["task_id"]
            assert waiting in alive_task_ids(timeout=0.5)
            assert run_services.fail_orphaned_runs(alive_task_ids(timeout=0.5)) == []
            assert Run.objects.get(pk=run.pk).status == Run.Status.QUEUED
        finally:
            client = conn.default_channel.client
            client.delete(parts.host_queue(host), "agent.simhost-q")
    assert run_services.fail_orphaned_runs(alive_task_ids(timeout=0.5))[0].run_id == run.pk  # gone: failed


@pytest.mark.django_db
def test_the_admin_lists_hosts_up_and_down(client, people):
    people["staff"].is_superuser = True
    people["staff"].save()
    Host.objects.create(name="lab-up", underlay_address="192.0.2.1")
    Host.objects.create(name="lab-gone", underlay_address="192.0.2.2",
                        last_heartbeat=timezone.now() - timedelta(hours=1))
    client.force_login(people["staff"])
    page = client.get("/admin/hosts/host/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "lab-up" in text and "lab-gone" in text and 'alt="True"' in text and 'alt="False"' in text
    assert client.get("/admin/hosts/host/add/").status_code == 403  # agents add themselves


def test_the_stream_agent_answers_with_its_host_name(stream_agent, settings):
    from asgiref.sync import async_to_sync

    from webapp.consoles.services import ask_agent

    reply = async_to_sync(ask_agent)({"type": "agent.ping"}, timeout=5)
    assert reply["host"] == settings.TOPOLAB_HOST and reply["agent"] == stream_agent
