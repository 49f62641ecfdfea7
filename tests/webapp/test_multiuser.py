"""Many users on one server (issue 12), tried as a student, an instructor and staff would, without the kernel:
uplinks the operator allows, labs that cannot be deleted while deployed, runs that keep the document that was
checked, quotas over deployed documents, unknown API fields, throttles, expiring tokens, retention, atomic limits.

People: sam (student, member of net101), ines (instructor of net101), otto (student in no class), root (staff).
"""
from __future__ import annotations

import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from webapp.accounts.models import Profile, Role
from webapp.classroom.models import Classroom, Quota, Template, TemplateVersion
from webapp.consoles import conf as console_conf
from webapp.consoles import retention
from webapp.consoles import services as console_services
from webapp.consoles.models import Capture, ConsoleSession
from webapp.labs import services as lab_services
from webapp.labs import uplinks
from webapp.labs.models import Lab
from webapp.runs import health
from webapp.runs import services as run_services
from webapp.runs.models import LabState, Run, RunEvent

pytestmark = [pytest.mark.webapp, pytest.mark.django_db]

REPO = Path(__file__).resolve().parents[2]


def hosts(n: int, name: str = "lab") -> dict:
    return {"version": 1, "name": name, "nodes": {f"h{i}": {"kind": "host"} for i in range(1, n + 1)}, "links": []}


def uplink_doc(**external) -> dict:
    return {"version": 1, "name": "up", "links": [{"endpoints": ["r1:eth0", "wan"]}],
            "nodes": {"r1": {"kind": "router", "interfaces": {"eth0": {"address": "203.0.113.2/24"}}},
                      "wan": {"kind": "external", **external}}}


@pytest.fixture
def people():
    User = get_user_model()
    sam, ines, otto = (User.objects.create_user(n) for n in ("sam", "ines", "otto"))
    root = User.objects.create_user("root", is_staff=True)
    Profile.objects.create(user=ines, role=Role.INSTRUCTOR)
    net101 = Classroom.objects.create(name="net101")
    net101.instructors.add(ines)
    net101.members.add(sam)
    return {"sam": sam, "ines": ines, "otto": otto, "root": root, "net101": net101}


def client(user) -> APIClient:
    c = APIClient()
    c.force_authenticate(user)
    return c


def deployed(lab: Lab, document: dict | None = None, version: int | None = None) -> Lab:
    """Bookkeeping of a deployed lab (what the agent writes when a deploy starts)."""
    run_services.set_deployed(lab.pk, True, document if document is not None else lab.document,
                              version or lab.version)
    return lab


# ------------------------------------------------------------------------------------------------ 1. uplinks


def test_no_host_bridge_is_allowed_by_default_for_anybody(people):
    for person in ("sam", "ines", "root"):
        assert uplinks.bridges_for(people[person]) == ()


def test_a_students_docker0_is_a_problem_at_its_path_and_the_deploy_is_refused_before_anything(people, settings):
    settings.TOPOLAB_UPLINK_BRIDGES = "br-lab"
    sam = people["sam"]
    lab = Lab.objects.create(owner=sam, name="up", document=uplink_doc(bridge="docker0"))
    body = client(sam).get(f"/api/labs/{lab.pk}/").json()
    assert body["valid"] is False
    assert body["errors"] == [{"path": "nodes.wan.bridge",
                               "message": "'docker0' is not a bridge labs may use on this server (use nat: true)"}]
    response = client(sam).post(f"/api/labs/{lab.pk}/deploy/")
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["errors"]] == ["nodes.wan.bridge"]
    assert not Run.objects.filter(lab=lab).exists() and not LabState.objects.filter(lab=lab).exists()
    # an allowed bridge the student's class does not give is refused the same way
    lab.document = uplink_doc(bridge="br-lab")
    lab.save()
    assert client(sam).post(f"/api/labs/{lab.pk}/deploy/").status_code == 400
    # NAT is open to students
    lab.document = uplink_doc(nat=True, address="203.0.113.1/24")
    lab.save()
    assert client(sam).get(f"/api/labs/{lab.pk}/").json()["errors"] == []


