"""Placement through the API (issue 13, part 2): a deploy with several lab hosts up records where each node runs
and the parts of the hosts it uses; a node's `host:` pins it, an unknown or down host is a 400 at its path; a lab
on one host of several still goes to that host's queue; a destroy goes to every host the deploy used; actions and
checks of a lab across hosts go to the hosts they concern. Host rows stand for agents' heartbeats here (the
heartbeat itself: test_hosts.py; the tunnels: tests/kernel/test_vxlan.py)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from webapp.core.errors import Refusal
from webapp.hosts.models import Host
from webapp.labs.models import Lab
from webapp.runs import services
from webapp.runs.models import Run

pytestmark = [pytest.mark.webapp, pytest.mark.django_db]

GIB = 1 << 30
ETH0 = {"interfaces": {"eth0": {"address": "dhcp"}}}


def lab_doc(n: int, **pins) -> dict:
    nodes = {"sw": {"kind": "bridge"}} | {f"h{i}": {"kind": "host", **ETH0} for i in range(n)}
    for node, host in pins.items():
        nodes[node]["host"] = host
    return {"version": 1, "name": "place", "nodes": nodes,
            "links": [{"endpoints": [f"h{i}:eth0", "sw"]} for i in range(n)]}


@pytest.fixture
def hosts(db):
    Host.objects.all().delete()  # the session's worker may have announced its host
    now = timezone.now()

    def make(*names: str, memory: int = 8 * GIB, down: tuple[str, ...] = ()):
        for i, name in enumerate(names):
            Host.objects.create(name=name, underlay_address=f"192.0.2.{i + 1}", cpus=2, memory_bytes=memory,
                                last_heartbeat=now - timedelta(seconds=3600 if name in down else 0))
    return make


@pytest.fixture
def owner(db):
    user = get_user_model().objects.create_user("pete", password="correct horse battery")
    api = APIClient()
    api.force_authenticate(user)
    user.api = api
    return user


def deploy(owner, doc):
    lab = Lab.objects.create(owner=owner, name=doc["name"], document=doc)
    return lab, owner.api.post(f"/api/labs/{lab.pk}/deploy/", format="json")


def test_with_one_host_up_a_deploy_is_as_before_hosts_existed(owner, hosts):
    hosts("solo")
    lab, answer = deploy(owner, lab_doc(3))
    assert answer.status_code == 202, answer.content
    run = Run.objects.get(lab=lab)
    assert run.parts == {} and run.span is None


def test_with_two_hosts_up_a_small_lab_runs_on_one_of_them_on_that_hosts_queue(owner, hosts):
    hosts("lab-a", "lab-b")
    lab, answer = deploy(owner, lab_doc(3))
    assert answer.status_code == 202, answer.content
    run = Run.objects.get(lab=lab)
    assert len(run.parts) == 1
    (host,) = run.parts
    assert set(run.span["placement"].values()) == {host} and run.span["vnis"] == {}
    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED)
    assert services.lab_queue(lab.pk, "status") == f"agent.{host}"  # status, actions, checks go there too


def test_a_lab_too_big_for_one_host_spans_two_with_a_vni_for_its_switch(owner, hosts):
    hosts("lab-a", "lab-b", memory=(512 + 100) * (1 << 20))  # 100 MiB of room each: six 16 MiB hosts per host
    lab, answer = deploy(owner, lab_doc(9))
    assert answer.status_code == 202, answer.content
    run = Run.objects.get(lab=lab)
    assert sorted(run.parts) == ["lab-a", "lab-b"]
    assert list(run.span["vnis"]) == ["sw"] and run.span["mtu"] == 1450
    assert run.span["underlays"] == {"lab-a": "192.0.2.1", "lab-b": "192.0.2.2"}
    assert services.snapshot(lab)["placement"] == {}  # nothing runs yet: no badges


def test_host_pins_unknown_down_and_hostile_are_400_at_the_nodes_host(owner, hosts):
    hosts("lab-a", "lab-b", down=("lab-b",))
    for pins, message in [({"h0": "nowhere"}, "there is no lab host 'nowhere'"), ({"h0": "lab-b"}, "is down"),
                          ({"h0": "-Q"}, "must be a lab host's name")]:
        lab, answer = deploy(owner, lab_doc(2, **pins))
        assert answer.status_code == 400, answer.content
        (error,) = answer.json()["errors"]
        assert error["path"] == "nodes.h0.host" and message in error["message"], error
        assert not Run.objects.filter(lab=lab).exists()  # refused before anything


def test_a_pinned_node_runs_where_it_says_and_destroy_goes_to_every_host_the_deploy_used(owner, hosts):
    hosts("lab-a", "lab-b", memory=(512 + 40) * (1 << 20))  # 40 MiB: two hosts of 16 MiB each per host
    lab, answer = deploy(owner, lab_doc(4, h0="lab-b"))
    assert answer.status_code == 202, answer.content
    run = Run.objects.get(lab=lab)
    assert run.span["placement"]["h0"] == "lab-b" and sorted(run.parts) == ["lab-a", "lab-b"]
    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED)
    services.set_deployed(lab.pk, True, lab.document, lab.version)
    assert services.snapshot(lab)["placement"] == run.span["placement"]
    answer = owner.api.post(f"/api/labs/{lab.pk}/destroy/", format="json")
    assert answer.status_code == 202, answer.content
    destroy = Run.objects.filter(lab=lab, kind=Run.Kind.DESTROY).get()
    assert sorted(destroy.parts) == ["lab-a", "lab-b"] and destroy.span == run.span


def test_a_redeploy_keeps_running_nodes_where_they_run(owner, hosts):
    hosts("lab-a", "lab-b", memory=(512 + 100) * (1 << 20))
    lab, _ = deploy(owner, lab_doc(9))
    first = Run.objects.get(lab=lab)
    Run.objects.filter(pk=first.pk).update(status=Run.Status.SUCCEEDED)
    services.set_deployed(lab.pk, True, lab.document, lab.version)
    Host.objects.filter(name="lab-b").update(memory_bytes=64 * GIB)  # lab-b has lots of room now
    assert owner.api.post(f"/api/labs/{lab.pk}/deploy/", format="json").status_code == 202
    again = Run.objects.filter(lab=lab).order_by("-pk").first()
    assert again.span["placement"] == first.span["placement"]
    assert again.span["vnis"] == first.span["vnis"]  # the lab keeps its VNI


def deployed(lab: Lab) -> Run:
    run = Run.objects.filter(lab=lab).order_by("-pk").first()
    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED)
    services.set_deployed(lab.pk, True, lab.document, lab.version)
    return run


def action(owner, lab: Lab, body: dict) -> Run:
    answer = owner.api.post(f"/api/labs/{lab.pk}/actions/", body, format="json")
    assert answer.status_code == 202, answer.content
    run = Run.objects.get(pk=answer.json()["id"])
    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED)  # nobody runs it here
    return run


def test_operations_of_a_lab_across_hosts_go_to_the_hosts_they_concern(owner, hosts):
    hosts("lab-a", "lab-b", memory=(512 + 100) * (1 << 20))
    lab, _ = deploy(owner, lab_doc(9))
    placed = deployed(lab).span["placement"]
    assert sorted(set(placed.values())) == ["lab-a", "lab-b"]
    assert services.status_queues(lab.pk) == {"lab-a": "agent.lab-a", "lab-b": "agent.lab-b"}  # status asks both
    # a link to the switch: the host of its node end; a node's action: the node's host
    assert sorted(action(owner, lab, {"action": "link-down", "link": ["h1:eth0", "sw"]}).parts) == [placed["h1"]]
    assert sorted(action(owner, lab, {"action": "stop", "node": "h7"}).parts) == [placed["h7"]]
    assert sorted(action(owner, lab, {"action": "isolate", "node": "h2"}).parts) == [placed["h2"]]
    assert services.lab_queue(lab.pk, "x", node="h1") == f"agent.{placed['h1']}"
    with pytest.raises(Refusal) as refused:  # what needs one host, asked of none, says so
        services.lab_queue(lab.pk, "the thing")
    assert refused.value.status_code == 409 and "the thing" in str(refused.value)


def test_a_direct_link_across_hosts_acts_on_both_ends_hosts_and_checks_run_where_their_node_runs(owner, hosts):
    hosts("lab-a", "lab-b")
    doc = {"version": 1, "name": "pair", "nodes": {
        "h1": {"kind": "host", "host": "lab-a", "interfaces": {"eth0": {"address": "10.9.0.1/24"}}},
        "h2": {"kind": "host", "host": "lab-b", "interfaces": {"eth0": {"address": "10.9.0.2/24"}}}},
        "links": [{"endpoints": ["h1:eth0", "h2:eth0"]}],
        "checks": [{"id": "from-b", "title": "h2 reaches h1", "ping": {"from": "h2", "to": "h1"}}]}
    lab, _ = deploy(owner, doc)
    deployed(lab)
    run = action(owner, lab, {"action": "link-conditions", "link": ["h2:eth0", "h1:eth0"],
                              "conditions": {"delay": "20ms"}})
    assert sorted(run.parts) == ["lab-a", "lab-b"] and run.action["conditions"] == {"delay": "20ms"}
    assert sorted(action(owner, lab, {"action": "isolate", "node": "h1"}).parts) == ["lab-a", "lab-b"]
    answer = owner.api.post(f"/api/labs/{lab.pk}/check/", format="json")
    assert answer.status_code == 202, answer.content
    assert sorted(Run.objects.get(pk=answer.json()["id"]).parts) == ["lab-b"]  # h2 runs on lab-b


def test_the_health_check_leaves_labs_of_other_hosts_alone(owner, hosts, settings):
    from webapp.runs import health

    hosts("lab-a", "lab-b", memory=(512 + 100) * (1 << 20))
    lab, _ = deploy(owner, lab_doc(9))
    Run.objects.filter(lab=lab).update(status=Run.Status.SUCCEEDED)
    services.set_deployed(lab.pk, True, lab.document, lab.version)
    settings.TOPOLAB_HOST = "lab-c"  # a host that runs none of it, and whose kernel has nothing of it
    assert health.mark_vanished(set(), timezone.now()) == []
    from webapp.runs import agent

    assert agent.check_lab(lab) == []
    assert services.snapshot(lab)["deployed"] is True


def test_another_user_cannot_see_or_deploy_a_lab_on_any_host(owner, hosts):
    hosts("lab-a", "lab-b")
    lab = Lab.objects.create(owner=owner, name="mine", document=lab_doc(2, h0="lab-a"))
    mallory = get_user_model().objects.create_user("mallory-p")
    api = APIClient()
    api.force_authenticate(mallory)
    assert api.post(f"/api/labs/{lab.pk}/deploy/", format="json").status_code == 404
    assert api.get("/api/hosts/").status_code == 403  # the host list is staff's
    assert not Run.objects.filter(lab=lab).exists()


def test_two_hosts_with_one_underlay_address_are_a_409_for_the_operator_not_a_500(owner, hosts):
    hosts("lab-a", "lab-b", memory=(512 + 100) * (1 << 20))
    Host.objects.filter(name="lab-b").update(underlay_address="192.0.2.1")  # lab-a's too
    lab, answer = deploy(owner, lab_doc(9))
    assert answer.status_code == 409, answer.content
    assert "share the underlay address 192.0.2.1" in answer.json()["errors"][0]["message"]
    assert not Run.objects.filter(lab=lab).exists()


def test_the_periodic_health_check_asks_every_other_host_that_is_up_on_its_queue(hosts, settings, monkeypatch):
    from webapp.runs import agent, tasks

    hosts("lab-a", "lab-b", "lab-c", down=("lab-c",))
    settings.TOPOLAB_HOST = "lab-a"
    sent = []
    monkeypatch.setattr(tasks.check_host_labs, "apply_async", lambda **kw: sent.append(kw))
    assert agent.ask_other_hosts() == ["lab-b"]  # not itself, not a host that is down
    assert [kw["queue"] for kw in sent] == ["agent.lab-b"] and 0 < sent[0]["expires"] <= 30
