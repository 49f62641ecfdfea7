"""Cycles (issue 17, part 2): the seed lab (no VM) deployed and destroyed N times through the API of a real daphne
(token auth, HTTP on loopback) by a real agent: the agent's and daphne's memory (RSS) and open file descriptors
grow by no more than a small bound in the second half of the cycles (printed after a 3-cycle warm-up, half way and at the end: pools fill in the first half), the nft ruleset and the host's
net.* sysctls are identical at the end, the kernel inventory and the agent's run dir are as before, and the prune
task leaves the events of the newest TOPOLAB_RUN_EVENTS_KEEP_RUNS runs only (the runs themselves stay).

Only under `make chaos` (100 cycles) or with TOPOLAB_CHAOS_CYCLES=n.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
import uuid

import pytest
from django.contrib.auth import get_user_model
from e2e.conftest import _daphne
from pipeline import inventory, leaks, ns_exec, seed_lab, wait_run
from rest_framework.authtoken.models import Token
from support import CHAOS_FULL, chaos_count, fd_targets, process_group, usage

from webapp.accounts.models import Profile, Role
from webapp.labs.models import Lab
from webapp.runs.models import Run, RunEvent
from webapp.runs.tasks import prune

pytestmark = [pytest.mark.webapp, pytest.mark.kernel, pytest.mark.slow, pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(os.geteuid() != 0, reason="the agent needs root"),
              pytest.mark.skipif(not CHAOS_FULL and "TOPOLAB_CHAOS_CYCLES" not in os.environ,
                                 reason="make chaos only (or TOPOLAB_CHAOS_CYCLES=n)")]

WARM_UP = 3  # cycles before the first measure: imports, caches
# Growth allowed per process (group) in the second half of the cycles. Pools fill in the first half and stay:
# daphne's broker connections (Celery's producer pool, up to broker_pool_limit = 10) open one by one as requests
# land on new ones; a leak grows by every cycle, and shows in the second half as well.
RSS_BOUND_KIB = 8 * 1024
FD_BOUND = 2
# per-interface sysctls come and go with the lab's links; conntrack's count is traffic
VOLATILE = re.compile(r"^net\.(ipv4\.conf|ipv6\.conf|ipv4\.neigh|ipv6\.neigh|mpls\.conf)\.(?!all\.|default\.)"
                      r"|^net\.netfilter\.nf_conntrack_count|^net\.ipv4\.tcp_fastopen_key")


def sysctls() -> dict[str, str]:
    out = subprocess.run(["sysctl", "-a", "-r", r"^net\."], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        key, _, value = line.partition(" = ")
        if not VOLATILE.search(key):
            found[key] = value
    return found


@pytest.mark.timeout(3600)
def test_deploy_destroy_cycles_leak_no_memory_descriptors_rules_sysctls_or_events(
        kill_agent, seed_isp, topolab_subprocess_env, test_tmpdir, spawn, settings, chaos_figures):
    cycles = chaos_count("cycles", 100, 100)
    agent = kill_agent  # never armed: a plain agent
    user = get_user_model().objects.create_user(f"cyc{uuid.uuid4().hex[:6]}", password="x-correct-horse")
    Profile.objects.create(user=user, role=Role.INSTRUCTOR)
    token = Token.objects.create(user=user).key
    keep = settings.TOPOLAB_RUN_EVENTS_KEEP_RUNS  # the agent reads the same environment
    lab = Lab.objects.create(owner=user, name="seed-lab", document=seed_lab(seed_isp["bridge"], vm=False))
    env = {**topolab_subprocess_env, "TOPOLAB_AGENT_QUEUE": agent.queue,
           "TOPOLAB_UPLINK_BRIDGES": seed_isp["bridge"], "TOPOLAB_THROTTLE_DEPLOY": "100000/minute",
           "TOPOLAB_THROTTLE_TOKEN": "100000/minute"}
    env.pop("TOPOLAB_DEBUG", None)
    before, rules, net = inventory(agent.run_dir), subprocess.run(["nft", "list", "ruleset"], capture_output=True,
                                                                   text=True).stdout, sysctls()
    procs: list[subprocess.Popen] = []
    with _daphne(spawn, env, test_tmpdir / "daphne-cycles.log", procs) as url:
        def post(kind: str) -> Run:
            request = urllib.request.Request(f"{url}/api/labs/{lab.pk}/{kind}", data=b"", method="POST",
                                             headers={"Authorization": f"Token {token}"})
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert answer.status == 202
                run = wait_run(json.load(answer)["id"], 120)
            assert run.status == "succeeded", f"{kind}: {run.error}"
            return run

        t0 = time.monotonic()
        at: list[dict[str, tuple[int, int]]] = []  # usage at the end of the warm-up, half way, at the end
        for i in range(cycles):
            if i in (min(WARM_UP, cycles - 1), max(WARM_UP, cycles // 2)):
                at.append({"agent": usage(process_group(agent.proc.pid)), "daphne": usage([procs[0].pid])})
                fds0 = fd_targets([procs[0].pid])
            post("deploy")
            if i == 0:  # it works, once: h1 reaches the ISP
                assert ns_exec(f"tl-{lab.lab_id}-h1", "ping", "-c", "3", "-i", "0.2", "-W", "2",
                               "203.0.113.1").returncode == 0
            post("destroy")
        at.append({"agent": usage(process_group(agent.proc.pid)), "daphne": usage([procs[0].pid])})
        fds1 = fd_targets([procs[0].pid])
        elapsed = time.monotonic() - t0
    print(f"\n{cycles} deploy/destroy cycles of the seed lab in {elapsed:.0f} s "
          f"({elapsed / cycles:.1f} s a cycle); after cycle {WARM_UP}, half way and at the end:")
    grown = []
    for who in ("agent", "daphne"):
        (rss, fds), (rss0, fd0), (rss1, fd1) = at[0][who], at[-2][who], at[-1][who]
        print(f"  {who}: RSS {rss / 1024:.1f} -> {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB, "
              f"open fds {fds} -> {fd0} -> {fd1}")
        if who == "daphne" and fds1 != fds0:
            new = list(fds1)
            for fd in fds0:
                if fd in new:
                    new.remove(fd)
            print(f"  daphne's new descriptors in the second half: {new}")
        if rss1 - rss0 > RSS_BOUND_KIB or fd1 - fd0 > FD_BOUND:
            grown.append(f"{who}: RSS {rss0} -> {rss1} KiB, fds {fd0} -> {fd1}")

    assert prune.apply_async(queue=agent.queue).get(timeout=60) is not None
    runs = list(Run.objects.filter(lab=lab).order_by("-created", "-pk").values_list("pk", flat=True))
    assert len(runs) == 2 * cycles
    kept, old = runs[:keep], runs[keep:]
    stale = RunEvent.objects.filter(run_id__in=old).count()
    missing = [r for r in kept if not RunEvent.objects.filter(run_id=r).exists()]
    print(f"  events: {RunEvent.objects.filter(lab=lab).count()} rows left for {len(kept)} runs kept of "
          f"{len(runs)}")

    left = leaks(before, inventory(agent.run_dir))
    net_changed = {k: (net.get(k), v) for k, v in sysctls().items() if net.get(k) != v}
    net_changed |= {k: (v, None) for k, v in net.items() if k not in sysctls()}
    rules_now = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    chaos_figures.add(f"cycles: {cycles}", leaks=len(grown) + len(left) + bool(net_changed) + (rules_now != rules)
                      + bool(stale) + bool(missing))
    assert not grown, grown
    assert rules_now == rules
    assert not net_changed, net_changed
    assert not left, left
    assert stale == 0 and not missing, (stale, missing)
