"""Checks through the API with the real Redis, a real Celery agent (root) and real labs: a lab's checks pass when it
is built right and fail naming what was seen when it is broken (masquerade removed); a student's lab is graded by
the template's checks, in that lab's cell, and its events never carry a hidden check's details; reset to template
gives back the template's lab."""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient
from support import wait_run

from netops import cell, naming
from webapp.accounts.models import Profile, Role
from webapp.checks.models import CheckResult
from webapp.classroom import services as classroom
from webapp.classroom.models import Visibility
from webapp.labs.models import Lab
from webapp.runs.models import Run, RunEvent

pytestmark = [pytest.mark.webapp, pytest.mark.kernel, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

if os.geteuid() != 0:
    pytest.skip("the agent needs root", allow_module_level=True)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60)


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def run(user, lab: Lab, what: str) -> Run:
    response = api(user).post(f"/api/labs/{lab.pk}/{what}")
    assert response.status_code == 202, response.content
    done = wait_run(response.json()["id"], timeout=180)
    assert done.status == "succeeded", done.error
    return done


@pytest.fixture
def isp(settings):
    """An "ISP" namespace at 203.0.113.1/24 behind a host bridge labs may use, with no route back to 10.0.1.0/24."""
    tag = uuid.uuid4().hex[:6]
    ns, bridge, outer = f"tltest-isp{tag}", f"tlbr{tag}", f"tlisp{tag}"
    settings.TOPOLAB_UPLINK_BRIDGES = bridge
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", bridge, "type", "bridge")
        sh("ip", "link", "set", bridge, "up")
        sh("ip", "link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", outer, "master", bridge, "up")
        for argv in (["ip", "addr", "add", "203.0.113.1/24", "dev", "eth0"], ["ip", "link", "set", "eth0", "up"]):
            sh("ip", "netns", "exec", ns, *argv)
        yield bridge
    finally:
        sh("ip", "link", "del", outer, check=False)
        sh("ip", "link", "del", bridge, check=False)
        sh("ip", "netns", "del", ns, check=False)


CHECKS = [
    {"id": "isp", "title": "h1 reaches the ISP", "points": 2, "ping": {"from": "h1", "to": "203.0.113.1"}},
    {"id": "nat", "title": "r1 masquerades", "visibility": "title", "nat": {"node": "r1", "interface": "eth1"}},
    {"id": "lease", "title": "h2 has a lease", "address": {"node": "h2", "interface": "eth0",
                                                           "in": "10.0.1.100-10.0.1.150"}},
    {"id": "secret", "title": "the secret", "visibility": "hidden",
     "command": {"node": "h1", "run": ["cat", "/proc/self/uid_map"]}},
]


def document(bridge: str) -> dict:
    return {"version": 1, "name": "seed", "nodes": {
        "r1": {"kind": "router",
               "interfaces": {"eth0": {"address": "10.0.1.254/24", "dhcp_server": {"range": "10.0.1.100-10.0.1.150"}},
                              "eth1": {"address": "203.0.113.2/24"}},
               "routes": [{"to": "default", "via": "203.0.113.1"}], "nat": {"masquerade": ["eth1"]}},
        "br-in": {"kind": "bridge"},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}},
               "routes": [{"to": "default", "via": "10.0.1.254"}]},
        "h2": {"kind": "host", "interfaces": {"eth0": {"address": "dhcp"}}},
        "wan": {"kind": "external", "bridge": bridge}},
        "links": [{"endpoints": ["r1:eth0", "br-in"]}, {"endpoints": ["h1:eth0", "br-in"]},
                  {"endpoints": ["h2:eth0", "br-in"]}, {"endpoints": ["r1:eth1", "wan"]}],
        "checks": CHECKS}