def test_roles_staff_all_instructors_the_allowed_students_what_their_class_allows(people, settings):
    settings.TOPOLAB_UPLINK_BRIDGES = "br-ex, br-lan"
    settings.TOPOLAB_UPLINK_INSTRUCTOR_BRIDGES = "br-ex"
    assert uplinks.bridges_for(people["root"]) == ("br-ex", "br-lan")
    assert uplinks.bridges_for(people["ines"]) == ("br-ex",)
    assert uplinks.bridges_for(people["sam"]) == ()
    people["net101"].uplink_bridges = ["br-ex", "docker0"]  # docker0 is not the operator's: never counts
    people["net101"].save()
    assert uplinks.bridges_for(people["sam"]) == ("br-ex",)
    assert uplinks.bridges_for(people["otto"]) == ()


def test_the_uplinks_api_lists_what_the_lab_may_use_for_the_properties_panel(people, settings):
    settings.TOPOLAB_UPLINK_BRIDGES = "br-ex,br-lan"
    ines, sam = people["ines"], people["sam"]
    assert client(ines).get("/api/uplinks/").json() == {"bridges": ["br-ex", "br-lan"], "nat": True}
    assert client(sam).get("/api/uplinks/").json() == {"bridges": [], "nat": True}
    assert APIClient().get("/api/uplinks/").status_code in (401, 403)
    mine = Lab.objects.create(owner=ines, name="mine")
    assert client(ines).get(f"/api/labs/{mine.pk}/uplinks/").json() == {"bridges": ["br-ex", "br-lan"], "nat": True}
    theirs = Lab.objects.create(owner=sam, name="theirs")
    # the instructor looking at a student's lab sees what the student's lab may use, no more
    assert client(ines).get(f"/api/labs/{theirs.pk}/uplinks/").json() == {"bridges": [], "nat": True}
    assert client(people["otto"]).get(f"/api/labs/{theirs.pk}/uplinks/").status_code == 404


def test_an_instructor_deploying_a_students_lab_cannot_lend_the_student_a_bridge(people, settings):
    settings.TOPOLAB_UPLINK_BRIDGES = "br-ex"
    lab = Lab.objects.create(owner=people["sam"], name="s", document=uplink_doc(bridge="br-ex"))
    response = client(people["ines"]).post(f"/api/labs/{lab.pk}/deploy/")
    assert response.status_code == 400 and response.json()["errors"][0]["path"] == "nodes.wan.bridge"
    # and a class that allows it makes it the student's own: then the instructor may deploy it too
    people["net101"].uplink_bridges = ["br-ex"]
    people["net101"].save()
    assert client(people["ines"]).post(f"/api/labs/{lab.pk}/deploy/").status_code == 202


def test_an_instructor_gives_the_class_only_bridges_they_may_use_and_unknown_fields_are_refused(people, settings):
    settings.TOPOLAB_UPLINK_BRIDGES = "br-ex,br-lan"
    settings.TOPOLAB_UPLINK_INSTRUCTOR_BRIDGES = "br-ex"
    url = f"/api/classes/{people['net101'].pk}/"
    refused = client(people["ines"]).patch(url, {"uplink_bridges": ["br-lan"]}, format="json")
    assert refused.status_code == 400 and "br-lan" in str(refused.json()["errors"])
    assert [e["path"] for e in refused.json()["errors"]] == ["uplink_bridges"]
    ok = client(people["ines"]).patch(url, {"uplink_bridges": ["br-ex"]}, format="json")
    assert ok.status_code == 200 and ok.json()["uplink_bridges"] == ["br-ex"]
    assert client(people["sam"]).patch(url, {"uplink_bridges": []}, format="json").status_code == 404
    unknown = client(people["ines"]).patch(url, {"uplink_bridges": [], "name": "x"}, format="json")
    assert unknown.status_code == 400 and [e["path"] for e in unknown.json()["errors"]] == ["name"]


def test_a_bridge_setting_that_is_not_an_interface_name_stops_the_server(settings):
    settings.TOPOLAB_UPLINK_BRIDGES = "br-ex,../../etc"
    with pytest.raises(ImproperlyConfigured, match="TOPOLAB_UPLINK_BRIDGES"):
        uplinks.server_bridges()


# ------------------------------------------------------------------------------------------------ 2. delete


