"""What agents write and check about lab hosts (both run in the agent, which has database access).

- `heartbeat()`: this host's row, inserted or updated in one statement (INSERT ... ON CONFLICT (name) DO UPDATE on
  SQLite and PostgreSQL alike), so two agents starting at once, or an agent whose row was deleted, never clash.
  `first_seen` is kept; `down_since` is cleared: a host that comes back is up again.
- `check_hosts()`: the hosts whose last heartbeat is older than TOPOLAB_HOST_DOWN_AFTER are down; each is logged
  once (the agent whose update set `down_since` logs it), and their queued or running parts of runs across hosts
  are failed (webapp.runs.parts.fail_parts_on), which ends such a run naming the host. Every agent's heartbeat
  loop runs it after its own heartbeat; failing a part twice is refused under the run's row lock, so agents
  checking at once do not end a run twice.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.utils import timezone

from . import conf
from .models import Host

log = logging.getLogger("topolab.hosts")

HOST_DOWN = "its agent stopped answering (no heartbeat for more than {seconds:g} s)"


def heartbeat(*, nodes_running: int | None = None, now: datetime | None = None) -> Host:
    """Announce this host (TOPOLAB_HOST): address, CPUs, memory, nodes running, version, now."""
    from netops import hosts

    now = now or timezone.now()
    if nodes_running is None:
        try:
            nodes_running = hosts.nodes_running()
        except OSError:
            log.exception("could not count the nodes running on this host")
            nodes_running = 0
    row = Host(name=conf.this_host(), underlay_address=conf.underlay_address(), cpus=conf.cpus(),
               memory_bytes=conf.memory_bytes(), nodes_running=nodes_running, version=conf.version(),
               first_seen=now, last_heartbeat=now, down_since=None)
    Host.objects.bulk_create([row], update_conflicts=True, unique_fields=["name"],
                             update_fields=["underlay_address", "cpus", "memory_bytes", "nodes_running", "version",
                                            "last_heartbeat", "down_since"])
    return Host.objects.get(name=row.name)


def down_hosts(now: datetime | None = None) -> list[str]:
    cutoff = (now or timezone.now()) - timedelta(seconds=conf.down_after())
    return sorted(Host.objects.filter(last_heartbeat__lt=cutoff).values_list("name", flat=True))


def check_hosts(now: datetime | None = None) -> list[str]:
    """Find the hosts that are down, log each once, fail their parts of runs; returns their names."""
    from webapp.runs import parts

    now = now or timezone.now()
    cutoff = now - timedelta(seconds=conf.down_after())
    down = down_hosts(now)
    for name in down:
        if Host.objects.filter(name=name, down_since__isnull=True, last_heartbeat__lt=cutoff).update(down_since=now):
            log.warning("host %s is down: no heartbeat for more than %g s", name, conf.down_after())
    if down:
        for run_id in parts.fail_parts_on(set(down), HOST_DOWN.format(seconds=conf.down_after())):
            log.warning("run %s: failed the part(s) of down host(s) %s", run_id, ", ".join(down))
    return down
