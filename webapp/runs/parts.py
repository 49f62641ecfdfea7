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
ends the run; deploying again finishes the lab, destroying removes it on every host that is up. A host whose
heartbeats stopped (webapp.hosts) has its unfinished parts failed by the other agents' checks (`fail_parts_on`).

VNIs: one per lab segment that crosses hosts, from SegmentVni. Rows are never reused for another lab segment (the
VNI space has 16 million values): a host that was down when a lab was destroyed may still hold that lab's tunnel
until its agent reconciles, and a reused VNI would join a new lab's segment to it.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

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


def finish(run: Run, host: str, *, error: str = "", element: str = "", unfinished_only: bool = False,
           outcomes: list | None = None) -> dict | None:
    """Record the end of `host`'s part (with `outcomes`, what its checks found: [[check index, outcome dict]]).
    When it was the last part still running, return the run's outcome {"error", "element"} (the first failed
    part's, by host name) for the caller to end the run with; else None. With
    `unfinished_only`, a part already done is left as it is (None): two agents failing a down host's part at once
    end the run once."""
    with transaction.atomic():
        locked = Run.objects.select_for_update(no_key=True).get(pk=run.pk)
        parts = dict(locked.parts or {})
        if unfinished_only and (parts.get(host) or {}).get("status", PART_DONE[0]) in PART_DONE:
            return None
        parts[host] = {**parts.get(host, {}), "status": PART_FAILED if error else PART_SUCCEEDED,
                       "error": error, "element": element, **({"outcomes": outcomes} if outcomes is not None else {})}
        Run.objects.filter(pk=run.pk).update(parts=parts)
        if not locked.active or any(p["status"] not in PART_DONE for p in parts.values()):
            return None
    failed = [(h, p) for h, p in sorted(parts.items()) if p["status"] == PART_FAILED]
    if not failed:
        return {"error": "", "element": ""}
    h, p = failed[0]
    return {"error": f"host {h}: {p['error']}", "element": p["element"]}


def outcomes(run: Run) -> list:
    """The check outcomes every part of a check run recorded, in the order of the checks: [[index, outcome dict]]
    (read once its last part ended)."""
    run_parts = Run.objects.values_list("parts", flat=True).get(pk=run.pk) or {}
    return sorted((item for p in run_parts.values() for item in p.get("outcomes") or []), key=lambda item: item[0])


def task_ids(run: Run) -> set[str]:
    return {p["task_id"] for p in (run.parts or {}).values() if p.get("task_id")}


def unfinished_hosts(run: Run) -> list[str]:
    return sorted(h for h, p in (run.parts or {}).items() if p["status"] not in PART_DONE)


def prepare(lab_pk: int, topology, placement: dict[str, str], underlays: dict[str, str], *, mtu: int,
            previous: dict | None = None, collapse: bool = True) -> tuple[dict | None, dict]:
    """(span, parts) of a deploy with `placement` ({node: host}); (None, {}) for a lab on one host.

    `previous` is the span of the run that deployed what runs now: its hosts get a part too, so a host that no
    longer holds any node of the lab removes its share (tunnels, its part of the bridges)."""
    hosts = set(placement.values()) | set((previous or {}).get("underlays") or {})
    if len(hosts) <= 1 and collapse:  # without collapse, a lab on one host still goes to that host's queue
        return None, {}
    from netops.span import spanning_segments

    missing = sorted(h for h in hosts if h not in underlays)
    if missing:
        raise ValueError(f"no underlay address is known for host(s) {', '.join(missing)}")
    span = {"placement": dict(sorted(placement.items())), "underlays": {h: underlays[h] for h in sorted(hosts)},
            "vnis": allocate_vnis(lab_pk, spanning_segments(topology, placement)), "mtu": mtu}
    return span, new_parts(sorted(hosts))


MIB = 1 << 20
RESERVED_MIB = 512  # what a host keeps for itself (the agent, the database, the kernel) before lab nodes
NS_NODE_MIB = 16  # what placement counts for a node a host runs already (netops.kinds: a namespace node's footprint)


