"""Runs across hosts, the bookkeeping (webapp.runs.parts): VNIs, claiming and ending parts, naming the failed host.
The kernel side (tunnels between simulated hosts) is tests/webapp/test_multihost.py."""
from __future__ import annotations

import contextlib
import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from webapp.labs.models import Lab
from webapp.runs import parts
from webapp.runs.models import Run, RunEvent, SegmentVni

pytestmark = [pytest.mark.webapp]

DOC = {"version": 1, "name": "span", "nodes": {"sw": {"kind": "bridge"}, "h1": {"kind": "host"}}, "links": []}


@pytest.fixture
def owner(db):
    return get_user_model().objects.create_user("pia", password="correct horse battery")


def _lab(owner, name="span"):
    return Lab.objects.create(owner=owner, name=name, document=DOC)


@pytest.mark.django_db
def test_vnis_are_kept_per_segment_distinct_across_labs_and_never_reused(owner):
    a, b = _lab(owner, "a"), _lab(owner, "b")
    va = parts.allocate_vnis(a.pk, ["sw", "link:h1:eth1--h2:eth1"])
    vb = parts.allocate_vnis(b.pk, ["sw"])
    assert set(va) == {"sw", "link:h1:eth1--h2:eth1"} and len(set(va.values()) | set(vb.values())) == 3
    assert all(parts.VNI_FIRST <= v <= parts.VNI_LAST for v in [*va.values(), *vb.values()])
    assert parts.allocate_vnis(a.pk, ["sw"]) == {"sw": va["sw"]}  # a redeploy keeps the lab's VNI
    top = max([*va.values(), *vb.values()])
    a.delete()
    assert SegmentVni.objects.filter(lab=None).count() == 2  # the rows outlive the lab
    assert parts.allocate_vnis(b.pk, ["other"])["other"] == top + 1  # so its VNIs are not handed out again


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("in_transaction", [False, True], ids=["autocommit", "in-a-deploys-transaction"])
def test_concurrent_allocations_never_share_a_vni(owner, in_transaction):
    """Six labs at once. Inside a transaction (as a deploy would allocate) a clash must not abort it: on
    PostgreSQL the retry needs the savepoint, and READ COMMITTED to see the other deploy's row."""
    labs = [_lab(owner, f"l{i}") for i in range(6)]
    got: dict[int, dict] = {}
    errors = []
    together = threading.Barrier(len(labs))

    def allocate(lab):
        together.wait(10)
        try:
            with transaction.atomic() if in_transaction else contextlib.nullcontext():
                got[lab.pk] = parts.allocate_vnis(lab.pk, ["sw", "core"])
        except Exception as exc:  # noqa: BLE001 - any failure is reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=allocate, args=(lab,)) for lab in labs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    values = [v for d in got.values() for v in d.values()]
    assert len(values) == 12 and len(set(values)) == 12


def _run(owner, hosts):
    lab = _lab(owner)
    return Run.objects.create(lab=lab, kind=Run.Kind.DEPLOY, parts=parts.new_parts(hosts), document=DOC,
                              span={"placement": {"h1": "a"}, "underlays": {h: "100.64.0.1" for h in hosts},
                                    "vnis": {}, "mtu": 1450})


@pytest.mark.django_db
def test_the_first_claim_starts_the_run_a_second_claim_of_a_part_is_refused(owner):
    run = _run(owner, ["b", "a"])
    assert [h for h in run.parts] == ["a", "b"] and len(parts.task_ids(run)) == 2
    got, first = parts.claim(run.pk, "b")
    assert first and got.status == Run.Status.RUNNING and got.parts["b"]["status"] == parts.PART_RUNNING
    assert parts.claim(run.pk, "b") is None  # a redelivered task
    assert parts.claim(run.pk, "nowhere") is None  # a host without a part
    _, first = parts.claim(run.pk, "a")
    assert not first