def test_a_deployed_lab_cannot_be_deleted_the_answer_names_the_destroy_button(people):
    sam = people["sam"]
    lab = deployed(Lab.objects.create(owner=sam, name="running", document=hosts(1)))
    response = client(sam).delete(f"/api/labs/{lab.pk}/")
    assert response.status_code == 409
    assert "press Destroy" in response.json()["detail"]
    assert Lab.objects.filter(pk=lab.pk).exists()
    run_services.set_deployed(lab.pk, False)
    assert client(sam).delete(f"/api/labs/{lab.pk}/").status_code == 204
    assert not Lab.objects.filter(pk=lab.pk).exists()


def test_a_lab_with_a_queued_run_cannot_be_deleted_either(people):
    sam = people["sam"]
    lab = Lab.objects.create(owner=sam, name="queued", document=hosts(1))
    Run.objects.create(lab=lab, kind="deploy", status="queued")
    response = client(sam).delete(f"/api/labs/{lab.pk}/")
    assert response.status_code == 409 and "busy" in response.json()["detail"]


# ------------------------------------------------------------------------------------------------ 3. runs


def test_a_run_stores_the_document_that_was_checked_and_a_later_put_does_not_change_it(people):
    sam = people["sam"]
    lab = Lab.objects.create(owner=sam, name="small", document=hosts(2, name="small"))
    run = client(sam).post(f"/api/labs/{lab.pk}/deploy/").json()
    assert run["lab_version"] == 1
    big = client(sam).put(f"/api/labs/{lab.pk}/", {"version": 1, "document": hosts(30)}, format="json")
    assert big.status_code == 200 and big.json()["version"] == 2
    stored = Run.objects.get(pk=run["id"])
    assert stored.document == hosts(2, name="small") and stored.lab_version == 1


def test_quotas_count_deployed_documents_not_current_ones(people):
    """Deploy 4 nodes, save an empty document without redeploying: the 4 nodes still count."""
    sam = people["sam"]
    Quota.objects.create(user=sam, nodes=5)
    first = deployed(Lab.objects.create(owner=sam, name="first", document=hosts(4)))
    lab_services.save_lab(first, first.version, document=hosts(0, name="first"))
    second = Lab.objects.create(owner=sam, name="second", document=hosts(4))
    response = client(sam).post(f"/api/labs/{second.pk}/deploy/")
    assert response.status_code == 403
    assert response.json()["detail"].startswith("quota exceeded: nodes 8 of 5 for user sam with this lab (now 4)")
    assert response.json()["labs"] == [{"id": first.pk, "name": "first", "owner": "sam", "url": f"/labs/{first.pk}/"}]


def test_a_queued_deploy_counts_with_the_document_it_will_apply(people):
    sam = people["sam"]
    Quota.objects.create(user=sam, nodes=5)
    first = Lab.objects.create(owner=sam, name="first", document=hosts(4))
    assert client(sam).post(f"/api/labs/{first.pk}/deploy/").status_code == 202
    lab_services.save_lab(first, 1, document=hosts(0, name="first"))  # edited while queued: 4 still count
    second = Lab.objects.create(owner=sam, name="second", document=hosts(2))
    assert client(sam).post(f"/api/labs/{second.pk}/deploy/").status_code == 403


def test_parallel_deploys_of_two_labs_never_both_take_the_last_slot(people, transactional_db):
    sam = people["sam"]
    Quota.objects.create(user=sam, running_labs=1)
    labs = [Lab.objects.create(owner=sam, name=f"l{i}", document=hosts(1)) for i in range(2)]
    pending = list(labs)
    codes = at_once(2, lambda: client(sam).post(f"/api/labs/{pending.pop().pk}/deploy/").status_code)
    assert sorted(codes) == [202, 403]
    assert Run.objects.count() == 1


def test_the_lab_tells_which_version_is_deployed(people):
    sam = people["sam"]
    lab = Lab.objects.create(owner=sam, name="v", document=hosts(1))
    assert client(sam).get(f"/api/labs/{lab.pk}/").json()["deployed_version"] is None
    deployed(lab, version=1)
    lab_services.save_lab(lab, 1, document=hosts(2, name="v"))
    body = client(sam).get(f"/api/labs/{lab.pk}/").json()
    assert (body["deployed_version"], body["version"]) == (1, 2)
    assert run_services.snapshot(lab)["deployed_version"] == 1


# ------------------------------------------------------------------------------------------------ 5. strict bodies


