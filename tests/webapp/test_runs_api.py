"""The runs REST API without an agent: validation, permissions, one active run per lab, runs and events."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from rest_framework.test import APIClient

from webapp.labs.models import Lab
from webapp.runs import services
from webapp.runs.models import Run

pytestmark = [pytest.mark.webapp, pytest.mark.django_db]

TWO_HOSTS = {
    "version": 1, "name": "two",
    "nodes": {
        "sw": {"kind": "bridge"},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}}},
        "h2": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.2/24"}}},
    },
    "links": [{"endpoints": ["h1:eth0", "sw"]}, {"endpoints": ["h2:eth0", "sw"]}],
}


@pytest.fixture
def owner():
    return get_user_model().objects.create_user("olivia", password="correct horse battery")


@pytest.fixture
def outsider():
    return get_user_model().objects.create_user("oscar", password="correct horse battery")


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def lab(owner):
    return Lab.objects.create(owner=owner, name="two", document=TWO_HOSTS)


def test_it_queues_a_deploy_and_answers_202_with_the_run(owner, lab):
    response = client_for(owner).post(f"/api/labs/{lab.pk}/deploy")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["kind"] == "deploy" and body["status"] == "queued" and body["lab"] == lab.pk
    assert body["started_by"] == "olivia"
    assert Run.objects.get(pk=body["id"]).status == "queued"


def test_it_refuses_an_invalid_document_with_paths(owner):
    bad = {**TWO_HOSTS, "nodes": {**TWO_HOSTS["nodes"],
                                  "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.300/24"}}}}}
    lab = Lab.objects.create(owner=owner, name="bad", document=bad)
    response = client_for(owner).post(f"/api/labs/{lab.pk}/deploy")
    assert response.status_code == 400
    paths = [e["path"] for e in response.json()["errors"]]
    assert "nodes.h1.interfaces.eth0.address" in paths
    assert not Run.objects.filter(lab=lab).exists()


def test_it_refuses_a_second_run_while_one_is_active_naming_it(owner, lab):
    api = client_for(owner)
    first = api.post(f"/api/labs/{lab.pk}/deploy").json()
    for action in ("deploy", "destroy"):
        response = api.post(f"/api/labs/{lab.pk}/{action}")
        assert response.status_code == 409
        assert response.json()["run"]["id"] == first["id"]
        assert f"deploy #{first['id']} is queued" in response.json()["detail"]
    assert Run.objects.filter(lab=lab).count() == 1


def test_the_database_allows_one_active_run_per_lab(lab):
    Run.objects.create(lab=lab, kind="deploy", status="running")
    Run.objects.create(lab=lab, kind="deploy", status="failed")  # finished runs do not count
    with pytest.raises(IntegrityError), transaction.atomic():
        Run.objects.create(lab=lab, kind="destroy")


def test_a_finished_run_does_not_block_the_next(owner, lab):
    Run.objects.create(lab=lab, kind="deploy", status="succeeded")
    assert client_for(owner).post(f"/api/labs/{lab.pk}/destroy").status_code == 202


def test_it_hides_another_users_lab_and_runs(owner, outsider, lab):
    run = Run.objects.create(lab=lab, kind="deploy")
    api = client_for(outsider)
    for url in (f"/api/labs/{lab.pk}/deploy", f"/api/labs/{lab.pk}/destroy"):
        assert api.post(url).status_code == 404
    for url in (f"/api/runs/{run.pk}", f"/api/labs/{lab.pk}/runs", f"/api/labs/{lab.pk}/events",
                f"/api/labs/{lab.pk}/status"):
        assert api.get(url).status_code == 404, url


def test_it_refuses_anonymous_callers(lab):
    assert APIClient().post(f"/api/labs/{lab.pk}/deploy").status_code == 403
    assert APIClient().get(f"/api/labs/{lab.pk}/events").status_code == 403


def test_it_asks_the_permissions_module_whether_the_user_may_deploy(owner, lab, monkeypatch):
    from webapp.runs.api import views

    monkeypatch.setattr(views, "can_deploy", lambda user, lab: False)
    response = client_for(owner).post(f"/api/labs/{lab.pk}/deploy")
    assert response.status_code == 403
    assert not Run.objects.exists()


def test_runs_and_events_are_listed_in_order(owner, lab):
    run = Run.objects.create(lab=lab, kind="deploy", status="running")
    services.record_event(lab.pk, run.pk, "run.started", kind="deploy")
    services.record_event(lab.pk, run.pk, "node.state", node="h1", state="starting")
    services.record_event(lab.pk, run.pk, "node.state", node="h1", state="running")
    api = client_for(owner)

    detail = api.get(f"/api/runs/{run.pk}").json()
    assert [e["seq"] for e in detail["events"]] == [1, 2, 3]
    assert detail["events"][2] == {**detail["events"][2], "type": "node.state", "node": "h1", "state": "running",
                                   "lab": lab.pk, "run": run.pk}
    assert isinstance(detail["events"][0]["ts"], float)

    after = api.get(f"/api/labs/{lab.pk}/events?after=1").json()
    assert [e["seq"] for e in after] == [2, 3]
    assert api.get(f"/api/labs/{lab.pk}/events?after=x").status_code == 400
    assert [r["id"] for r in api.get(f"/api/labs/{lab.pk}/runs").json()] == [run.pk]
    assert services.snapshot(lab)["nodes"] == {"h1": "running"}


def test_seq_is_per_lab(owner, lab):
    other = Lab.objects.create(owner=owner, name="other", document=TWO_HOSTS)
    assert services.record_event(lab.pk, None, "node.state", node="h1", state="running")["seq"] == 1
    assert services.record_event(other.pk, None, "node.state", node="h1", state="running")["seq"] == 1
    assert services.record_event(lab.pk, None, "node.state", node="h2", state="running")["seq"] == 2


def test_the_schema_documents_the_runs_endpoints(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path in ("/api/labs/{id}/deploy/", "/api/labs/{id}/destroy/", "/api/runs/{id}/",
                 "/api/labs/{id}/events/", "/api/labs/{id}/status/", "/api/labs/{id}/runs/"):
        assert path in schema["paths"], path
