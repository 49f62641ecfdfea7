"""What a user does with a running lab, when the lab runs across simulated hosts (issue 13): real agents as hosts a,
b and c (tests/simhost.py), the lab placed by `host:` keys, r1 on host a, r2 and h2 on host b, r1 - r2 a direct link
across hosts (a VXLAN tunnel), OSPF over it.

Through the API: the cross-host link set down, up and delayed (a ping across shows each), the router view of r2 on
host b (its OSPF route to r1's loopback), the lab's checks run on the host of each check's node and say what is
true (h2 reaches r1 only while the link is up), a node deleted on host b is marked failed by the health check (the
periodic task taken by host a asks b), and another user gets 404 for each. The lab is a student's, started from an
instructor's template: a reset to the template runs a part on each host and brings back the node that died on b (the
instructor may not reset it, another user does not see it). Destroy leaves the kernel as it was."""
from __future__ import annotations

import os
import re
import uuid

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient
from simhost import inventory, sh, simulated_hosts, wait_for
from support import netns_exec, wait_run

from webapp.accounts.models import Profile, Role
from webapp.checks.models import CheckResult
from webapp.classroom import services as classroom
from webapp.classroom.models import Visibility
from webapp.labs.models import Lab
from webapp.runs.models import LabState, Run, RunEvent