def test_post_labs_with_an_unknown_field_answers_400_naming_it_and_makes_nothing(people):
    response = client(people["sam"]).post("/api/labs/", {"name": "x", "topology": {"nodes": {}}}, format="json")
    assert response.status_code == 400
    assert response.json() == {"errors": [
        {"path": "topology", "message": "unknown field; this request takes name, description, document"}]}
    assert not Lab.objects.exists()


@pytest.mark.parametrize("method, path, body, field", [
    ("put", "/api/labs/{pk}/", {"version": 1, "document": {}, "documnet": {}}, "documnet"),
    ("patch", "/api/labs/{pk}/", {"version": 1, "nmae": "x"}, "nmae"),
    ("post", "/api/labs/{pk}/duplicate/", {"title": "x"}, "title"),
    ("post", "/api/validate/", {"document": {}, "strict": True}, "strict"),
    ("post", "/api/labs/{pk}/deploy/", {"force": True}, "force"),
    ("post", "/api/labs/{pk}/destroy/", {"force": True}, "force"),
    ("post", "/api/labs/{pk}/captures/", {"link": 0, "snaplen": 1}, "snaplen"),
    ("post", "/api/classes/", {"name": "c", "colour": "red"}, "colour"),
])
def test_every_api_names_the_unknown_fields_it_refuses(people, method, path, body, field):
    sam = people["sam"]
    lab = Lab.objects.create(owner=sam, name="x", document=hosts(1))
    if path.startswith("/api/classes/"):
        sam = people["ines"]
    response = getattr(client(sam), method)(path.format(pk=lab.pk), body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.content.decode()
    lab.refresh_from_db()
    assert lab.version == 1 and not Run.objects.exists() and not Capture.objects.exists()


def test_starting_a_template_with_a_body_is_refused_naming_the_field(people):
    ines, sam = people["ines"], people["sam"]
    template = Template.objects.create(owner=ines, title="t", visibility="public")
    TemplateVersion.objects.create(template=template, number=1, document=hosts(1))
    response = client(sam).post(f"/api/templates/{template.pk}/start/", {"name": "mine"}, format="json")
    assert response.status_code == 400 and [e["path"] for e in response.json()["errors"]] == ["name"]
    assert not Lab.objects.filter(owner=sam).exists()
    assert client(sam).post(f"/api/templates/{template.pk}/start/").status_code == 201


# ------------------------------------------------------------------------------------------------ 4. settings


def test_debug_is_off_unless_topolab_debug_is_1():
    def debug(env: dict) -> str:
        code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
        env = env | {"DJANGO_SETTINGS_MODULE": "webapp.settings"}
        return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                              check=True).stdout.strip()

    import os

    assert debug({k: v for k, v in os.environ.items() if k != "TOPOLAB_DEBUG"}) == "False"
    assert debug(dict(os.environ) | {"TOPOLAB_DEBUG": "1"}) == "True"


@pytest.mark.urls("boom_urls")
def test_an_error_page_shows_no_traceback(settings):
    settings.DEBUG = False
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    text = response.content.decode()
    assert "Traceback" not in text and "secret-local-variable" not in text and "boom_urls" not in text


def test_deploys_are_throttled_per_user_with_the_limit_from_settings(people, settings):
    settings.TOPOLAB_THROTTLE_DEPLOY = "2/minute"
    sam = people["sam"]
    lab = Lab.objects.create(owner=sam, name="t", document=hosts(1))
    codes = [client(sam).post(f"/api/labs/{lab.pk}/destroy/").status_code for _ in range(3)]
    assert codes[2] == 429
    other = Lab.objects.create(owner=people["otto"], name="o", document=hosts(1))
    assert client(people["otto"]).post(f"/api/labs/{other.pk}/destroy/").status_code == 202  # otto's own count


def test_status_is_throttled(people, settings, monkeypatch):
    from webapp.runs import tasks

    class Result:
        def get(self, timeout=None):
            return {"nodes": {}, "drift": []}

        def forget(self):
            pass

    monkeypatch.setattr(tasks.lab_status, "apply_async", lambda *a, **k: Result())
    settings.TOPOLAB_THROTTLE_STATUS = "1/minute"
    lab = Lab.objects.create(owner=people["sam"], name="s", document=hosts(1))
    assert [client(people["sam"]).get(f"/api/labs/{lab.pk}/status/").status_code for _ in range(2)] == [200, 429]


