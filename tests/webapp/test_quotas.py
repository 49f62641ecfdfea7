"""Quotas per user and per class, checked before a deploy creates anything.

People: alice and bob in class net101 (instructor irene), oscar in no class.
"""
from __future__ import annotations

import os
import time

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient
from support import KERNEL_LOCK, lab_namespaces, wait_run

from webapp.accounts.models import Profile, Role
from webapp.classroom.conf import quota_default
from webapp.classroom.models import Classroom, Quota
from webapp.classroom.quotas import QuotaExceeded, lab_usage
from webapp.classroom.services import check_deploy_quota
from webapp.labs.models import Lab
from webapp.runs.models import LabState, Run

pytestmark = [pytest.mark.webapp, pytest.mark.django_db]


def host_lab(name: str, hosts: int = 1, vms: int = 0, memory: int | None = None) -> dict:
    nodes = {f"h{i}": {"kind": "host"} for i in range(1, hosts + 1)}
    for i in range(1, vms + 1):
        nodes[f"vm{i}"] = {"kind": "vm", "image": "tiny", **({"memory": memory} if memory else {})}
    return {"version": 1, "name": name, "nodes": nodes, "links": []}


@pytest.fixture
def people():
    User = get_user_model()
    alice, bob, oscar = (User.objects.create_user(n) for n in ("alice", "bob", "oscar"))
    irene = User.objects.create_user("irene")
    Profile.objects.create(user=irene, role=Role.INSTRUCTOR)
    net101 = Classroom.objects.create(name="net101")
    net101.instructors.add(irene)
    net101.members.add(alice, bob)
    return alice, bob, oscar, irene, net101


def running(owner, name: str, **kw) -> Lab:
    """A lab the runs app believes deployed (kernel objects may exist)."""
    lab = Lab.objects.create(owner=owner, name=name, document=host_lab(name, **kw))
    LabState.objects.create(lab=lab, deployed=True, nodes={n: "running" for n in lab.document["nodes"]})
    return lab


def refusal(user, lab) -> str:
    with pytest.raises(QuotaExceeded) as info:
        check_deploy_quota(user, lab)
    return info.value.message


def in_use(*labs: Lab) -> str:
    """The end of a quota message: the labs that use the quota, with links to them."""
    return "; in use by " + ", ".join(f"{lab.name} (/labs/{lab.pk}/)" for lab in labs) + ": destroy one to free it"


# ---------------------------------------------------------------------------------------------- accounting


def test_a_lab_uses_its_nodes_vms_and_their_memory():
    usage = lab_usage(host_lab("x", hosts=2, vms=2, memory=300))
    assert (usage.running_labs, usage.nodes, usage.vms, usage.vm_memory) == (1, 4, 2, 600)


def test_operator_defaults_come_from_the_environment(monkeypatch, settings):
    monkeypatch.setenv("TOPOLAB_QUOTA_USER_RUNNING_LABS", "7")
    assert quota_default("USER_RUNNING_LABS") == 7
    settings.TOPOLAB_QUOTA_USER_RUNNING_LABS = 3  # settings win over the environment
    assert quota_default("USER_RUNNING_LABS") == 3
    monkeypatch.setenv("TOPOLAB_QUOTA_USER_NODES", "lots")
    with pytest.raises(ValueError, match="TOPOLAB_QUOTA_USER_NODES"):
        quota_default("USER_NODES")


# ---------------------------------------------------------------------------------------------- per user


def test_it_refuses_a_third_running_lab_by_default_and_names_the_quota(people):
    alice = people[0]
    one, two = running(alice, "one"), running(alice, "two")
    third = Lab.objects.create(owner=alice, name="three", document=host_lab("three"))
    assert quota_default("USER_RUNNING_LABS") == 2
    assert refusal(alice, third) == "quota exceeded: running labs 2 of 2 for user alice" + in_use(one, two)


def test_redeploying_a_running_lab_does_not_count_it_twice(people):
    alice = people[0]
    running(alice, "one")
    second = running(alice, "two")
    check_deploy_quota(alice, second)  # no exception


def test_a_users_own_quota_overrides_the_default(people):
    alice, bob = people[0], people[1]
    Quota.objects.create(user=alice, running_labs=1)
    one = running(alice, "one")
    assert refusal(alice, Lab.objects.create(owner=alice, name="two")) == \
        "quota exceeded: running labs 1 of 1 for user alice" + in_use(one)
    running(bob, "b-one")
    check_deploy_quota(bob, Lab.objects.create(owner=bob, name="b-two"))  # bob keeps the default of 2


def test_operator_defaults_do_not_limit_staff_but_a_quota_made_for_them_does(people):
    User = get_user_model()
    admin = User.objects.create_user("admin", is_staff=True)
    one, two = running(admin, "one"), running(admin, "two", hosts=40)
    third = Lab.objects.create(owner=admin, name="three", document=host_lab("three", hosts=3))
    check_deploy_quota(admin, third)  # over every default, and allowed
    Quota.objects.create(user=admin, running_labs=2)
    assert refusal(admin, third) == "quota exceeded: running labs 2 of 2 for user admin" + in_use(one, two)
    people[4].members.add(admin)  # and a staff member of a class counts against the class
    Quota.objects.filter(user=admin).delete()
    Quota.objects.create(classroom=people[4], running_labs=2)
    assert refusal(admin, third) == "quota exceeded: running labs 2 of 2 for class net101" + in_use(one, two)


