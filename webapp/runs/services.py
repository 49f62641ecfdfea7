"""Runs as the web tier and the agent both see them: starting runs, recording and streaming events, snapshots.

Nothing here touches the kernel or imports netops.engine (that is `agent.py`, imported only by the worker).
Events are stored first and sent to the lab's channel-layer group after the commit, so a browser that
resumes from the database can never miss one that it was sent live, nor see one that is not stored.
"""
from __future__ import annotations

import copy
import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.apps import apps
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from netops import kinds
from netops.errors import LabBusyError, Problem, TopologyError
from webapp.labs import services as lab_services
from webapp.labs.models import Lab

from .models import LabState, Run, RunEvent

log = logging.getLogger(__name__)

WORKER_STOPPED = "the worker stopped during this run; deploy again to finish or destroy to remove"
REPLAY_BATCH = 1000


def agent_queue() -> str:
    """The Celery queue of the agent that runs labs (one per lab host when scaled out)."""
    return getattr(settings, "TOPOLAB_AGENT_QUEUE", None) or os.environ.get("TOPOLAB_AGENT_QUEUE") or "agent"


def lab_queue(lab_pk: int, what: str, node: str | None = None) -> str:
    """The queue of the agent that runs lab `lab_pk`: the shared one for a lab on one host as before hosts
    existed, `agent.<host>` for a lab that a deploy placed on one host (several hosts are up), or for `node` of a
    lab across hosts the queue of the host that runs it. What runs on several hosts of such a lab goes to each as
    a part of its run (webapp.runs.parts); asked for no node, or one that runs nowhere, of a lab across hosts,
    this raises a 409 Refusal naming `what` and the node."""
    from .parts import host_queue, lab_span

    where = lab_span(lab_pk)
    if not where.hosts:
        return agent_queue()
    if len(where.hosts) == 1:
        return host_queue(where.hosts[0])
    if node is not None and node in where.placement:
        return host_queue(where.placement[node])
    from rest_framework import status

    from webapp.core.errors import Refusal

    raise Refusal(Problem(f"nodes.{node}" if node else "", f"{what}: {node or 'this'} runs on no single host of "
                          f"this lab across hosts ({', '.join(where.hosts)})"), code=status.HTTP_409_CONFLICT)


def status_queues(lab_pk: int) -> dict[str, str]:
    """{host: queue} to ask for a lab's status: every host that runs a part of it ({"": queue} for a lab on one
    host, as before hosts existed)."""
    from .parts import host_queue, lab_span

    where = lab_span(lab_pk)
    if not where.across:
        return {"": lab_queue(lab_pk, "status")}
    return {h: host_queue(h) for h in where.hosts}


def merge_status(lab_pk: int, answers: dict[str, dict]) -> dict:
    """One status of a lab from each host's status of its part: each node as the host that runs it sees it (a
    switch: from the first host that has it), links by their path, drift and stopped nodes from all."""
    from .parts import lab_span

    if list(answers) == [""]:
        return answers[""]
    placement = lab_span(lab_pk).placement
    merged: dict = {"lab": "", "nodes": {}, "drift": [], "links": {}, "stopped": []}
    for host, part in sorted(answers.items()):
        merged["lab"] = part.get("lab", merged["lab"])
        for node, info in (part.get("nodes") or {}).items():
            if placement.get(node, host) == host and node not in merged["nodes"]:
                merged["nodes"][node] = {**info, "host": host}
        for path, link in (part.get("links") or {}).items():
            merged["links"].setdefault(path, link)
        merged["drift"] += [d for d in part.get("drift") or [] if d not in merged["drift"]]
        merged["stopped"] += [n for n in part.get("stopped") or [] if n not in merged["stopped"]]
    return merged


def lab_group(lab_pk: int) -> str:
    return f"lab.{lab_pk}"


# ------------------------------------------------------------------------------------------------ starting runs


def lab_busy(run: Run | None) -> LabBusyError:
    """The error of starting a run while `run` of the same lab is queued or running."""
    what = f"{run.kind} #{run.pk} is {run.status}" if run else "another run is active"
    return LabBusyError(f"this lab is busy: {what}; wait for it to finish", run=run)


