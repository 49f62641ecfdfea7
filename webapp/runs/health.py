"""The periodic health check's sweeps (agent side, root): the kernel and the database made to agree.

- **Orphans**: a lab in the kernel whose id this installation issued (a LabId row) but that no Lab row owns any
  more (deleted behind Topolab's back, its owner's account deleted) is destroyed, logged, and recorded as an
  OrphanedLab (the admin lists and counts them). Lab ids this installation never issued (a `netops up` from the
  command line, another installation's labs) are never touched.
- **Vanished labs**: a lab the database calls deployed that has nothing left in the kernel (after `netops clean`
  or a reboot) is marked not deployed, with a `lab.undeployed` event that says why, so its quota is free again.
- **Pruning**: run events of old runs, past a limit per lab.

Races with runs are closed by the scan's start time: a lab with a run that is active, or that started or ended
after the scan began, is left for the next check.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from netops import cell as cells
from netops import engine, naming, procs
from netops.kernel import cgroups, netns
from netops.observe import find_tagged
from webapp.labs.models import Lab, LabId

from . import services
from .models import LabState, OrphanedLab, Run, RunEvent

log = logging.getLogger("topolab.health")

VANISHED = ("the lab's namespaces and processes are gone from the kernel (removed outside Topolab, e.g. by "
            "`netops clean` or a reboot); it is marked not deployed: press Deploy to run it again")


@dataclass
class Sweep:
    orphans: list[str]
    vanished: list[int]


def kernel_lab_ids(*, everything: bool = False) -> set[str]:
    """Ids of every lab with a tagged namespace, host link or process on this host; with `everything`, also those
    with only a cgroup, a cell or a run dir left (what destroy would still clean up).

    The same inventory netops' destroy_all() builds; netops has no public function for it yet.
    """
    with netns.Namespaces() as spaces:
        found = find_tagged(spaces, None)
    labs = {lab for lab, _ in found.namespaces.values()} | set(found.root_links.values())
    labs |= {p.lab for p in procs.find()}
    if everything:
        labs |= set(cgroups.labs()) | set(cells.allocated())
        root = naming.run_root()
        if root.exists():
            labs |= {p.name for p in root.iterdir() if p.is_dir() and naming.LAB_ID_RE.match(p.name)}
    return labs


def remove_orphans(kernel_ids: set[str]) -> list[str]:
    """Destroy the labs in `kernel_ids` this installation issued and no Lab row owns; returns their ids."""
    issued = set(LabId.objects.filter(lab_id__in=kernel_ids).values_list("lab_id", flat=True))
    owned = set(Lab.objects.filter(lab_id__in=issued).values_list("lab_id", flat=True))
    orphans = sorted(issued - owned)
    for lab_id in orphans:
        removed, error = [], ""
        try:
            removed = engine.down(lab_id)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.exception("health check: could not destroy orphaned lab %s", lab_id)
        OrphanedLab.objects.create(lab_id=lab_id, removed=removed, error=error)
        log.warning("health check: destroyed orphaned lab %s (no lab row owns it): %d objects", lab_id, len(removed))
    return orphans


def mark_vanished(kernel_ids: set[str], scan_started, *, placed_only: bool = False) -> list[int]:
    """Mark deployed labs with nothing in the kernel as not deployed; returns their pks. A lab across hosts is not
    one host's to say; with `placed_only`, neither is a lab no deploy placed (it may run on another host)."""
    from django.conf import settings

    from .parts import lab_span

    marked = []
    for lab in Lab.objects.filter(deploy_state__deployed=True).exclude(lab_id__in=kernel_ids):
        hosts = set(lab_span(lab.pk).hosts)
        if hosts and hosts != {settings.TOPOLAB_HOST}:  # runs (also) on other hosts: not this host's to say
            continue
        if placed_only and not hosts:
            continue
        with transaction.atomic():
            recent = Q(status__in=Run.ACTIVE) | Q(created__gte=scan_started) | Q(finished__gte=scan_started)
            if Run.objects.filter(lab=lab).filter(recent).exists():
                continue
            changed = LabState.objects.filter(lab=lab, deployed=True).update(
                deployed=False, deployed_document=None, deployed_version=None)
        if not changed:
            continue
        services.record_event(lab.pk, None, "lab.undeployed", message=VANISHED)
        state = LabState.objects.get(lab=lab)
        services.node_states(lab.pk, None, [(node, "absent") for node, node_state in sorted(state.nodes.items())
                                            if node_state != "absent"], message=VANISHED)
        log.warning("health check: lab %s (%s) vanished from the kernel; marked not deployed", lab.pk, lab.lab_id)
        marked.append(lab.pk)
    return marked


def sweep(*, placed_only: bool = False) -> Sweep:
    """Orphans destroyed, vanished labs marked (one kernel scan for both; `placed_only`: see mark_vanished)."""
    scan_started = timezone.now()
    kernel_ids = kernel_lab_ids(everything=True)
    alive = kernel_lab_ids()  # a run dir or an empty cgroup alone is not a deployed lab
    return Sweep(orphans=remove_orphans(kernel_ids), vanished=mark_vanished(alive, scan_started, placed_only=placed_only))


def run_events_keep() -> int:
    """Runs per lab whose events are kept (TOPOLAB_RUN_EVENTS_KEEP_RUNS, default 20)."""
    return int(getattr(settings, "TOPOLAB_RUN_EVENTS_KEEP_RUNS", 20))


def prune_run_events(keep_runs: int | None = None) -> int:
    """Delete the events of each lab's runs older than its `keep_runs` newest (and the run-less health events
    older than the oldest run kept). Runs themselves stay (who deployed what, and when). Returns rows deleted."""
    keep_runs = run_events_keep() if keep_runs is None else keep_runs
    deleted = 0
    labs = Run.objects.values("lab_id").order_by().distinct()
    for row in labs:
        kept = list(Run.objects.filter(lab_id=row["lab_id"]).order_by("-created", "-pk")
                    .values_list("pk", "created")[:keep_runs])
        if len(kept) < keep_runs:
            continue
        oldest_kept = kept[-1][1]
        old = RunEvent.objects.filter(lab_id=row["lab_id"]).filter(
            Q(run__created__lt=oldest_kept) | Q(run__isnull=True, ts__lt=oldest_kept))
        deleted += old.delete()[0]
    return deleted
