"""A run across hosts (DESIGN.md "Scaling out"): one Run, one part per lab host, each on that host's queue.

A deploy or destroy of a lab whose nodes sit on several hosts is still one Run with one event sequence. The web
tier records, when the run starts:

- `Run.span`: what every host needs to build its part of the lab's segments that cross hosts (netops.span.Span
  without `local`): {"placement": {node: host}, "underlays": {host: address}, "vnis": {segment: vni}, "mtu": n};
- `Run.parts`: {host: {"status", "task_id", "error", "element"}}, one entry per host with a share of the lab.

`enqueue` sends each host the run's id and the host's name (ids only, JSON) on `agent.<host>`. The hosts work in
parallel; each claims its part (the first claim marks the run running), builds its share with engine.up/down
and the span, and finishes its part. Every update of `parts` happens under a row lock on the run (select_for_update:
a real lock on PostgreSQL, the database's single writer on SQLite), so exactly one part sees that it was the
last, and that part ends the run: failed, naming the host and element, when any part failed; succeeded otherwise.
A part a host never ran (its agent stopped) is failed by that agent's worker-start recovery like any run, which
ends the run; deploying again finishes the lab, destroying removes it on every host that is up.

VNIs: one per lab segment that crosses hosts, from SegmentVni. Rows are never reused for another lab segment (the
VNI space has 16 million values): a host that was down when a lab was destroyed may still hold that lab's tunnel
until its agent reconciles, and a reused VNI would join a new lab's segment to it.
"""
from __future__ import annotations

import uuid

from django.db import IntegrityError, transaction
from django.db.models import Max

from .models import Run, SegmentVni

PART_QUEUED, PART_RUNNING, PART_SUCCEEDED, PART_FAILED = "queued", "running", "succeeded", "failed"
PART_DONE = (PART_SUCCEEDED, PART_FAILED)
VNI_FIRST = 4096  # below: left to the operator (VLAN-like numbering on real fabrics)
VNI_LAST = (1 << 24) - 1


def host_queue(host: str) -> str:
    """The Celery queue of the agent on `host`."""
    return f"agent.{host}"


def new_parts(hosts: list[str]) -> dict:
    return {h: {"status": PART_QUEUED, "task_id": str(uuid.uuid4()), "error": "", "element": ""}
            for h in sorted(set(hosts))}


def allocate_vnis(lab_pk: int, segments: list[str]) -> dict[str, int]:
    """The lab's VNI for each segment (kept from earlier deploys, else the next unused), without collisions
    between labs or concurrent deploys: a clash on the unique VNI is retried with the next one."""
    out: dict[str, int] = {}
    for segment in sorted(set(segments)):
        for _attempt in range(100):
            row = SegmentVni.objects.filter(lab_id=lab_pk, segment=segment).first()
            if row is not None:
                out[segment] = row.vni
                break
            top = SegmentVni.objects.aggregate(m=Max("vni"))["m"] or (VNI_FIRST - 1)
            if top >= VNI_LAST:
                raise RuntimeError("no VXLAN network identifier is left for a new segment")
            try:
                with transaction.atomic():
                    SegmentVni.objects.create(lab_id=lab_pk, segment=segment, vni=top + 1)
            except IntegrityError:
                continue  # another deploy took top + 1 (or this segment) in between: look again
        else:
            raise RuntimeError(f"could not allocate a VNI for segment {segment!r}")
    return out


def enqueue(run: Run) -> None:
    """Send each host its part of `run` (the run's id and the host's name)."""
    from . import tasks

    for host, part in sorted((run.parts or {}).items()):
        tasks.run_part.apply_async((run.pk, host), task_id=part["task_id"], queue=host_queue(host))


