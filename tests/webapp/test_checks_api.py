"""The checks API without the kernel: who may run and see which checks, what a student's lab holds of a template's
checks, hidden checks never in an answer, scores and CSV, reset. (Real runs: test_checks_pipeline.py.)"""
from __future__ import annotations

import csv
import io
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from webapp.accounts.models import Profile, Role
from webapp.checks.agent import event_payload
from webapp.checks.models import CheckResult
from webapp.classroom import services as classroom
from webapp.classroom.models import Visibility
from webapp.labs.models import Lab
from webapp.runs.models import LabState, Run

pytestmark = [pytest.mark.webapp, pytest.mark.django_db]

CHECKS = [
    {"id": "gw", "title": "h1 reaches its gateway", "ping": {"from": "h1", "to": "10.0.1.254"}},
    {"id": "route", "title": "h1 has a default route", "visibility": "title", "points": 2,
     "route": {"node": "h1", "to": "default", "via": "10.0.1.254"}},
    {"id": "secret", "title": "the secret check", "visibility": "hidden",
     "command": {"node": "h1", "run": ["cat", "/etc/secret-answer"], "output_matches": "forty-two"}},
]
DOC = {"version": 1, "name": "checked", "nodes": {
    "r1": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.1.254/24"}}},
    "sw": {"kind": "bridge"},
    "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}},
           "routes": [{"to": "default", "via": "10.0.1.254"}]}},
    "links": [{"endpoints": ["r1:eth0", "sw"]}, {"endpoints": ["h1:eth0", "sw"]}], "checks": CHECKS}


@pytest.fixture
def people():
    User = get_user_model()

    def user(name, role=Role.STUDENT):
        u = User.objects.create_user(name)
        Profile.objects.create(user=u, role=role)
        return u

    P = SimpleNamespace(irene=user("irene", Role.INSTRUCTOR), ivan=user("ivan", Role.INSTRUCTOR),
                        alice=user("alice"), bob=user("bob"))
    P.net101 = classroom.create_classroom(P.irene, "net101")
    P.net101.members.add(P.alice, P.bob)
    source = Lab.objects.create(owner=P.irene, name="checked", document=DOC)
    P.template = classroom.publish(P.irene, source, title="Lab 1", visibility=Visibility.CLASS,
                                   classrooms=[P.net101])
    P.alice_lab = classroom.start_lab(P.alice, P.template)
    P.bob_lab = classroom.start_lab(P.bob, P.template)
    return P


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def outcomes(passed: dict[str, bool]) -> list[dict]:
    return [{"id": c["id"], "title": c["title"], "passed": passed[c["id"]], "message": f"saw {c['id']}",
             "points": c.get("points", 1), "earned": c.get("points", 1) if passed[c["id"]] else 0,
             "visibility": c.get("visibility", "details"), "nodes": ["h1"], "links": [1]} for c in CHECKS]


def test_a_template_freezes_its_checks_and_a_students_lab_holds_none_of_them(people):
    version = people.template.latest_version()
    assert [c["id"] for c in version.document["checks"]] == ["gw", "route", "secret"]
    assert "checks" not in people.alice_lab.document
    # the instructor changes the source lab's checks: the published version keeps its own
    people.template.source_lab.document = {**DOC, "checks": CHECKS[:1]}
    people.template.source_lab.save()
    assert len(people.template.latest_version().document["checks"]) == 3


def test_a_student_sees_details_titles_and_not_the_hidden_check(people):
    body = api(people.alice).get(f"/api/labs/{people.alice_lab.pk}/checks/").json()
    assert body["source"] == "template" and body["editable"] is False and body["count"] == 3
    assert body["checks"] == [CHECKS[0], {"id": "route", "title": "h1 has a default route", "points": 2,
                                          "visibility": "title"}]
    assert "secret" not in str(body) and "forty-two" not in str(body)
    everything = api(people.irene).get(f"/api/labs/{people.alice_lab.pk}/checks/").json()
    assert everything["checks"] == CHECKS and everything["all"] is True


def test_a_student_sees_their_result_without_hidden_outcomes_and_the_instructor_sees_all(people):
    CheckResult.objects.create(lab=people.alice_lab, source="template", earned=1, possible=4, percent=25.0,
                               outcomes=outcomes({"gw": True, "route": False, "secret": False}))
    mine = api(people.alice).get(f"/api/labs/{people.alice_lab.pk}/checks/").json()["result"]
    assert (mine["earned"], mine["possible"], mine["percent"]) == (1, 4, 25.0)
    assert [o["id"] for o in mine["checks"]] == ["gw", "route"]
    assert "message" not in mine["checks"][1] and "secret" not in str(mine)
    full = api(people.irene).get(f"/api/labs/{people.alice_lab.pk}/checks/").json()["result"]
    assert [o["message"] for o in full["checks"]] == ["saw gw", "saw route", "saw secret"]


def test_check_events_of_a_template_carry_no_hidden_details():
    gw, route, secret = outcomes({"gw": False, "route": False, "secret": False})
    assert event_payload(gw, "template") == gw
    assert event_payload(route, "template") == {"id": "route", "title": "h1 has a default route", "passed": False,
                                                "points": 2, "earned": 0, "visibility": "title"}
    assert event_payload(secret, "template") == {"hidden": True}
    assert event_payload(secret, "document") == secret  # the owner wrote their own checks