def active_run(lab: Lab) -> Run | None:
    return Run.objects.filter(lab=lab, status__in=Run.ACTIVE).first()


def start_run(lab: Lab, user, kind: str) -> Run:
    """Create a queued run and enqueue its task (by id, after commit). Raises TopologyError (the document is
    invalid, 400), LabBusyError (409) or (deploy, classroom app) QuotaExceeded (403).

    One transaction: the lab is re-read and locked (its row on PostgreSQL, FOR NO KEY UPDATE: the lock of every
    operation on a lab, which inserts that reference the lab do not wait for; SQLite's one writer), its document validated (with the host
    bridges the owner and `user` may use) and counted against the quotas, and exactly that document is stored on
    the run, which is what the agent deploys. A PUT after this point changes the lab, not the run.
    """
    from . import parts

    with transaction.atomic():
        lab = Lab.objects.select_for_update(no_key=True, of=("self",)).select_related("owner").get(pk=lab.pk)
        document = version = None
        span, run_parts = None, {}
        if kind == Run.Kind.DEPLOY:
            problems = lab_services.lab_problems(lab, requester=user)
            if problems:
                raise TopologyError(problems)
            document, version = copy.deepcopy(lab.document), lab.version
            _check_quota(user, lab, document)
        busy = active_run(lab)
        if busy is not None:
            raise lab_busy(busy)
        if kind == Run.Kind.DEPLOY:  # where each node runs, when more than one lab host is up (webapp.runs.parts)
            state = LabState.objects.filter(lab=lab).first()
            span, run_parts = parts.plan_deploy(lab.pk, document, deployed=bool(state and state.deployed))
        elif kind == Run.Kind.DESTROY:  # on every host the last deploy used
            span, run_parts = parts.destroy_span(lab.pk)
        try:
            with transaction.atomic():
                run = Run.objects.create(lab=lab, kind=kind, started_by=user if user.is_authenticated else None,
                                         document=document, lab_version=version, span=span, parts=run_parts)
        except IntegrityError:  # the conditional unique constraint: someone started one in between
            raise lab_busy(active_run(lab)) from None
        transaction.on_commit(lambda: _enqueue(run))
    return run


class NotDeployed(Exception):
    """An action asked of a lab that runs nothing (409)."""


def start_action(lab: Lab, user, action: object) -> Run:
    """A queued action run (netops.actions: stop/start/restart/isolate/reconnect a node, a link down/up or its
    conditions), checked against the document the lab runs: TopologyError (400, naming `node`, `link`,
    `conditions.<key>`), NotDeployed or LabBusyError (409). One transaction, like `start_run`."""
    from netops import actions
    from netops.topology import parse_document

    from . import parts

    with transaction.atomic():
        lab = Lab.objects.select_for_update(no_key=True).get(pk=lab.pk)
        state = LabState.objects.filter(lab=lab).first()
        if state is None or not state.deployed or not state.deployed_document:
            raise NotDeployed("this lab is not deployed; press Deploy first")
        checked = actions.check(parse_document(state.deployed_document), action)
        busy = active_run(lab)
        if busy is not None:
            raise lab_busy(busy)
        where = parts.lab_span(lab.pk)
        run_parts = {}
        if where.across:  # a part on each host the action concerns (webapp.runs.parts.action_hosts)
            hosts = parts.action_hosts(where, state.deployed_document, checked)
            if not hosts:
                from rest_framework import status

                from webapp.core.errors import Refusal

                raise Refusal(Problem("node" if "node" in checked else "link",
                                      "runs on none of this lab's hosts (it was placed nowhere)"),
                              code=status.HTTP_409_CONFLICT)
            run_parts = parts.new_parts(hosts)
        try:
            with transaction.atomic():
                run = Run.objects.create(lab=lab, kind=Run.Kind.ACTION, action=checked, parts=run_parts,
                                         started_by=user if user.is_authenticated else None,
                                         lab_version=state.deployed_version)
        except IntegrityError:
            raise lab_busy(active_run(lab)) from None
        transaction.on_commit(lambda: _enqueue(run))
    return run


