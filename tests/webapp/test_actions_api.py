"""POST /api/labs/<pk>/actions/ without an agent: who may act on a running lab, and every refusal naming what is
wrong (issue 18). The actions themselves run in tests/webapp/test_actions_pipeline.py and tests/kernel."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from webapp.accounts.models import Profile, Role
from webapp.labs.models import Lab
from webapp.runs.models import LabState, Run

pytestmark = [pytest.mark.webapp, pytest.mark.django_db]

DOC = {
    "version": 1, "name": "acts",
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
    """A lab the agent deployed (LabState as its deploy leaves it)."""
    lab = Lab.objects.create(owner=owner, name="acts", document=DOC)
    LabState.objects.create(lab=lab, deployed=True, deployed_document=DOC, deployed_version=lab.version)
    return lab


def act(user, lab, body):
    return client_for(user).post(f"/api/labs/{lab.pk}/actions/", body, format="json")


def errors(response) -> dict[str, str]:
    return {e["path"]: e["message"] for e in response.json()["errors"]}


def test_the_owner_stops_a_node_as_a_queued_action_run(owner, lab):
    response = act(owner, lab, {"action": "stop", "node": "h1"})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["kind"] == "action" and body["status"] == "queued"
    assert body["action"] == {"action": "stop", "node": "h1"}
    run = Run.objects.get(pk=body["id"])
    assert run.action == {"action": "stop", "node": "h1"} and run.document is None


def test_a_link_is_named_by_its_endpoints_in_either_order(owner, lab):
    response = act(owner, lab, {"action": "link-down", "link": ["sw", "h2:eth0"]})
    assert response.status_code == 202, response.content
    assert response.json()["action"] == {"action": "link-down", "link": ["h2:eth0", "sw"]}


def test_another_user_cannot_stop_restart_or_set_links_of_my_lab(owner, lab, outsider):
    for body in ({"action": "stop", "node": "h1"}, {"action": "restart", "node": "h1"},
                 {"action": "link-down", "link": ["h1:eth0", "sw"]},
                 {"action": "link-conditions", "link": ["h1:eth0", "sw"], "conditions": {"loss": "100%"}}):
        assert act(outsider, lab, body).status_code == 404, body
    assert not Run.objects.filter(lab=lab).exists()
    anonymous = APIClient().post(f"/api/labs/{lab.pk}/actions/", {"action": "stop", "node": "h1"}, format="json")
    assert anonymous.status_code in (401, 403)


def test_a_classmate_cannot_but_the_owners_instructor_can(owner, lab):
    from webapp.classroom.models import Classroom

    teacher = get_user_model().objects.create_user("ines", password="correct horse battery")
    Profile.objects.create(user=teacher, role=Role.INSTRUCTOR)
    classmate = get_user_model().objects.create_user("carl", password="correct horse battery")
    room = Classroom.objects.create(name="net101")
    room.instructors.add(teacher)
    room.members.add(owner, classmate)
    assert act(classmate, lab, {"action": "stop", "node": "h1"}).status_code == 404
    assert act(teacher, lab, {"action": "stop", "node": "h1"}).status_code == 202


def test_a_node_or_link_not_in_the_running_document_is_refused_naming_it(owner, lab):
    response = act(owner, lab, {"action": "stop", "node": "h9"})
    assert response.status_code == 400 and "'h9'" in errors(response)["node"]
    response = act(owner, lab, {"action": "link-up", "link": ["h1:eth0", "h2:eth0"]})
    assert response.status_code == 400 and "h1:eth0 - h2:eth0" in errors(response)["link"]
    response = act(owner, lab, {"action": "link-up", "link": "h1:eth0"})
    assert response.status_code == 400 and "link" in errors(response)
    response = act(owner, lab, {"action": "stop", "node": "sw"})  # a bridge runs nothing to stop
    assert response.status_code == 400 and "sw" in errors(response)["node"]
    response = act(owner, lab, {"action": "explode", "node": "h1"})
    assert response.status_code == 400 and "action" in errors(response)
    response = act(owner, lab, {"action": "stop", "node": "h1", "force": True})
    assert response.status_code == 400 and "unknown field" in errors(response)["force"]
    # a node added to the document but not deployed yet is not in what runs
    lab.document = {**DOC, "nodes": {**DOC["nodes"], "h3": {"kind": "host"}}}
    lab.save()
    assert act(owner, lab, {"action": "stop", "node": "h3"}).status_code == 400
    assert not Run.objects.filter(lab=lab).exists()


def test_conditions_are_validated_with_problems_at_their_path(owner, lab):
    link = ["h1:eth0", "sw"]
    response = act(owner, lab, {"action": "link-conditions", "link": link,
                                "conditions": {"delay": "soon", "loss": "150%", "rate": "-3mbit"}})
    assert response.status_code == 400, response.content
    assert set(errors(response)) == {"conditions.delay", "conditions.loss", "conditions.rate"}
    response = act(owner, lab, {"action": "link-conditions", "link": link, "conditions": {"jitter": "5ms"}})
    assert response.status_code == 400 and "conditions.jitter" in errors(response)
    response = act(owner, lab, {"action": "link-conditions", "link": link, "conditions": {"colour": "red"}})
    assert response.status_code == 400 and "conditions.colour" in errors(response)
    response = act(owner, lab, {"action": "link-conditions", "link": link,
                                "conditions": {"delay": "20ms", "rate": "10mbit"}})
    assert response.status_code == 202, response.content
    assert response.json()["action"]["conditions"] == {"delay": "20ms", "rate": "10mbit"}


def test_an_action_on_a_lab_that_is_not_deployed_or_busy_is_refused_with_409(owner, lab):
    Run.objects.create(lab=lab, kind=Run.Kind.DEPLOY, status=Run.Status.RUNNING)
    busy = act(owner, lab, {"action": "stop", "node": "h1"})
    assert busy.status_code == 409 and "busy" in busy.json()["errors"][0]["message"]
    Run.objects.filter(lab=lab).update(status=Run.Status.SUCCEEDED)
    LabState.objects.filter(lab=lab).update(deployed=False, deployed_document=None)
    idle = act(owner, lab, {"action": "stop", "node": "h1"})
    assert idle.status_code == 409 and "not deployed" in idle.json()["errors"][0]["message"]