def test_sign_in_attempts_are_throttled_per_address(people, settings):
    settings.TOPOLAB_THROTTLE_LOGIN = "3/minute"
    sam = people["sam"]
    sam.set_password("right-password-1")
    sam.save()
    web = Client()
    codes = [web.post("/accounts/login/", {"username": "sam", "password": "wrong"}).status_code for _ in range(3)]
    assert codes == [200, 200, 200]  # the form again, with its error
    blocked = web.post("/accounts/login/", {"username": "sam", "password": "right-password-1"})
    assert blocked.status_code == 429 and "Too many sign-in attempts" in blocked.content.decode()
    assert "_auth_user_id" not in web.session


def test_tokens_expire_and_asking_again_gives_a_new_one(people, settings):
    settings.TOPOLAB_THROTTLE_TOKEN = "100/minute"
    sam = people["sam"]
    sam.set_password("right-password-1")
    sam.save()
    anonymous = APIClient()
    first = anonymous.post("/api/token/", {"username": "sam", "password": "right-password-1"}).json()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {first['token']}")
    assert api.get("/api/labs/").status_code == 200
    Token.objects.filter(key=first["token"]).update(created=timezone.now() - timedelta(seconds=settings.TOPOLAB_TOKEN_TTL + 1))
    expired = api.get("/api/labs/")
    assert expired.status_code in (401, 403) and "expired" in expired.json()["detail"]
    second = anonymous.post("/api/token/", {"username": "sam", "password": "right-password-1"}).json()
    assert second["token"] != first["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {second['token']}")
    assert api.get("/api/labs/").status_code == 200


def test_token_requests_are_throttled(settings):
    settings.TOPOLAB_THROTTLE_TOKEN = "2/minute"
    codes = [APIClient().post("/api/token/", {"username": "x", "password": "y"}).status_code for _ in range(3)]
    assert codes == [400, 400, 429]


# ------------------------------------------------------------------------------------------------ retention


def test_run_events_of_old_runs_are_pruned_past_the_limit(people):
    lab = Lab.objects.create(owner=people["sam"], name="old", document=hosts(1))
    runs = []
    for i in range(5):
        run = Run.objects.create(lab=lab, kind="deploy", status="succeeded")
        Run.objects.filter(pk=run.pk).update(created=timezone.now() - timedelta(hours=10 - i))
        run_services.record_event(lab.pk, run.pk, "run.started", kind="deploy")
        runs.append(run)
    deleted = health.prune_run_events(keep_runs=2)
    assert deleted == 3
    assert set(RunEvent.objects.values_list("run_id", flat=True)) == {runs[3].pk, runs[4].pk}
    assert Run.objects.count() == 5  # the runs stay: who deployed what, and when


def test_captures_go_with_their_lab_and_after_the_retention_period(people, settings):
    settings.CAPTURE_RETENTION_SECONDS = 3600
    lab = Lab.objects.create(owner=people["sam"], name="cap", document=hosts(1))
    old, fresh, gone_with_lab = (
        Capture.objects.create(lab=lab, link=0, status=Capture.Status.STOPPED, max_bytes=1, max_seconds=1,
                               ended=timezone.now() - timedelta(seconds=s)) for s in (7200, 60, 60))
    for cap in (old, fresh, gone_with_lab):
        console_conf.capture_path(cap.pk).write_bytes(b"pcap")
    running = Capture.objects.create(lab=lab, link=0, status=Capture.Status.RUNNING, max_bytes=1, max_seconds=1)
    console_conf.capture_path(running.pk).write_bytes(b"pcap")
    Capture.objects.filter(pk=gone_with_lab.pk).delete()
    assert retention.prune_captures() == 2
    assert not console_conf.capture_path(old.pk).exists() and not console_conf.capture_path(gone_with_lab.pk).exists()
    assert console_conf.capture_path(fresh.pk).exists() and console_conf.capture_path(running.pk).exists()
    assert set(Capture.objects.values_list("pk", flat=True)) == {fresh.pk, running.pk}
    for cap in (fresh, running):
        console_conf.capture_path(cap.pk).unlink()


# ------------------------------------------------------------------------------------------------ atomic limits


def at_once(n: int, fn) -> list:
    """fn() in n threads released together (each with its own database connection); their results."""
    from django.db import connection

    barrier, results = threading.Barrier(n), []

    def run():
        barrier.wait()
        try:
            results.append(fn())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(n)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    return results


