"""ApplyError.permanent drives retries: the agent's run executor runs a deploy again on transient failures only."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from netops.errors import ApplyError
from webapp.labs.models import Lab
from webapp.runs import agent
from webapp.runs.models import Run, RunEvent

pytestmark = [pytest.mark.webapp, pytest.mark.django_db]


@pytest.fixture
def run(monkeypatch):
    monkeypatch.setattr(agent, "RETRY_DELAY_S", 0.0)
    owner = get_user_model().objects.create_user("rita", password="correct horse battery")
    lab = Lab.objects.create(owner=owner, name="retry", document={"version": 1, "name": "retry", "nodes": {},
                                                                   "links": []})
    return Run.objects.create(lab=lab, kind=Run.Kind.DEPLOY)


def test_a_transient_failure_is_tried_again_and_said_so(run):
    attempts = []

    def operation(run_, lab):
        attempts.append(1)
        if len(attempts) < 3:
            raise ApplyError("no DHCP address within 20 s", element="nodes.h1.interfaces.eth0", permanent=False)

    agent._with_retries(run, run.lab, operation)
    assert len(attempts) == 3
    warnings = RunEvent.objects.filter(run=run, type="run.warning").order_by("seq")
    assert [w.payload["message"].rsplit("(", 1)[1] for w in warnings] == ["1 of 2)", "2 of 2)"]
    assert all(w.payload["element"] == "nodes.h1.interfaces.eth0" for w in warnings)


def test_a_transient_failure_that_stays_fails_after_the_retries(run):
    attempts = []

    def operation(run_, lab):
        attempts.append(1)
        raise ApplyError("device busy", permanent=False)

    with pytest.raises(ApplyError, match="device busy"):
        agent._with_retries(run, run.lab, operation)
    assert len(attempts) == agent.TRANSIENT_RETRIES + 1


def test_a_permanent_failure_is_not_tried_again(run):
    attempts = []

    def operation(run_, lab):
        attempts.append(1)
        raise ApplyError("host bridge br-ex does not exist", element="nodes.wan.bridge")

    with pytest.raises(ApplyError):
        agent._with_retries(run, run.lab, operation)
    assert len(attempts) == 1 and not RunEvent.objects.filter(run=run, type="run.warning").exists()