def link_name(endpoints: list[str]) -> str:
    """How LabState.links and link.state events name a link: its endpoints, sorted, joined by a space."""
    return " ".join(sorted(endpoints))


def _check_quota(user, lab: Lab, document: dict) -> None:
    """The classroom app's quotas (no-op without that app); raises QuotaExceeded (403) naming the labs."""
    if apps.is_installed("webapp.classroom"):
        from webapp.classroom.quotas import check_deploy_quota

        check_deploy_quota(user, lab, document)


def deletion_refusal(lab: Lab) -> str | None:
    """Why `lab` may not be deleted now (it may have kernel objects, or a run is active), or None."""
    busy = active_run(lab)
    if busy is not None:
        return (f"this lab is busy ({busy.kind} #{busy.pk} is {busy.status}); wait for it to finish, "
                "then press Destroy before deleting it")
    if LabState.objects.filter(lab=lab, deployed=True).exists():
        return "this lab is deployed; press Destroy in the lab's toolbar first, then delete it"
    return None


def _enqueue(run: Run) -> None:
    from . import parts, tasks

    if run.parts:  # a lab across hosts: each host its part (webapp.runs.parts)
        parts.enqueue(run)
        return

    task = {Run.Kind.DEPLOY: tasks.deploy_lab, Run.Kind.DESTROY: tasks.destroy_lab}.get(run.kind, tasks.lab_action)
    # an action goes where the lab runs (of a lab across hosts, it has parts)
    queue = agent_queue() if run.kind in (Run.Kind.DEPLOY, Run.Kind.DESTROY) else \
        lab_queue(run.lab_id, "actions", node=(run.action or {}).get("node"))
    task.apply_async((run.pk,), task_id=str(run.task_id), queue=queue)


# ------------------------------------------------------------------------------------------------ events


def record_event(lab_pk: int, run_id: int | None, type: str, node: str | None = None,
                 **payload: Any) -> dict:
    """Store an event with the lab's next seq (and the node's state when it is a node.state), then stream it."""
    return record_events(lab_pk, run_id, [(type, node, payload, None)])[0]


#: an event to store: its type, node (or None), payload, and when it happened (None: now)
EventItem = tuple[str, str | None, dict[str, Any], datetime.datetime | None]


def record_events(lab_pk: int, run_id: int | None, items: list[EventItem]) -> list[dict]:
    """Store events (EventItem each, in order) with the lab's next seqs in one transaction, applying
    their node and link states to the lab's state once, then stream them in one message. A deploy's events come
    here in batches (webapp.runs.agent.EventBatcher): the cost of an event was its transaction and its broadcast,
    paid once per batch now (docs/performance.md)."""
    now = timezone.now()
    items = [(t, n, {k: v for k, v in p.items() if v not in (None, "", {})}, ts or now) for t, n, p, ts in items]
    if not items:
        return []
    # only the fields an event changes are read: a deployed lab's state holds its whole document, whose JSON
    # (1500 nodes: about 0.2 MB) decoded twice per event was most of an event's cost (docs/performance.md)
    with transaction.atomic():
        LabState.objects.only("lab_id").get_or_create(lab_id=lab_pk)
        LabState.objects.filter(lab_id=lab_pk).update(last_seq=F("last_seq") + len(items))
        state = LabState.objects.only("last_seq", "nodes", "links").get(lab_id=lab_pk)
        nodes, links = dict(state.nodes), dict(state.links)
        for type, node, payload, _ in items:
            if type == "node.state" and node and payload.get("state"):
                nodes[node] = payload["state"]
            elif type == "link.state" and payload.get("link") and payload.get("state"):
                links.pop(payload["link"], None)
                if payload["state"] == "down":
                    links[payload["link"]] = "down"
        changed = [f for f, old, new in (("nodes", state.nodes, nodes), ("links", state.links, links)) if old != new]
        if changed:
            state.nodes, state.links = nodes, links
            state.save(update_fields=[*changed, "updated"])
        first = state.last_seq - len(items) + 1
        events = RunEvent.objects.bulk_create([
            RunEvent(lab_id=lab_pk, run_id=run_id, seq=first + i, type=type, node=node or "", payload=payload, ts=ts)
            for i, (type, node, payload, ts) in enumerate(items)])
    messages = [event.as_message() for event in events]
    broadcast(lab_pk, messages)
    return messages