def test_a_students_lab_is_graded_by_the_templates_checks_in_its_cell_without_leaking_hidden_ones(
        celery_worker, kernel_lock, isp, settings):
    User = get_user_model()
    irene, alice = User.objects.create_user("irene"), User.objects.create_user("alice")
    Profile.objects.create(user=irene, role=Role.INSTRUCTOR)
    Profile.objects.create(user=alice, role=Role.STUDENT)
    net101 = classroom.create_classroom(irene, "net101")
    net101.members.add(alice)
    net101.uplink_bridges = [isp]
    net101.save()
    source = Lab.objects.create(owner=irene, name="seed", document=document(isp))
    template = classroom.publish(irene, source, title="Seed", visibility=Visibility.CLASS, classrooms=[net101])
    lab = classroom.start_lab(alice, template)
    assert "checks" not in lab.document
    try:
        run(alice, lab, "deploy")
        checked = run(alice, lab, "check")
        result = CheckResult.objects.get(run=checked)
        assert (result.earned, result.possible, result.percent) == (5, 5, 100.0), result.outcomes
        secret = next(o for o in result.outcomes if o["id"] == "secret")
        # the hidden command ran in alice's lab's cell (tests/kernel/test_labchecks.py reads its uid map)
        assert secret["passed"] and "exited 0" in secret["message"]

        # events: one per check, stored in order; the title-only and hidden ones without their details
        events = list(RunEvent.objects.filter(run=checked).order_by("seq"))
        per_check = [e for e in events if e.type.startswith("check.") and e.type != "check.finished"]
        assert [e.payload.get("step") for e in per_check] == [1, 2, 3, 4]
        assert per_check[0].payload["check"]["id"] == "isp" and "2 received" in per_check[0].payload["message"]
        assert per_check[1].payload["check"] == {"id": "nat", "title": "r1 masquerades", "passed": True,
                                                 "points": 1, "earned": 1, "visibility": "title"}
        assert "message" not in per_check[1].payload
        assert per_check[3].payload == {"step": 4, "total": 4, "check": {"hidden": True}}
        assert "secret" not in str([e.payload for e in events]) and "uid_map" not in str([e.payload for e in events])
        finished = next(e for e in events if e.type == "check.finished")
        assert finished.payload["percent"] == 100.0

        # broken on purpose: the masquerade is removed in the student's router
        sh("ip", "netns", "exec", naming.node_namespace(lab.lab_id, "r1"), "nft", "delete", "table", "inet",
           "topolab")
        run(irene, lab, "check")  # the instructor checks the student's lab
        result = CheckResult.objects.filter(lab=lab).first()
        marks = {o["id"]: o["passed"] for o in result.outcomes}
        assert marks == {"isp": False, "nat": False, "lease": True, "secret": True}
        assert (result.earned, result.possible) == (2, 5)
        nat = next(o for o in result.outcomes if o["id"] == "nat")
        assert nat["message"].startswith("r1 has no masquerade of traffic leaving eth1")
        seen = api(alice).get(f"/api/labs/{lab.pk}/checks/").json()["result"]
        assert [o["id"] for o in seen["checks"]] == ["isp", "nat", "lease"] and "message" not in seen["checks"][1]
        assert "no reply" in seen["checks"][0]["message"]
        scores = api(irene).get(f"/api/classes/{net101.pk}/scores/").json()
        assert scores["rows"][0]["result"]["marks"]["nat"] is False

        # reset to template: destroyed and deployed again from the template version, the masquerade is back
        lab.refresh_from_db()
        reset = run(alice, lab, "reset/")
        assert reset.kind == "reset"
        run(alice, lab, "check")
        assert CheckResult.objects.filter(lab=lab).first().percent == 100.0
        assert cell.get(lab.lab_id) is not None
    finally:
        api(alice).post(f"/api/labs/{lab.pk}/destroy")
        wait_run(Run.objects.filter(lab=lab).first().pk)
    assert not [n for n in os.listdir("/run/netns") if n.startswith(naming.fabric_namespace(lab.lab_id))]
