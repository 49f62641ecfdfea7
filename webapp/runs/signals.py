"""Worker hooks: the run code loaded before the pool forks, recovery of runs a dead worker left behind, the
accelerator decision made at start, and the periodic health check's schedule.

- `worker_init` (the worker's main process, before it forks its pool): imports the agent's run code
  (`webapp.runs.agent`: netops.engine, pyroute2), so every pool process starts with it. It was imported by the
  first run of each pool process, inside the run: run created -> run.started took 2.15 s for the first deploy
  after the worker started (1.92 s of it that import, on a busy machine) and 18 ms for the next.
- `worker_ready`: in a thread, the host's KVM-or-TCG decision (`netops.qemu.accel_info`: a probe boot under KVM
  that takes up to 20 s where /dev/kvm exists but hangs, then cached for the host's boot), so that the first VM a
  lab deploys does not wait for it.
- `worker_ready`: runs still queued/running whose task no live worker holds and whose message is not
  waiting in the broker are failed with services.WORKER_STOPPED. Deploying again finishes the lab;
  destroying removes it (both work from kernel state).
- Celery beat runs `check_deployed_labs` every TOPOLAB_HEALTH_INTERVAL seconds (default 30; the agent that takes
  it asks every other lab host that is up to check its own share, `check_host_labs`), and `prune`
  (old run events, expired or ownerless captures) every TOPOLAB_PRUNE_INTERVAL seconds (default 3600). Beat must run
  once per installation: `celery -A webapp worker -B ...` on a single agent, or a separate `celery -A webapp beat`.
"""
from __future__ import annotations

import json
import logging
import threading

from celery.signals import worker_init, worker_ready
from django.conf import settings

from webapp.celery import app

from .services import agent_queue

log = logging.getLogger(__name__)


HEALTH_CHECK = "topolab: health check of deployed labs"
HEALTH_INTERVAL = float(getattr(settings, "TOPOLAB_HEALTH_INTERVAL", 30))
PRUNE = "topolab: prune old run events and captures"
PRUNE_INTERVAL = float(getattr(settings, "TOPOLAB_PRUNE_INTERVAL", 3600))
app.conf.beat_schedule = {
    **(app.conf.beat_schedule or {}),
    HEALTH_CHECK: {
        "task": "webapp.runs.tasks.check_deployed_labs",
        "schedule": HEALTH_INTERVAL,
        # A backlog of checks is pointless (only the latest state matters): drop those not started in time.
        "options": {"expires": HEALTH_INTERVAL * 0.9, "queue": agent_queue()},
    },
    PRUNE: {
        "task": "webapp.runs.tasks.prune",
        "schedule": PRUNE_INTERVAL,
        "options": {"expires": PRUNE_INTERVAL * 0.9, "queue": agent_queue()},
    },
}


def agent_queues() -> list[str]:
    """Every queue an agent takes runs from: the shared one, and `agent.<host>` of every host known (a Host row)
    or named by a part of an active run."""
    from webapp.hosts.models import Host

    from . import parts
    from .models import Run

    hosts = set(Host.objects.values_list("name", flat=True))
    for run_parts in Run.objects.filter(status__in=Run.ACTIVE).exclude(parts={}).values_list("parts", flat=True):
        hosts |= set(run_parts or {})
    return [agent_queue(), *sorted(parts.host_queue(h) for h in hosts)]


def alive_task_ids(timeout: float = 1.0) -> set[str]:
    """Task ids some live worker is executing or holds, plus those still waiting in an agent queue (the shared
    one and every host's)."""
    ids: set[str] = set()
    inspect = app.control.inspect(timeout=timeout)
    for method in (inspect.active, inspect.reserved, inspect.scheduled):
        for tasks in (method() or {}).values():
            for task in tasks:
                request = task.get("request", task)
                if request.get("id"):
                    ids.add(request["id"])
    ids |= _waiting_in_broker(*agent_queues())
    return ids


def _waiting_in_broker(*queues: str) -> set[str]:
    """Ids of task messages still in the broker's lists for `queues` (Redis transport: a list per queue)."""
    ids = set()
    with app.connection_for_read() as conn:
        client = conn.default_channel.client
        for queue in queues:
            for raw in client.lrange(queue, 0, -1):
                try:
                    ids.add(json.loads(raw)["headers"]["id"])
                except (ValueError, KeyError, TypeError):
                    continue
    return ids


@worker_init.connect
def _load_run_code(sender=None, **kwargs) -> None:
    """Import what every run needs once, in the worker's main process: its pool processes are forked with it.
    Modules only: no connection is opened here (a database or Redis connection must not cross the fork)."""
    import importlib

    from django.conf import settings

    from . import agent  # noqa: F401

    # the channel layer's backend module, which every event's group_send needs (channels_redis, redis.asyncio)
    backend = (getattr(settings, "CHANNEL_LAYERS", {}).get("default") or {}).get("BACKEND", "")
    if backend.count("."):
        importlib.import_module(backend.rsplit(".", 1)[0])


@worker_ready.connect
def _decide_accelerator(sender=None, **kwargs) -> threading.Thread:
    """Make (or read) the host's accelerator decision in the background; a VM started meanwhile waits for it
    (accel_info holds a lock while it probes), never probes twice."""

    def decide() -> None:
        from netops import qemu

        try:
            decision = qemu.accel_info()
        except Exception:
            log.exception("the accelerator decision at start failed; the first VM will decide")
            return
        log.info("VMs run with %s (%s)", decision["accel"], decision["reason"])

    thread = threading.Thread(target=decide, name="topolab-accel", daemon=True)
    thread.start()
    return thread


@worker_ready.connect
def _recover_orphaned_runs(sender=None, **kwargs) -> None:
    from .services import fail_orphaned_runs

    try:
        recovered = fail_orphaned_runs(alive_task_ids())
    except Exception:
        log.exception("recovery of runs interrupted by a stopped worker failed")
        return
    for item in recovered:
        log.warning("run %s of lab %s: %s", item.run_id, item.lab_pk, "marked failed (worker stopped)")
    try:  # destroys across hosts that this host missed while it was down
        from django.conf import settings

        from .agent import reconcile

        for lab_id in reconcile(settings.TOPOLAB_HOST):
            log.warning("lab %s: removed this host's part of a destroy it missed while down", lab_id)
    except Exception:
        log.exception("reconciling destroys missed while this host was down failed")