def free_mib(host) -> int:
    """Room a webapp.hosts Host has for more lab nodes, in MiB, from its last heartbeat."""
    return max(0, host.memory_bytes // MIB - RESERVED_MIB - host.nodes_running * NS_NODE_MIB)


def last_span(lab_pk: int) -> dict | None:
    """The span of the lab's last deploy (or reset: a destroy, then a deploy) that ran (None when it ran on one
    host, or never)."""
    last = Run.objects.filter(lab_id=lab_pk, kind__in=(Run.Kind.DEPLOY, Run.Kind.RESET)) \
        .exclude(status=Run.Status.QUEUED) \
        .order_by("-pk").values_list("span", flat=True).first()
    return last or None


@dataclass(frozen=True)
class LabSpan:
    """Where a lab runs, from the span of its last deploy: its hosts (sorted; none for a lab that runs on one host
    as before hosts existed) and {node: host}."""

    hosts: list[str] = field(default_factory=list)
    placement: dict[str, str] = field(default_factory=dict)

    @property
    def across(self) -> bool:
        return len(self.hosts) > 1


def lab_span(lab_pk: int) -> LabSpan:
    """The hosts and placement of the lab's last deploy (or reset) that ran (the one lookup of them)."""
    span = last_span(lab_pk) or {}
    return LabSpan(sorted(span.get("underlays") or {}), dict(span.get("placement") or {}))


def share_here(lab_pk: int, host: str) -> tuple[bool, set[str] | None]:
    """(whether host `host` runs any of the lab, the nodes it runs or None for all): a lab without a span runs
    wholly on the host that took it, as before hosts existed; one with a span runs its placed nodes here."""
    where = lab_span(lab_pk)
    if not where.hosts:
        return True, None
    if host not in where.hosts:
        return False, set()
    return True, {n for n, h in where.placement.items() if h == host}


def action_hosts(where: LabSpan, document: dict, action: dict) -> list[str]:
    """The hosts an action (netops.actions.check's form) of a lab across hosts runs on: a node's stop, start or
    restart on the node's host; a link's actions on every host that holds the link (both ends' hosts of a direct
    link across hosts, the node end's host of a link to a switch); isolate and reconnect on the node's host and
    those of its links' other ends."""
    from netops import actions
    from netops.span import link_hosts
    from netops.topology import parse_document

    topology = parse_document(document)
    if action.get("node") is not None:
        node = action["node"]
        hosts = {where.placement[node]} if node in where.placement else set()
        if action["action"] in ("isolate", "reconnect"):
            for lk in topology.links_of(node):
                hosts |= link_hosts(topology, where.placement, lk)
    else:
        hosts = link_hosts(topology, where.placement, actions.find_link(topology, action["link"]))
    return sorted(hosts)


def check_hosts(where: LabSpan, checks: list) -> list[str]:
    """The hosts a run of `checks` (netops.labchecks.Check) of a lab across hosts runs on: each check on the host
    of the node it runs in; one that names no placed node (a node no longer in the lab) on the first host, which
    reports it."""
    return sorted({where.placement.get(c.runs_in(), where.hosts[0]) for c in checks} or {where.hosts[0]})


def checks_here(where: LabSpan, checks: list, host: str) -> list:
    """Of `checks`, those `host` runs (see `check_hosts`)."""
    return [c for c in checks if where.placement.get(c.runs_in(), where.hosts[0]) == host]


def plan_deploy(lab_pk: int, document: dict, *, deployed: bool) -> tuple[dict | None, dict]:
    """(span, parts) of a deploy of `document` (validated): where each node runs (netops.placement, on the hosts whose
    heartbeats the web tier has) and what that makes cross hosts. (None, {}) when it all runs on one host, which
    is every deploy while a single host is up and no node names its host: exactly as before hosts existed.

    Raises TopologyError naming `nodes.<n>.host` (an unknown or down host), `nodes.<n>` (no room) or an interface's
    `mtu` that a segment across hosts cannot carry. A deployed lab's running nodes stay where they run."""
    from django.conf import settings

    from netops.errors import TopologyError
    from netops.placement import Seat, place
    from netops.span import VXLAN_OVERHEAD, Span, span_problems
    from netops.topology import parse_document
    from webapp.hosts.models import Host

    hosts = list(Host.objects.all())
    up = [h for h in hosts if h.up]
    previous = last_span(lab_pk) if deployed else None
    pinned = any(isinstance(node, dict) and node.get("host") for node in (document.get("nodes") or {}).values())
    if len(up) <= 1 and not pinned and previous is None:
        return None, {}
    topology = parse_document(document)
    result = place(topology, [Seat(h.name, free_mib(h), h.up) for h in hosts],
                   previous=(previous or {}).get("placement"))
    if result.problems:
        raise TopologyError(result.problems)
    mtu = settings.TOPOLAB_UNDERLAY_MTU - VXLAN_OVERHEAD
    # with several hosts up, even a lab that fits one runs as a part on that host's queue: the shared queue
    # would hand its deploy, its destroy and its actions to whichever agent is free
    span, parts = prepare(lab_pk, topology, result.hosts, {h.name: h.underlay_address for h in hosts}, mtu=mtu,
                          previous=previous, collapse=False)
    if span is not None and len(parts) > 1:
        try:
            checked = Span(local=min(parts), placement=span["placement"], underlays=span["underlays"],
                           vnis=span["vnis"], mtu=mtu)
        except ValueError as exc:  # the hosts' own settings (two hosts with one underlay address): the operator's
            from rest_framework import status

            from webapp.core.errors import Refusal

            raise Refusal(f"the lab hosts cannot carry this lab across them: {exc}",
                          code=status.HTTP_409_CONFLICT) from None
        problems = span_problems(topology, checked)
        if problems:
            raise TopologyError(problems)
    return span, parts


def destroy_span(lab_pk: int) -> tuple[dict | None, dict]:
    """(span, parts) of a destroy: the span of the last deploy that ran across hosts, if the lab's last deploy did
    (a destroy of a lab on one host has neither)."""
    span = last_span(lab_pk)
    if not span:
        return None, {}
    return span, new_parts(sorted(span.get("underlays") or {}))


def fail_parts_on(hosts_down: set[str], reason: str) -> list[int]:
    """Fail the queued or running parts that `hosts_down` hold (their agents stopped answering): the run ends,
    naming the host, once its other parts are done. Returns the runs whose parts were failed."""
    failed = []
    for run in Run.objects.filter(status__in=Run.ACTIVE).exclude(parts={}):
        for host in unfinished_hosts(run):
            if host in hosts_down:
                failed.append(run.pk)
                yield_outcome = finish(run, host, error=reason, unfinished_only=True)
                if yield_outcome is not None:
                    from . import services

                    services.finish(run, error=yield_outcome["error"], element=yield_outcome["element"])
    return failed
