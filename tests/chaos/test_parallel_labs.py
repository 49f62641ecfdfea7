"""Parallel labs (issue 17, part 3): N users deploy N labs at once through the API, each the seed lab (no VM) with
identical names and addresses, each on an ISP of its own; all succeed, each h1 pings its own r1 and reaches its own
ISP only; then N destroys at once leave the kernel inventory as it was. N = 5 in `make test`, 20 in `make chaos`
(TOPOLAB_CHAOS_PARALLEL overrides). Real parts: the API (Django test clients, one per user, from N threads), the
session's Celery agent, Redis, the kernel.

Each ISP answers at 203.0.113.1 (the seed lab's gateway) and, on its loopback, at 198.51.100.<i>, an address only
ISP i has: h1 of lab i reaching 198.51.100.i and not 198.51.100.<j> proves it went out through its own r1 and ISP.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest
from django.contrib.auth import get_user_model
from pipeline import isp_namespace, leaks, ns_exec, seed_lab
from rest_framework.test import APIClient
from support import chaos_count, kernel_inventory, lab_namespaces

from webapp.accounts.models import Profile, Role
from webapp.labs.models import Lab
from webapp.runs.models import Run

pytestmark = [pytest.mark.webapp, pytest.mark.kernel, pytest.mark.slow, pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(os.geteuid() != 0, reason="the agent needs root")]


def _at_once(count: int, call) -> list:
    """call(i) for i in range(count) from `count` threads released together; each closes its DB connection."""
    from django.db import connection

    barrier = threading.Barrier(count)

    def one(i: int):
        barrier.wait()
        try:
            return call(i)
        finally:
            connection.close()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def _wait_all(run_ids: list[int], timeout: float) -> list[Run]:
    deadline = time.monotonic() + timeout
    while True:
        runs = list(Run.objects.filter(pk__in=run_ids))
        if all(not r.active for r in runs):
            return sorted(runs, key=lambda r: run_ids.index(r.pk))
        assert time.monotonic() < deadline, f"runs still active after {timeout} s: " \
                                            f"{[(r.pk, r.status) for r in runs if r.active]}"
        time.sleep(0.2)


def test_labs_deployed_at_once_by_as_many_users_all_succeed_each_in_its_own_world(
        celery_worker, kernel_lock, settings, chaos_figures):
    n = chaos_count("parallel", 5, 20)
    part = f"parallel: {n} labs"
    tag = uuid.uuid4().hex[:5]
    with ExitStack() as stack:
        isps = [stack.enter_context(isp_namespace(extra=f"198.51.100.{i + 1}/32")) for i in range(n)]
        settings.TOPOLAB_UPLINK_BRIDGES = ",".join(isp["bridge"] for isp in isps)
        users = [get_user_model().objects.create_user(f"par{tag}{i}", password="x-correct-horse") for i in range(n)]
        for user in users:
            Profile.objects.create(user=user, role=Role.INSTRUCTOR)
        labs = [Lab.objects.create(owner=u, name="seed-lab", document=seed_lab(isp["bridge"], vm=False))
                for u, isp in zip(users, isps, strict=True)]
        before = kernel_inventory()

        def post(kind: str):
            def call(i: int):
                client = APIClient()
                client.force_authenticate(users[i])
                return client.post(f"/api/labs/{labs[i].pk}/{kind}")
            return call

        t0 = time.monotonic()
        responses = _at_once(n, post("deploy"))
        chaos_figures.add(part, **{"500s": sum(r.status_code >= 500 for r in responses)})
        try:
            assert [r.status_code for r in responses] == [202] * n, [r.content for r in responses]
            runs = _wait_all([r.json()["id"] for r in responses], 120 + 20 * n)
            elapsed = time.monotonic() - t0
            assert [(r.status, r.error) for r in runs] == [("succeeded", "")] * n
            print(f"\n{n} labs deployed at once by {n} users: all running after {elapsed:.1f} s")

            def own_world(i: int) -> list[str]:
                h1, other = f"tl-{labs[i].lab_id}-h1", (i + 1) % n
                wrong = []
                if ns_exec(h1, "ping", "-c", "1", "-W", "2", "10.0.1.254").returncode:
                    wrong.append(f"lab {i}: h1 cannot ping its r1")
                if ns_exec(h1, "ping", "-c", "3", "-i", "0.2", "-W", "2", f"198.51.100.{i + 1}").returncode:
                    wrong.append(f"lab {i}: h1 does not reach its own ISP")
                if ns_exec(h1, "ping", "-c", "1", "-W", "1", f"198.51.100.{other + 1}").returncode == 0:
                    wrong.append(f"lab {i}: h1 reaches the ISP of lab {other}")
                return wrong

            with ThreadPoolExecutor(min(n, 8)) as pool:
                wrong = [w for ws in pool.map(own_world, range(n)) for w in ws]
            assert not wrong, wrong
        finally:
            t1 = time.monotonic()
            ends = _at_once(n, post("destroy"))
            chaos_figures.add(part, **{"500s": sum(r.status_code >= 500 for r in ends)})
            assert [r.status_code for r in ends] == [202] * n, [r.content for r in ends]
            assert [r.status for r in _wait_all([r.json()["id"] for r in ends], 60 + 10 * n)] == ["succeeded"] * n
            print(f"{n} destroys at once: done after {time.monotonic() - t1:.1f} s")
        left = leaks(before, kernel_inventory()) + [f"lab {i}: {ns}" for i, lab in enumerate(labs)
                                                    for ns in lab_namespaces(lab.lab_id)]
        chaos_figures.add(part, leaks=len(left))
        assert not left, left