def claim(run_id: int, host: str) -> tuple[Run, bool] | None:
    """Mark `host`'s part running; (run, first) where first says this claim started the run; None when the
    part is not queued any more (a redelivered task) or the run ended (another part's host failed it)."""
    from django.utils import timezone

    with transaction.atomic():
        run = Run.objects.select_for_update(no_key=True, of=("self",)).select_related("lab").filter(pk=run_id).first()
        if run is None or not run.active:
            return None
        parts = dict(run.parts or {})
        part = parts.get(host)
        if part is None or part["status"] != PART_QUEUED:
            return None
        parts[host] = {**part, "status": PART_RUNNING}
        first = run.status == Run.Status.QUEUED
        fields = {"parts": parts}
        if first:
            fields.update(status=Run.Status.RUNNING, started=timezone.now())
        Run.objects.filter(pk=run.pk).update(**fields)
        run.refresh_from_db()
    return run, first


def finish(run: Run, host: str, *, error: str = "", element: str = "") -> dict | None:
    """Record the end of `host`'s part. When it was the last part still running, return the run's outcome
    {"error", "element"} (the first failed part's, by host name) for the caller to end the run with; else None."""
    with transaction.atomic():
        locked = Run.objects.select_for_update(no_key=True).get(pk=run.pk)
        parts = dict(locked.parts or {})
        parts[host] = {**parts.get(host, {}), "status": PART_FAILED if error else PART_SUCCEEDED,
                       "error": error, "element": element}
        Run.objects.filter(pk=run.pk).update(parts=parts)
        if not locked.active or any(p["status"] not in PART_DONE for p in parts.values()):
            return None
    failed = [(h, p) for h, p in sorted(parts.items()) if p["status"] == PART_FAILED]
    if not failed:
        return {"error": "", "element": ""}
    h, p = failed[0]
    return {"error": f"host {h}: {p['error']}", "element": p["element"]}


def task_ids(run: Run) -> set[str]:
    return {p["task_id"] for p in (run.parts or {}).values() if p.get("task_id")}


def unfinished_hosts(run: Run) -> list[str]:
    return sorted(h for h, p in (run.parts or {}).items() if p["status"] not in PART_DONE)


def prepare(lab_pk: int, topology, placement: dict[str, str], underlays: dict[str, str], *, mtu: int,
            previous: dict | None = None) -> tuple[dict | None, dict]:
    """(span, parts) of a deploy with `placement` ({node: host}); (None, {}) for a lab on one host.

    `previous` is the span of the run that deployed what runs now: its hosts get a part too, so a host that no
    longer holds any node of the lab removes its share (tunnels, its part of the bridges)."""
    hosts = set(placement.values()) | set((previous or {}).get("underlays") or {})
    if len(hosts) <= 1:
        return None, {}
    from netops.span import spanning_segments

    missing = sorted(h for h in hosts if h not in underlays)
    if missing:
        raise ValueError(f"no underlay address is known for host(s) {', '.join(missing)}")
    span = {"placement": dict(sorted(placement.items())), "underlays": {h: underlays[h] for h in sorted(hosts)},
            "vnis": allocate_vnis(lab_pk, spanning_segments(topology, placement)), "mtu": mtu}
    return span, new_parts(sorted(hosts))


def destroy_span(lab_pk: int) -> tuple[dict | None, dict]:
    """(span, parts) of a destroy: the span of the last deploy that ran across hosts, if the lab's last deploy did
    (a destroy of a lab on one host has neither)."""
    last = Run.objects.filter(lab_id=lab_pk, kind=Run.Kind.DEPLOY).exclude(status=Run.Status.QUEUED) \
        .order_by("-pk").first()
    if last is None or not last.span:
        return None, {}
    return last.span, new_parts(sorted(last.span.get("underlays") or {}))


def fail_parts_on(hosts_down: set[str], reason: str) -> list[int]:
    """Fail the queued or running parts that `hosts_down` hold (their agents stopped answering): the run ends,
    naming the host, once its other parts are done. Returns the runs whose parts were failed."""
    failed = []
    for run in Run.objects.filter(status__in=Run.ACTIVE).exclude(parts={}):
        for host in unfinished_hosts(run):
            if host in hosts_down:
                failed.append(run.pk)
                yield_outcome = finish(run, host, error=reason)
                if yield_outcome is not None:
                    from . import services

                    services.finish(run, error=yield_outcome["error"], element=yield_outcome["element"])
    return failed