def test_nobody_else_runs_or_sees_a_students_checks(people):
    for who in (people.bob, people.ivan):
        assert api(who).get(f"/api/labs/{people.alice_lab.pk}/checks/").status_code == 404
        assert api(who).post(f"/api/labs/{people.alice_lab.pk}/check").status_code == 404
        assert api(who).post(f"/api/labs/{people.alice_lab.pk}/reset/").status_code == 404
    # the instructor may run the checks (not reset: that changes the student's document)
    assert api(people.irene).post(f"/api/labs/{people.alice_lab.pk}/reset/").status_code == 403
    assert api(people.alice).get(f"/api/classes/{people.net101.pk}/scores/").status_code == 404
    assert api(people.ivan).get(f"/api/classes/{people.net101.pk}/scores.csv").status_code == 404
    assert api(people.alice).post(f"/api/classes/{people.net101.pk}/check-all/").status_code == 404
    assert Run.objects.count() == 0


def test_a_check_needs_a_deployed_lab_with_well_formed_checks(people):
    response = api(people.alice).post(f"/api/labs/{people.alice_lab.pk}/check")
    assert response.status_code == 400
    assert response.json()["errors"] == [{"path": "", "message": "the lab is not deployed: deploy it, then check it"}]
    mine = Lab.objects.create(owner=people.alice, name="own", document={**DOC, "checks": []})
    response = api(people.alice).post(f"/api/labs/{mine.pk}/check")
    assert response.status_code == 400 and response.json()["errors"][0]["path"] == "checks"
    LabState.objects.create(lab=mine, deployed=True)
    mine.document = {**DOC, "checks": [{"id": "x", "title": "x", "ping": {"from": "h1", "to": "h1", "count": 0}}]}
    mine.save()
    response = api(people.alice).post(f"/api/labs/{mine.pk}/check")
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "checks.0.ping.count"


def test_a_check_run_is_a_run_and_a_second_one_is_busy(people, monkeypatch, django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr("webapp.checks.services._enqueue", queued.append)
    LabState.objects.create(lab=people.alice_lab, deployed=True)
    with django_capture_on_commit_callbacks(execute=True):
        first = api(people.alice).post(f"/api/labs/{people.alice_lab.pk}/check")
    assert first.status_code == 202 and first.json()["kind"] == "check"
    run = Run.objects.get(pk=first.json()["id"])
    assert run.document == {"checks": CHECKS, "source": "template"}  # the template's, not the student's
    second = api(people.irene).post(f"/api/labs/{people.alice_lab.pk}/check")
    assert second.status_code == 409 and second.json()["run"]["id"] == run.pk
    assert len(queued) == 1


def test_class_scores_and_csv_show_every_students_score_and_marks(people):
    CheckResult.objects.create(lab=people.alice_lab, source="template", earned=4, possible=4, percent=100.0,
                               outcomes=outcomes({"gw": True, "route": True, "secret": True}))
    CheckResult.objects.create(lab=people.bob_lab, source="template", earned=1, possible=4, percent=25.0,
                               outcomes=outcomes({"gw": True, "route": False, "secret": False}))
    body = api(people.irene).get(f"/api/classes/{people.net101.pk}/scores/").json()
    assert [c["id"] for c in body["checks"]] == ["gw", "route", "secret"]
    rows = {r["owner"]: r for r in body["rows"]}
    assert rows["alice"]["result"]["percent"] == 100.0
    assert rows["bob"]["result"]["marks"] == {"gw": True, "route": False, "secret": False}
    text = api(people.irene).get(f"/api/classes/{people.net101.pk}/scores.csv").content.decode()
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == ["student", "lab", "lab_id", "template", "earned", "possible", "percent", "checked", "gw",
                        "route", "secret"]
    by_student = {row[0]: row for row in table[1:]}
    assert by_student["alice"][4:7] == ["4", "4", "100.0"] and by_student["alice"][8:] == ["1", "1", "1"]
    assert by_student["bob"][4:7] == ["1", "4", "25.0"] and by_student["bob"][8:] == ["1", "0", "0"]


def test_a_csv_cell_never_starts_a_formula(people):
    people.bob_lab.name = "=HYPERLINK(\"http://x\")"
    people.bob_lab.save()
    text = api(people.irene).get(f"/api/classes/{people.net101.pk}/scores.csv").content.decode()
    assert "'=HYPERLINK" in text


def test_check_all_starts_a_run_for_each_deployed_lab(people, monkeypatch, django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr("webapp.checks.services._enqueue", queued.append)
    LabState.objects.create(lab=people.alice_lab, deployed=True)
    LabState.objects.create(lab=people.bob_lab, deployed=True)
    Run.objects.create(lab=people.bob_lab, kind="deploy", status="running")
    with django_capture_on_commit_callbacks(execute=True):
        body = api(people.irene).post(f"/api/classes/{people.net101.pk}/check-all/").json()
    assert [s["owner"] for s in body["started"]] == ["alice"]
    assert [s["owner"] for s in body["skipped"]] == ["bob"] and "busy" in body["skipped"][0]["reason"]
    assert [r.lab_id for r in queued] == [people.alice_lab.pk]


def test_reset_replaces_the_document_with_the_template_version_and_queues_a_reset_run(
        people, monkeypatch, django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr("webapp.checks.services._enqueue", queued.append)
    lab = people.alice_lab
    lab.document = {**lab.document, "nodes": {**lab.document["nodes"], "h9": {"kind": "host"}}}
    lab.save()
    before = Lab.objects.get(pk=lab.pk).version
    with django_capture_on_commit_callbacks(execute=True):
        response = api(people.alice).post(f"/api/labs/{lab.pk}/reset/")
    assert response.status_code == 202 and len(queued) == 1 and response.json()["kind"] == "reset"
    lab.refresh_from_db()
    assert "h9" not in lab.document["nodes"] and "checks" not in lab.document and lab.version == before + 1
    assert Run.objects.get(pk=response.json()["id"]).document == lab.document
    own = Lab.objects.create(owner=people.alice, name="own", document=DOC)
    assert api(people.alice).post(f"/api/labs/{own.pk}/reset/").status_code == 400