@pytest.mark.django_db
def test_the_last_part_ends_the_run_and_a_failure_names_its_host_and_element(owner):
    run = _run(owner, ["a", "b", "c"])
    for h in "abc":
        parts.claim(run.pk, h)
    assert parts.finish(run, "a") is None
    assert parts.finish(run, "c", error="create vxlan: File exists", element="nodes.sw") is None
    assert parts.unfinished_hosts(Run.objects.get(pk=run.pk)) == ["b"]
    outcome = parts.finish(run, "b")
    assert outcome == {"error": "host c: create vxlan: File exists", "element": "nodes.sw"}


@pytest.mark.django_db
def test_all_parts_succeeding_end_the_run_without_error(owner):
    run = _run(owner, ["a", "b"])
    parts.claim(run.pk, "a"), parts.claim(run.pk, "b")
    assert parts.finish(run, "b") is None
    assert parts.finish(run, "a") == {"error": "", "element": ""}


@pytest.mark.django_db
def test_parts_of_a_host_that_stopped_are_failed_and_the_run_ends_naming_it(owner, settings):
    run = _run(owner, ["a", "b"])
    parts.claim(run.pk, "a")
    parts.finish(run, "a")
    assert parts.fail_parts_on({"b"}, "the agent of host b stopped answering") == [run.pk]
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED and run.error == "host b: the agent of host b stopped answering"
    assert RunEvent.objects.filter(run=run, type="run.failed").count() == 1
    assert parts.claim(run.pk, "b") is None  # the host's task, when its agent returns, does nothing


@pytest.mark.django_db
def test_a_lab_on_one_host_has_no_span_and_no_parts(owner):
    lab = _lab(owner)
    assert parts.prepare(lab.pk, None, {"h1": "a", "sw": "a"}, {"a": "100.64.0.1"}, mtu=1450) == (None, {})
    assert parts.destroy_span(lab.pk) == (None, {})


def test_host_queue_names():
    assert parts.host_queue("lab2") == "agent.lab2"


@pytest.mark.django_db
def test_a_check_run_across_hosts_runs_each_check_where_its_node_runs_and_stores_one_result_in_order(owner):
    from netops import labchecks
    from webapp.checks.agent import store_result
    from webapp.checks.models import CheckResult

    where = parts.LabSpan(["a", "b"], {"h1": "a", "h2": "b"})
    checks, problems = labchecks.parse_checks([
        {"id": "one", "title": "h2 first", "ping": {"from": "h2", "to": "10.0.0.1"}},
        {"id": "two", "title": "then h1", "address": {"node": "h1", "interface": "eth0", "in": "10.0.0.0/24"}},
        {"id": "gone", "title": "a node no longer there", "command": {"node": "h9", "run": ["true"]}}])
    assert problems == []
    assert parts.check_hosts(where, checks) == ["a", "b"]
    assert [c.id for c in parts.checks_here(where, checks, "a")] == ["two", "gone"]  # the first host reports h9
    assert [c.id for c in parts.checks_here(where, checks, "b")] == ["one"]
    lab = _lab(owner)
    run = Run.objects.create(lab=lab, kind=Run.Kind.CHECK, document={"checks": []}, parts=parts.new_parts(["a", "b"]))

    def outcome(check, passed: bool) -> list:
        return [check.index, labchecks.Outcome(check.id, check.title, passed, "seen", 1).as_dict()]

    parts.claim(run.pk, "a")
    parts.claim(run.pk, "b")
    assert parts.finish(run, "a", outcomes=[outcome(checks[1], True), outcome(checks[2], False)]) is None
    assert parts.finish(run, "b", outcomes=[outcome(checks[0], True)]) == {"error": "", "element": ""}
    store_result(run, lab, parts.outcomes(run))
    result = CheckResult.objects.get(run=run)
    assert [o["id"] for o in result.outcomes] == ["one", "two", "gone"] and (result.earned, result.possible) == (2, 3)
