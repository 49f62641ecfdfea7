"""Many users on one server, against the real agent (Celery worker, root) and the kernel: a delete never leaves a
lab running, the health check removes orphans and notices labs that vanished, and a run deploys the document
that was checked, whatever is saved after it.
"""
from __future__ import annotations

import os
import subprocess

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.test import APIClient
from support import lab_namespaces, wait_run

from netops import engine
from webapp.classroom.models import Quota
from webapp.labs import services as lab_services
from webapp.labs.models import Lab
from webapp.runs import services as run_services
from webapp.runs.models import LabState, OrphanedLab, RunEvent
from webapp.runs.tasks import check_deployed_labs

pytestmark = [
    pytest.mark.webapp, pytest.mark.kernel, pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(os.geteuid() != 0, reason="the agent needs root"),
]


def hosts(n: int, name: str = "lab") -> dict:
    return {"version": 1, "name": name, "links": [{"endpoints": [f"h{i}:eth0", "sw"]} for i in range(1, n + 1)],
            "nodes": {"sw": {"kind": "bridge"},
                      **{f"h{i}": {"kind": "host", "interfaces": {"eth0": {"address": f"10.7.0.{i}/24"}}}
                         for i in range(1, n + 1)}}}


def inventory() -> dict:
    """What the kernel holds: namespaces, host links, nft ruleset (the kernel's own listing, not netops')."""
    def run(*argv):
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    return {"namespaces": sorted(run("ip", "netns", "list").split("\n")),
            "links": sorted(line.split(":", 2)[1].strip() for line in run("ip", "-o", "link").splitlines()),
            "nft": run("nft", "list", "ruleset")}


@pytest.fixture
def sam():
    return get_user_model().objects.create_user("sam-k")


@pytest.fixture
def api(sam):
    client = APIClient()
    client.force_authenticate(sam)
    return client


@pytest.fixture
def cleanup():
    """Lab ids to take down whatever a test left (even when it failed)."""
    ids: list[str] = []
    yield ids
    for lab_id in ids:
        if lab_namespaces(lab_id):
            engine.down(lab_id)


def deploy(api, lab: Lab) -> None:
    response = api.post(f"/api/labs/{lab.pk}/deploy/")
    assert response.status_code == 202, response.content
    run = wait_run(response.json()["id"])
    assert run.status == "succeeded", run.error


def test_deleting_a_deployed_lab_is_refused_until_destroy_and_leaves_the_kernel_as_before(
        celery_worker, kernel_lock, sam, api, cleanup):
    before = inventory()
    lab = Lab.objects.create(owner=sam, name="del", document=hosts(2))
    cleanup.append(lab.lab_id)
    deploy(api, lab)
    assert sorted(lab_namespaces(lab.lab_id)) == sorted(f"tl-{lab.lab_id}{n}" for n in ("", "-h1", "-h2"))
    refused = api.delete(f"/api/labs/{lab.pk}/")
    assert refused.status_code == 409 and "press Destroy" in refused.json()["detail"]
    assert lab_namespaces(lab.lab_id), "a refused delete touched the kernel"
    destroy = api.post(f"/api/labs/{lab.pk}/destroy/")
    assert wait_run(destroy.json()["id"]).status == "succeeded"
    assert api.delete(f"/api/labs/{lab.pk}/").status_code == 204
    assert inventory() == before


def test_an_orphaned_lab_is_destroyed_by_the_health_check_and_counted(celery_worker, kernel_lock, sam, api, cleanup):
    before = inventory()
    lab = Lab.objects.create(owner=sam, name="orphan", document=hosts(2))
    cleanup.append(lab.lab_id)
    deploy(api, lab)
    Lab.objects.filter(pk=lab.pk).delete()  # behind Topolab's back (the admin, a deleted account, raw SQL)
    assert lab_namespaces(lab.lab_id)
    check_deployed_labs.delay().get(timeout=60)
    assert lab_namespaces(lab.lab_id) == []
    orphan = OrphanedLab.objects.get(lab_id=lab.lab_id)
    assert orphan.error == "" and any("namespace" in item for item in orphan.removed)
    assert inventory() == before


def test_a_lab_removed_outside_topolab_is_marked_not_deployed_and_can_be_deployed_again(
        celery_worker, kernel_lock, sam, api, cleanup):
    Quota.objects.create(user=sam, running_labs=1)
    lab = Lab.objects.create(owner=sam, name="vanish", document=hosts(1))
    other = Lab.objects.create(owner=sam, name="next", document=hosts(1))
    cleanup += [lab.lab_id, other.lab_id]
    deploy(api, lab)
    assert api.post(f"/api/labs/{other.pk}/deploy/").status_code == 403  # the quota is used by `lab`
    engine.down(lab.lab_id)  # what `netops clean` does to it (clean itself would take other people's labs too)
    check_deployed_labs.delay().get(timeout=60)
    state = LabState.objects.get(lab=lab)
    assert state.deployed is False and state.deployed_version is None
    event = RunEvent.objects.filter(lab=lab, type="lab.undeployed").get()
    assert "gone from the kernel" in event.payload["message"]
    assert set(state.nodes.values()) == {"absent"}
    deploy(api, other)  # the quota is free again
    assert lab_namespaces(other.lab_id)
    destroy = api.post(f"/api/labs/{other.pk}/destroy/")
    assert wait_run(destroy.json()["id"]).status == "succeeded"


def test_a_bigger_document_saved_between_deploy_and_the_runs_start_is_not_what_runs(
        celery_worker, kernel_lock, sam, api, cleanup):
    Quota.objects.create(user=sam, nodes=4)
    lab = Lab.objects.create(owner=sam, name="toctou", document=hosts(2, name="toctou"))
    cleanup.append(lab.lab_id)
    with transaction.atomic():  # the task is enqueued at commit: the PUT lands before the agent can start
        run = run_services.start_run(lab, sam, "deploy")
        lab_services.save_lab(lab, 1, document=hosts(12, name="toctou"))
    run = wait_run(run.pk)
    assert run.status == "succeeded", run.error
    names = sorted(lab_namespaces(lab.lab_id))
    assert names == sorted([f"tl-{lab.lab_id}", f"tl-{lab.lab_id}-h1", f"tl-{lab.lab_id}-h2"]), names
    state = LabState.objects.get(lab=lab)
    assert state.deployed_version == 1 and len(state.deployed_document["nodes"]) == 3
    # the quota holds: deploying the big one now is refused (13 nodes of 4), and nothing changes in the kernel
    response = api.post(f"/api/labs/{lab.pk}/deploy/")
    assert response.status_code == 403 and "nodes 13 of 4" in response.json()["detail"]
    assert sorted(lab_namespaces(lab.lab_id)) == names
    destroy = api.post(f"/api/labs/{lab.pk}/destroy/")
    assert wait_run(destroy.json()["id"]).status == "succeeded"
    assert lab_namespaces(lab.lab_id) == []