pytestmark = [pytest.mark.webapp, pytest.mark.kernel, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

if os.geteuid() != 0:
    pytest.skip("simulated hosts need root", allow_module_level=True)

HOSTS = ["a", "b", "c"]
OSPF = {"hello": 1, "dead": 4}
CROSS = ["r1:eth0", "r2:eth0"]
DELAY_MS = 150


def document() -> dict:
    return {
        "version": 1, "name": "across",
        "nodes": {
            "r1": {"kind": "router", "host": "a", "interfaces": {"eth0": {"address": "10.0.12.1/30"}},
                   "routing": {"loopback": "10.255.0.1/32",
                               "ospf": {"areas": {0: {"interfaces": ["eth0"], "passive": ["lo"]}}, **OSPF}}},
            "r2": {"kind": "router", "host": "b",
                   "interfaces": {"eth0": {"address": "10.0.12.2/30"}, "eth1": {"address": "10.0.2.254/24"}},
                   "routing": {"loopback": "10.255.0.2/32",
                               "ospf": {"areas": {0: {"interfaces": ["eth0"], "passive": ["lo", "eth1"]}},
                                        **OSPF}}},
            "h2": {"kind": "host", "host": "b", "interfaces": {"eth0": {"address": "10.0.2.1/24"}},
                   "routes": [{"to": "default", "via": "10.0.2.254"}]},
        },
        "links": [{"endpoints": CROSS}, {"endpoints": ["r2:eth1", "h2:eth0"]}],
        "checks": [
            {"id": "r1-r2", "title": "r1 reaches r2 across hosts", "ping": {"from": "r1", "to": "10.0.12.2"}},
            {"id": "h2-r1", "title": "h2 reaches r1 through r2", "ping": {"from": "h2", "to": "r1"}},
        ],
    }


@pytest.fixture
def sim(kernel_lock, topolab_subprocess_env, test_tmpdir, spawn):
    """The simulated hosts; once they and their underlay are gone, the kernel holds what it held before."""
    before = inventory()
    with simulated_hosts(spawn, topolab_subprocess_env, test_tmpdir, HOSTS) as (underlay, hosts):
        yield underlay, hosts
    after = inventory()
    assert {k: sorted(set(after[k]) - set(before[k])) for k in ("namespaces", "links")} == \
        {"namespaces": [], "links": []}
    assert after["nft"] == before["nft"]


def client(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def ping_ms(ns: str, address: str) -> float | None:
    """The average round trip of 3 pings from `ns` to `address` in ms, None when none came back."""
    out = netns_exec(ns, ["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "1", address]).stdout
    match = re.search(r"= [\d.]+/([\d.]+)/", out)
    return float(match.group(1)) if match else None


def test_actions_router_view_checks_and_health_of_a_lab_across_hosts(sim, settings):
    _underlay, hosts = sim
    User = get_user_model()
    owner = User.objects.create_user(f"ana{uuid.uuid4().hex[:6]}")
    mallory = User.objects.create_user(f"mal{uuid.uuid4().hex[:6]}")
    irene = User.objects.create_user(f"ire{uuid.uuid4().hex[:6]}")
    Profile.objects.create(user=irene, role=Role.INSTRUCTOR)
    Profile.objects.create(user=owner, role=Role.STUDENT)
    net101 = classroom.create_classroom(irene, f"net{uuid.uuid4().hex[:6]}")
    net101.members.add(owner)
    source = Lab.objects.create(owner=irene, name="across", document=document())
    template = classroom.publish(irene, source, title="Across", visibility=Visibility.CLASS, classrooms=[net101])
    lab = classroom.start_lab(owner, template)  # the student's copy: the template's checks grade it
    assert "checks" not in lab.document and lab.document["nodes"]["r2"]["host"] == "b"
    api, other = client(owner), client(mallory)
    r1, r2, h2 = (f"tl{h}-{lab.lab_id}-{n}" for h, n in (("a", "r1"), ("b", "r2"), ("b", "h2")))

    def act(body: dict) -> Run:
        answer = api.post(f"/api/labs/{lab.pk}/actions/", body, format="json")
        assert answer.status_code == 202, answer.content
        run = wait_run(answer.json()["id"], 60)
        assert run.status == "succeeded", (run.error, run.parts)
        return run

    def check() -> dict[str, tuple[bool, str]]:
        answer = api.post(f"/api/labs/{lab.pk}/check/", format="json")
        assert answer.status_code == 202, answer.content
        run = wait_run(answer.json()["id"], 60)
        assert run.status == "succeeded", (run.error, run.parts)
        assert sorted(run.parts) == ["a", "b"]  # r1's check on a, h2's on b
        outcomes = CheckResult.objects.get(run=run).outcomes
        assert [o["id"] for o in outcomes] == ["r1-r2", "h2-r1"]  # in the lab's order, whichever host ran them
        return {o["id"]: (o["passed"], o["message"]) for o in outcomes}

    try:
        answer = api.post(f"/api/labs/{lab.pk}/deploy/", format="json")
        assert answer.status_code == 202, answer.content
        run = wait_run(answer.json()["id"], 120)
        assert run.status == "succeeded", (run.error, run.parts)
        assert sorted(run.parts) == ["a", "b"] and run.span["placement"] == {"r1": "a", "r2": "b", "h2": "b"}
        assert ping_ms(r1, "10.0.12.2") is not None, "r1 -> r2 across the tunnel"

        # the router view of r2 goes to host b (its OSPF route to r1's loopback, learnt across the tunnel), r1's
        # to host a
        def ospf_route(router: str, prefix: str) -> bool:
            body = api.get(f"/api/labs/{lab.pk}/nodes/{router}/routing/")
            assert body.status_code == 200, body.content
            return (prefix, "ospf") in {(r["prefix"], r["protocol"]) for r in body.json()["routes"] if r["selected"]}

        wait_for(lambda: ospf_route("r2", "10.255.0.1/32"), 40, "r2's OSPF route to r1's loopback")
        wait_for(lambda: ospf_route("r1", "10.0.2.0/24"), 40, "r1's OSPF route to h2's subnet")
        assert other.get(f"/api/labs/{lab.pk}/nodes/r2/routing/").status_code == 404

        # checks: each runs on its node's host, and both pass while the link is up
        passed = check()
        assert all(ok for ok, _ in passed.values()), passed

        # the link across hosts down: both sides pulled, nothing crosses; the checks fail; up again: it does
        act({"action": "link-down", "link": CROSS})
        assert ping_ms(r1, "10.0.12.2") is None and ping_ms(r2, "10.0.12.1") is None
        failed = check()
        assert not any(ok for ok, _ in failed.values()), failed
        down = RunEvent.objects.filter(lab=lab, type="link.state", payload__state="down")
        assert {e.payload.get("host") for e in down} == {"a", "b"}  # each host pulled its side
        assert LabState.objects.get(lab=lab).links == {"r1:eth0 r2:eth0": "down"}
        run = act({"action": "link-up", "link": CROSS})
        assert sorted(run.parts) == ["a", "b"]
        assert wait_for(lambda: ping_ms(r1, "10.0.12.2"), 10, "r1 -> r2 after the link came up")
        assert LabState.objects.get(lab=lab).links == {}

        # another user: 404 for each
        assert other.post(f"/api/labs/{lab.pk}/actions/", {"action": "link-down", "link": CROSS},
                          format="json").status_code == 404
        assert other.post(f"/api/labs/{lab.pk}/check/", format="json").status_code == 404
        assert other.post(f"/api/labs/{lab.pk}/reset/", format="json").status_code == 404
        assert other.get(f"/api/labs/{lab.pk}/status/").status_code == 404
        assert Run.objects.filter(lab=lab, started_by=mallory).count() == 0

        # a node that dies on host b is marked by the health check, asked of b by the host that took it (a)
        assert LabState.objects.get(lab=lab).nodes["h2"] == "running"
        sh("ip", "netns", "del", h2)
        from webapp.runs import tasks

        tasks.check_deployed_labs.apply_async(queue=hosts["a"].queue).get(timeout=30)
        wait_for(lambda: LabState.objects.get(lab=lab).nodes.get("h2") == "failed", 30, "h2 marked failed")
        assert LabState.objects.get(lab=lab).nodes["r1"] == "running"

        # a delay on the link across hosts (applied on its first end's host, once each way)
        plain = ping_ms(r1, "10.0.12.2")
        act({"action": "link-conditions", "link": CROSS, "conditions": {"delay": f"{DELAY_MS}ms"}})
        delayed = wait_for(lambda: ping_ms(r1, "10.0.12.2"), 15, "r1 -> r2 with the delay: " + sh(
            "ps", "-eo", "args").stdout[-3000:] + sh("ip", "netns", "exec", r1, "ip", "-s", "link").stdout)
        assert delayed >= 2 * DELAY_MS * 0.9 > plain, (plain, delayed)
        act({"action": "link-conditions", "link": CROSS, "conditions": {}})
        assert wait_for(lambda: ping_ms(r1, "10.0.12.2"), 15, "r1 -> r2 without the delay") < DELAY_MS

        # reset to the template: a part on each host, each destroys and deploys its share; h2 (gone on b) is back
        assert client(irene).post(f"/api/labs/{lab.pk}/reset/", format="json").status_code == 403
        assert not check()["h2-r1"][0]
        answer = api.post(f"/api/labs/{lab.pk}/reset/", format="json")
        assert answer.status_code == 202, answer.content
        reset = wait_run(answer.json()["id"], 120)
        assert (reset.kind, reset.status) == ("reset", "succeeded"), (reset.error, reset.parts)
        assert sorted(reset.parts) == ["a", "b"] and reset.span["placement"] == {"r1": "a", "r2": "b", "h2": "b"}
        assert LabState.objects.get(lab=lab).nodes == {"r1": "running", "r2": "running", "h2": "running"}
        assert os.path.exists(f"/run/netns/{h2}") and not os.path.exists(f"/run/netns/{h2.replace('tlb', 'tla')}")
        assert wait_for(lambda: ping_ms(r1, "10.0.12.2"), 15, "r1 -> r2 after the reset")
        wait_for(lambda: all(ok for ok, _ in check().values()), 40, "the checks pass after the reset (OSPF again)")
    finally:
        if LabState.objects.filter(lab=lab, deployed=True).exists():
            answer = api.post(f"/api/labs/{lab.pk}/destroy/", format="json")
            assert answer.status_code == 202, answer.content
            done = wait_run(answer.json()["id"], 120)
            assert done.status == "succeeded", (done.error, done.parts)