@pytest.mark.parametrize("field, kw, message, named", [
    ("nodes", {"hosts": 4}, "quota exceeded: nodes 5 of 4 for user alice with this lab (now 1)", True),
    ("vms", {"vms": 2}, "quota exceeded: VMs 2 of 1 for user alice with this lab (now 0)", False),
    ("vm_memory", {"vms": 1, "memory": 512},
     "quota exceeded: VM memory (MiB) 512 of 256 for user alice with this lab (now 0)", False),
])
def test_it_refuses_too_many_nodes_vms_or_too_much_vm_memory(people, field, kw, message, named):
    """The message names the running labs that use the resource (the small lab has a host, but no VM)."""
    alice = people[0]
    Quota.objects.create(user=alice, **{"nodes": 4, "vms": 1, "vm_memory": 256})
    small = running(alice, "small")  # one host
    lab = Lab.objects.create(owner=alice, name="big", document=host_lab("big", **kw))
    assert refusal(alice, lab) == message + (in_use(small) if named else "")


def test_zero_means_no_limit(people):
    alice = people[0]
    Quota.objects.create(user=alice, running_labs=0)
    for i in range(3):
        running(alice, f"lab{i}")
    check_deploy_quota(alice, Lab.objects.create(owner=alice, name="one-more"))


# ---------------------------------------------------------------------------------------------- per class


def test_a_class_quota_counts_every_members_labs(people):
    alice, bob, oscar, irene, net101 = people
    Quota.objects.create(classroom=net101, running_labs=2)
    a, b = running(alice, "a"), running(bob, "b")
    third = Lab.objects.create(owner=alice, name="a2")
    assert refusal(alice, third) == "quota exceeded: running labs 2 of 2 for class net101" + in_use(a, b)
    running(oscar, "o")  # not in the class: not counted, not limited by it
    check_deploy_quota(oscar, Lab.objects.create(owner=oscar, name="o2"))


def test_an_instructor_deploying_a_students_lab_spends_the_students_quota(people):
    alice, irene = people[0], people[3]
    Quota.objects.create(user=alice, running_labs=1)
    running(alice, "one")
    assert "for user alice" in refusal(irene, Lab.objects.create(owner=alice, name="two"))


# ---------------------------------------------------------------------------------------------- the deploy API


def test_the_deploy_api_refuses_over_quota_and_creates_no_run(people):
    alice = people[0]
    Quota.objects.create(user=alice, running_labs=1)
    one = running(alice, "one")
    lab = Lab.objects.create(owner=alice, name="two", document=host_lab("two"))
    client = APIClient()
    client.force_authenticate(alice)
    response = client.post(f"/api/labs/{lab.pk}/deploy/")
    assert response.status_code == 403
    assert response.json()["detail"] == "quota exceeded: running labs 1 of 1 for user alice" + in_use(one)
    assert response.json()["labs"] == [{"id": one.pk, "name": "one", "owner": "alice", "url": f"/labs/{one.pk}/"}]
    assert not Run.objects.filter(lab=lab).exists()
    assert not LabState.objects.filter(lab=lab).exists()


def test_destroy_is_never_refused_for_quota(people):
    alice = people[0]
    Quota.objects.create(user=alice, running_labs=1)
    running(alice, "one")
    over = running(alice, "two")  # over quota already (the quota was lowered): destroying must still work
    client = APIClient()
    client.force_authenticate(alice)
    assert client.post(f"/api/labs/{over.pk}/destroy/").status_code == 202


# ---------------------------------------------------------------------------------------------- real worker


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(os.geteuid() != 0, reason="the agent needs root")
def test_a_student_over_quota_gets_nothing_in_the_kernel_until_the_quota_allows_it(people, celery_worker):
    """With a live agent: the refused deploy leaves no run and no namespace; once allowed, the same request
    deploys for real (so the kernel check above could have seen one)."""
    alice = people[0]
    quota = Quota.objects.create(user=alice, running_labs=1)
    already = running(alice, "already-running")  # bookkeeping only: this one has no kernel objects
    lab = Lab.objects.create(owner=alice, name="wanted", document=host_lab("wanted", hosts=2))
    client = APIClient()
    client.force_authenticate(alice)

    KERNEL_LOCK.acquire()
    try:
        response = client.post(f"/api/labs/{lab.pk}/deploy/")
        assert response.status_code == 403
        assert response.json()["detail"] == "quota exceeded: running labs 1 of 1 for user alice" + in_use(already)
        time.sleep(2)  # a deploy, had one been enqueued, would have started by now
        assert not Run.objects.filter(lab=lab).exists()
        assert lab_namespaces(lab.lab_id) == []

        quota.running_labs = 2
        quota.save()
        response = client.post(f"/api/labs/{lab.pk}/deploy/")
        assert response.status_code == 202, response.content
        assert wait_run(response.json()["id"]).status == "succeeded"
        assert lab_namespaces(lab.lab_id)

        response = client.post(f"/api/labs/{lab.pk}/destroy/")
        assert wait_run(response.json()["id"]).status == "succeeded"
        assert lab_namespaces(lab.lab_id) == []
    finally:
        if lab_namespaces(lab.lab_id):
            from netops import engine

            engine.down(lab.lab_id)
        KERNEL_LOCK.release()