@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_console_claims_never_exceed_the_limit(settings):
    settings.CONSOLE_MAX_OPEN = 5
    user = get_user_model().objects.create_user("para")
    lab = Lab.objects.create(owner=user, name="p", document=hosts(1))
    results = at_once(20, lambda: console_services.claim_console(user, lab, "h1"))
    assert sum(r is not None for r in results) == 5
    assert ConsoleSession.objects.filter(user=user, ended__isnull=True).count() == 5


@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_capture_claims_never_exceed_the_limit(settings):
    settings.CAPTURE_MAX_RUNNING = 3
    user = get_user_model().objects.create_user("cappara")
    lab = Lab.objects.create(owner=user, name="p", document=hosts(1))
    clean = {"link": None, "node": "h1", "interface": "eth0", "filter": ""}
    results = at_once(20, lambda: console_services.claim_capture(user, lab, clean))
    assert sum(r is not None for r in results) == 3
    assert Capture.objects.filter(started_by=user, status__in=Capture.ACTIVE).count() == 3


@pytest.mark.django_db(transaction=True)
async def test_twenty_parallel_console_websockets_never_exceed_the_limit(settings):
    """Through the consumer: 20 opens at once, limit 5 -> 5 sessions, 15 closed with 4429."""
    import asyncio

    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator

    from webapp.asgi import application

    settings.CONSOLE_MAX_OPEN = 5
    # no stream agent listens here: the 5 consoles stay "connecting" (a live agent would end them at once, the lab
    # not being deployed, and free their places while the others still arrive)
    settings.AGENT_CHANNEL = "topolab-agent.nobody-listens"

    def setup():
        user = get_user_model().objects.create_user("wsuser")
        lab = Lab.objects.create(owner=user, name="ws", document=hosts(1))
        web = Client()
        web.force_login(user)
        return user, lab, f"sessionid={web.cookies['sessionid'].value}".encode()

    user, lab, cookie = await sync_to_async(setup)()
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver"), (b"cookie", cookie)]
    comms = [WebsocketCommunicator(application, f"/ws/labs/{lab.pk}/console/h1/", headers=headers)
             for _ in range(20)]
    await asyncio.gather(*(c.connect(timeout=10) for c in comms))

    async def outcome(comm):
        """The close code, or "open" once it stayed quiet for 3 s (whatever else it sends meanwhile: the loop is
        bounded, so a consumer that keeps talking cannot hang the suite).

        Quiet is asked with receive_nothing, never a receive_output that times out: that one cancels the consumer
        and then awaits it, and a consumer cancelled inside channels_redis' receive can wait on its lock forever
        (this test hung CI for 90 minutes that way, about one run in three)."""
        deadline = asyncio.get_running_loop().time() + 20
        while asyncio.get_running_loop().time() < deadline:
            if await comm.receive_nothing(timeout=3):
                return "open"
            out = await comm.receive_output(timeout=1)  # something is queued: it comes at once
            if out["type"] == "websocket.close":
                return out.get("code")
        return "open"

    outcomes = await asyncio.gather(*(outcome(c) for c in comms))
    try:
        assert outcomes.count(4429) == 15 and outcomes.count("open") == 5, outcomes
        count = await sync_to_async(
            lambda: ConsoleSession.objects.filter(user=user, ended__isnull=True).count())()
        assert count == 5
    finally:
        for comm in comms:
            if not comm.future.done():
                await comm.disconnect()


@pytest.mark.django_db(transaction=True)
def test_a_deleted_labs_capture_files_are_deleted_by_the_agent_at_once(celery_worker):
    """The web tier cannot delete pcap files (they are the agent's): deleting the lab asks the real agent to."""
    import time

    user = get_user_model().objects.create_user("capdel")
    lab = Lab.objects.create(owner=user, name="c", document=hosts(1))
    caps = [Capture.objects.create(lab=lab, link=0, status=Capture.Status.STOPPED, max_bytes=1, max_seconds=1)
            for _ in range(2)]
    paths = [console_conf.capture_path(c.pk) for c in caps]
    for path in paths:
        path.write_bytes(b"pcap")
    assert client(user).delete(f"/api/labs/{lab.pk}/").status_code == 204
    deadline = time.monotonic() + 30
    while any(p.exists() for p in paths) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(p.exists() for p in paths)