#: events sent to the browsers in one channel-layer message at most
BROADCAST_MAX = 250


def node_states(lab_pk: int, run_id: int | None, states: list[tuple[str, str]], message: str | None = None) -> list[dict]:
    """Record a node.state for each (node, state), in order, as one batch (record_events)."""
    return record_events(lab_pk, run_id, [("node.state", node, {"state": st, "message": message}, None)
                                          for node, st in states])


def broadcast(lab_pk: int, messages: list[dict]) -> None:
    """Send to every browser watching the lab, in one message. A channel-layer hiccup never fails the run: the
    events are stored (and a browser that missed them fills the gap from the database)."""
    try:
        send = async_to_sync(get_channel_layer().group_send)
        for i in range(0, len(messages), BROADCAST_MAX):  # a redis message stays small however many are stored
            send(lab_group(lab_pk), {"type": "lab.events", "events": messages[i:i + BROADCAST_MAX]})
    except Exception:
        log.exception("could not stream events %s-%s of lab %s", messages[0].get("seq"), messages[-1].get("seq"),
                      lab_pk)


def set_deployed(lab_pk: int, deployed: bool, document: dict | None = None, version: int | None = None) -> None:
    """Record that the lab may have kernel objects (with the document and version being deployed), or not."""
    defaults = {"deployed": deployed, "deployed_document": document if deployed else None,
                "deployed_version": version if deployed else None}
    if not deployed:  # destroyed: nothing is down any more
        defaults["links"] = {}
    LabState.objects.update_or_create(lab_id=lab_pk, defaults=defaults)


def events_after(lab_pk: int, after: int, limit: int = REPLAY_BATCH) -> list[dict]:
    rows = RunEvent.objects.filter(lab_id=lab_pk, seq__gt=after).order_by("seq")[:limit]
    return [e.as_message() for e in rows]


def snapshot(lab: Lab) -> dict:
    """What a browser needs before it resumes: node states, the last seq, and the active run if any."""
    state = LabState.objects.filter(lab=lab).first()
    run = active_run(lab)
    last = Run.objects.filter(lab=lab).exclude(status__in=Run.ACTIVE).order_by("-pk").first()
    return {
        "type": "snapshot",
        "lab": lab.pk,
        "seq": state.last_seq if state else 0,
        "deployed": bool(state and state.deployed),
        **deployed(lab, bool(state and state.deployed)),
        # what LabState recorded when the deploy started wins (events of old runs are pruned)
        **({"deployed_version": state.deployed_version} if state and state.deployed and state.deployed_version else {}),
        "nodes": dict(state.nodes) if state else {},
        "links": dict(state.links) if state else {},  # links set down on the running lab (link_name -> "down")
        "run": run_summary(run) if run else None,
        "placement": placement(lab) if state and state.deployed else {},
        # a page opened after a failed run still shows why, and on which element
        "last_run": run_summary(last) if last else None,
    }


def placement(lab: Lab) -> dict[str, str]:
    """{node: host} of the lab's last deploy across hosts ({} when it runs on one host)."""
    from .parts import lab_span

    return lab_span(lab.pk).placement


def running_part(document: dict) -> dict:
    """A document without what only the canvas uses (node positions): what a deploy makes run."""
    nodes = document.get("nodes") if isinstance(document.get("nodes"), dict) else {}
    return {**document, "nodes": {name: {k: v for k, v in node.items() if k != "ui"} if isinstance(node, dict) else node
                                  for name, node in nodes.items()}}


def deployed(lab: Lab, is_deployed: bool) -> dict:
    """{deployed_version, deployed_document}: what the last successful deploy ran (its run.finished event says),
    both None when nothing runs."""
    event = None
    if is_deployed:
        # a deploy's, or an action's that changed what runs (a link's conditions)
        event = (RunEvent.objects.filter(lab=lab, type="run.finished",
                                         run__kind__in=[Run.Kind.DEPLOY, Run.Kind.RESET, Run.Kind.ACTION],
                                         run__status=Run.Status.SUCCEEDED, payload__has_key="document")
                 .order_by("-seq").first())
    payload = event.payload if event else {}
    version = payload.get("version")
    return {"deployed_version": version if isinstance(version, int) else None,
            "deployed_document": payload.get("document")}


def with_leased_addresses(observed: dict) -> dict:
    """Give each VM interface the address its router leased it (netops lists the lease under the router only):
    matched by the interface's MAC (the document's, or the one qemu was given). Hosts list theirs already."""
    nodes = observed.get("nodes") or {}
    leases = {le.get("mac", "").lower(): le for n in nodes.values() for le in (n.get("leases") or [])}
    for status in nodes.values():
        kind = status.get("kind")
        # only nodes with interfaces but no namespace of ours (VMs): netops cannot read their addresses
        if not kinds.known(kind) or not kinds.get(kind).interfaces or kinds.get(kind).namespace:
            continue
        macs = (status.get("vm") or {}).get("macs") or {}
        for name, iface in (status.get("interfaces") or {}).items():
            iface["mac"] = iface.get("mac") or macs.get(name)
            lease = leases.get((iface["mac"] or "").lower())
            if lease and lease.get("ip") and lease["ip"] not in iface.setdefault("addresses", []):
                iface["addresses"].append(lease["ip"])
    return observed


def run_summary(run: Run) -> dict:
    return {"id": run.pk, "kind": run.kind, "status": run.status, "error": run.error,
            "error_element": run.error_element, "version": run.lab_version}


# ------------------------------------------------------------------------------------------------ run lifecycle


def claim(run_id: int) -> Run | None:
    """Mark a queued run running; None when it is not queued any more (a redelivered or recovered task)."""
    if not Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).update(
            status=Run.Status.RUNNING, started=timezone.now()):
        return None
    return Run.objects.select_related("lab").get(pk=run_id)


def finish(run: Run, *, error: str = "", element: str = "", version: int | None = None,
           document: dict | None = None) -> None:
    """End a run. A successful deploy's run.finished event carries the document `version` it deployed and that
    document without its canvas positions (what runs), so the editor can tell edits that are not deployed yet."""
    status = Run.Status.FAILED if error else Run.Status.SUCCEEDED
    Run.objects.filter(pk=run.pk).update(status=status, finished=timezone.now(), error=error,
                                         error_element=element)
    if error:
        record_event(run.lab_id, run.pk, "run.failed", kind=run.kind, message=error, element=element)
    else:
        record_event(run.lab_id, run.pk, "run.finished", kind=run.kind, message=f"{run.kind} finished",
                     version=version, document=running_part(document) if document is not None else None)


@dataclass
class Recovered:
    run_id: int
    lab_pk: int


def fail_orphaned_runs(alive_task_ids: set[str]) -> list[Recovered]:
    """Runs left queued/running whose task no worker holds or will run: failed with WORKER_STOPPED."""
    out = []
    from . import parts

    for run in Run.objects.filter(status__in=Run.ACTIVE).exclude(task_id__in=alive_task_ids):
        if run.parts and parts.task_ids(run) & alive_task_ids:
            continue  # a run across hosts whose part some worker still holds
        changed = Run.objects.filter(pk=run.pk, status=run.status).update(
            status=Run.Status.FAILED, finished=timezone.now(), error=WORKER_STOPPED)
        if changed:
            record_event(run.lab_id, run.pk, "run.failed", kind=run.kind, message=WORKER_STOPPED)
            if run.status == Run.Status.RUNNING:
                mark_unfinished_nodes(run.lab_id, run.pk)
            out.append(Recovered(run.pk, run.lab_id))
    return out


def mark_unfinished_nodes(lab_pk: int, run_id: int | None) -> None:
    """Nodes left `starting` by an interrupted run are not known to be up: show them failed."""
    state = LabState.objects.filter(lab_id=lab_pk).first()
    node_states(lab_pk, run_id, [(node, "failed") for node, node_state in sorted((state.nodes if state else {}).items())
                                 if node_state == "starting"], message=WORKER_STOPPED)
