"""The agent's side of runs: calls netops.engine and turns its events into stored, streamed RunEvents.

Imported only inside Celery tasks (the worker runs as root); the web tier never imports this module.
"""
from __future__ import annotations

import logging
import threading
import time

from django import db
from django.utils import timezone

from netops import actions, engine, frr_status, runtime
from netops.errors import ApplyError, LabBusyError, Problem, TopologyError
from netops.events import Event
from netops.topology import parse_document
from netops.wiring import link_key
from webapp.labs.models import Lab

from . import parts, services
from .models import LabState, Run

log = logging.getLogger(__name__)

# Deployed-lab states that mean "this node is broken" when the health check observes them.
BROKEN = {"absent": "failed", "stopped": "failed"}
# A deploy or destroy that fails with a transient ApplyError (`permanent` False: a DHCP lease that did not come in
# time, a namespace being freed, a busy device) is run again this many times, after RETRY_DELAY_S * attempt; both
# are idempotent, so the next attempt finishes what the last one started.
TRANSIENT_RETRIES = 2
RETRY_DELAY_S = 1.0


class EventBatcher:
    """on_event for netops: every Event becomes a stored RunEvent and part of a group_send (saying which host sent
    it, in a run across hosts), recorded in batches by a thread of its own while the engine goes on.

    Why: a deploy emits about five events a node (7500 for a 1500-node lab), and an event's transaction and
    broadcast cost about 9 ms, so a big lab's deploy through the API was its events, one after another, however many
    hosts built it (docs/performance.md). Now the engine only appends; the thread takes what has gathered (waiting
    at most FLUSH_S after the first, at most BATCH_MAX at once) and stores it with one transaction and one broadcast
    (services.record_events). Events keep their order and the time they happened; a browser sees them at most
    FLUSH_S later. No library batches Django writes from a producer thread; this is a queue and a condition.

    Use it as a context manager around the engine's call: leaving it stores what is left before anything else of
    the run is recorded, so the seqs follow what happened. An error storing events (the database gone) is raised
    there, or at the next event."""

    FLUSH_S = 0.05
    BATCH_MAX = 250

    def __init__(self, run: Run, host: str | None = None) -> None:
        self.lab_pk, self.run_pk, self.host = run.lab_id, run.pk, host
        self.pending: list[services.EventItem] = []
        self.busy = False  # a batch is being stored
        self.closed = False
        self.error: BaseException | None = None
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._loop, name=f"events-run-{run.pk}", daemon=True)
        self.thread.start()

    def __call__(self, event: Event) -> None:
        data = event.data or {}
        link = services.link_name(data["endpoints"]) if data.get("endpoints") else None
        payload = {"state": event.state, "message": event.message, "step": event.step, "total": event.total,
                   "element": data.get("path"), "link": link, "host": self.host}
        with self.cond:
            self._raise()
            self.pending.append((event.type, event.node, payload, timezone.now()))
            if len(self.pending) == 1 or len(self.pending) >= self.BATCH_MAX:
                self.cond.notify_all()

    def flush(self) -> None:
        """Wait until every event so far is stored and streamed."""
        with self.cond:
            self.cond.notify_all()
            while (self.pending or self.busy) and self.error is None and self.thread.is_alive():
                self.cond.wait(1)
            self._raise()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.thread.join()
        with self.cond:
            self._raise()

    def __enter__(self) -> EventBatcher:
        return self

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if kind is None:
            self.close()
            return
        try:  # the engine's error is the run's; one storing its events is only logged then
            self.close()
        except Exception as error:  # noqa: BLE001 - whatever it was, the engine's error goes on
            log.warning("run %s: its last events were not stored either: %s", self.run_pk, error)

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def _loop(self) -> None:
        try:
            while True:
                with self.cond:
                    while not self.pending and not self.closed:
                        self.cond.wait()
                    if not self.pending:
                        return
                    if not self.closed and len(self.pending) < self.BATCH_MAX:  # let a batch gather
                        self.cond.wait(self.FLUSH_S)
                    batch, self.pending = self.pending[:self.BATCH_MAX], self.pending[self.BATCH_MAX:]
                    self.busy = True
                try:
                    services.record_events(self.lab_pk, self.run_pk, batch)
                except BaseException as exc:  # handed to the engine's thread
                    log.exception("could not store %d events of run %s", len(batch), self.run_pk)
                    with self.cond:
                        self.error = exc
                finally:
                    with self.cond:
                        self.busy = False
                        self.cond.notify_all()
        finally:
            db.connection.close()


def _sink(run: Run, host: str | None = None) -> EventBatcher:
    """The on_event of a run's engine call (a seam: tests/chaos/kill_agent.py wraps it)."""
    return EventBatcher(run, host)


def execute(run_id: int) -> str:
    """Run a queued deploy or destroy to its end. Returns the final status (or 'skipped')."""
    run = services.claim(run_id)
    if run is None:
        log.info("run %s is not queued any more; nothing to do", run_id)
        return "skipped"
    lab: Lab = run.lab
    services.record_event(lab.pk, run.pk, "run.started", kind=run.kind, message=f"{run.kind} started",
                          version=run.lab_version)
    changed: dict = {}

    def operation() -> None:
        nonlocal changed
        if run.kind == Run.Kind.ACTION:  # an action is not retried: it is the user's, and it says what failed
            changed = _action(run, lab)
        else:
            _with_retries(run, lab, _operation(run.kind))

    error, element = _attempt(operation, f"run {run.pk}")
    if error:
        services.finish(run, error=error, element=element)
    else:  # a deploy says which version of the document now runs (the editor tells newer edits apart)
        if run.kind in (Run.Kind.DEPLOY, Run.Kind.RESET):
            services.finish(run, version=run.lab_version, document=run.document)  # what ran, not the lab now
        elif changed.get("document") is not None:  # a link's conditions changed what runs
            services.finish(run, version=run.lab_version, document=changed["document"])
        else:
            services.finish(run)
    if run.kind in (Run.Kind.DEPLOY, Run.Kind.RESET, Run.Kind.ACTION):
        services.mark_unfinished_nodes(lab.pk, run.pk)
    return Run.objects.values_list("status", flat=True).get(pk=run.pk)


def execute_part(run_id: int, host: str) -> str:
    """Run `host`'s part of a run across hosts (webapp.runs.parts): a deploy, destroy or reset of its share, an
    action on its side of what the action concerns, or the checks that run in its nodes. The last part to end ends
    the run. Returns the part's final status (or 'skipped')."""
    claimed = parts.claim(run_id, host)
    if claimed is None:
        log.info("part %s of run %s is not queued any more; nothing to do", host, run_id)
        return "skipped"
    run, first = claimed
    lab: Lab = run.lab
    if first:
        services.record_event(lab.pk, run.pk, "run.started", kind=run.kind, message=f"{run.kind} started",
                              version=run.lab_version, hosts=sorted(run.parts),
                              placement=(run.span or {}).get("placement"))
    services.record_event(lab.pk, run.pk, "run.part", host=host, state="running",
                          message=f"{run.kind} started on host {host}")
    found: dict = {}  # what the part hands the run's end: a new running document, check outcomes

    def operation() -> None:
        if run.kind == Run.Kind.ACTION:  # not retried, as on one host
            found.update(_action(run, lab, host))
        elif run.kind == Run.Kind.CHECK:
            from webapp.checks.agent import run_checks_part

            found["outcomes"] = run_checks_part(run, lab, host)
        else:
            span = _span(run, host)
            steps = {Run.Kind.DEPLOY: (_deploy,), Run.Kind.DESTROY: (_destroy,),
                     Run.Kind.RESET: (_destroy, _deploy)}[run.kind]

            def step(r: Run, lb: Lab) -> None:
                for one in steps:
                    one(r, lb, span=span, host=host)

            _with_retries(run, lab, step)

    error, element = _attempt(operation, f"part {host} of run {run.pk}")
    services.record_event(lab.pk, run.pk, "run.part", host=host, state="failed" if error else "succeeded",
                          message=error or f"{run.kind} finished on host {host}", element=element)
    outcome = parts.finish(run, host, error=error, element=element,
                           outcomes=found.get("outcomes") if run.kind == Run.Kind.CHECK else None)
    if outcome is not None:  # the last part: end the run
        _end_parts(run, lab, outcome, found)
    return "failed" if error else "succeeded"


def _end_parts(run: Run, lab: Lab, outcome: dict, found: dict) -> None:
    """End a run across hosts once its last part ended (`outcome`: parts.finish's; `found`: the last part's)."""
    if outcome["error"]:
        services.finish(run, error=outcome["error"], element=outcome["element"])
    elif run.kind in (Run.Kind.DEPLOY, Run.Kind.RESET):
        services.finish(run, version=run.lab_version, document=run.document)
    elif run.kind == Run.Kind.ACTION and found.get("document") is not None:  # every part has the same one
        services.finish(run, version=run.lab_version, document=found["document"])
    elif run.kind == Run.Kind.CHECK:
        from webapp.checks.agent import store_result

        store_result(run, lab, parts.outcomes(run))
        services.finish(run)
    else:
        if run.kind == Run.Kind.DESTROY:
            services.set_deployed(lab.pk, False)
        services.finish(run)
    if run.kind in (Run.Kind.DEPLOY, Run.Kind.RESET, Run.Kind.ACTION):
        services.mark_unfinished_nodes(lab.pk, run.pk)


def _attempt(operation, what: str) -> tuple[str, str]:
    """Run `operation`; ("", "") when it succeeds, else (the error for the user, the element at fault)."""
    try:
        operation()
    except TopologyError as exc:
        first = exc.problems[0] if exc.problems else None
        return str(exc), first.path if first else ""
    except ApplyError as exc:
        return exc.message, exc.element
    except LabBusyError as exc:
        return str(exc), ""
    except Exception as exc:
        log.exception("%s failed", what)
        return f"{type(exc).__name__}: {exc}", ""
    return "", ""


def _span(run: Run, host: str):
    """This host's netops.span.Span of a run across hosts."""
    from netops.span import Span

    info = dict(run.span or {})
    info["vnis"] = {k: int(v) for k, v in (info.get("vnis") or {}).items()}
    return Span.from_json(info, host)  # the underlay namespace: the agent's TOPOLAB_UNDERLAY_NETNS (unset: root)


def _operation(kind: str):
    """What a run of `kind` does (check and reset runs: webapp.checks)."""
    if kind == Run.Kind.CHECK:
        from webapp.checks.agent import run_check

        return run_check
    if kind == Run.Kind.RESET:
        return _reset
    return _deploy if kind == Run.Kind.DEPLOY else _destroy


def _reset(run: Run, lab: Lab) -> None:
    """Reset to template: destroy, then deploy the stored document (the template version, webapp.checks)."""
    _destroy(run, lab)
    _deploy(run, lab)


def _with_retries(run: Run, lab: Lab, operation) -> None:
    """Run `operation(run, lab)`; again (up to TRANSIENT_RETRIES times) when it fails with a transient ApplyError."""
    for attempt in range(1, TRANSIENT_RETRIES + 2):
        try:
            operation(run, lab)
            return
        except ApplyError as exc:
            if exc.permanent or attempt > TRANSIENT_RETRIES:
                raise
            services.record_event(lab.pk, run.pk, "run.warning", element=exc.element,
                                  message=f"{exc}; trying again ({attempt} of {TRANSIENT_RETRIES})")
            time.sleep(RETRY_DELAY_S * attempt)


def _deploy(run: Run, lab: Lab, *, span=None, host: str | None = None) -> None:
    """Deploy the document stored on the run when it was checked (never the lab's current one); in a run across
    hosts, `host`'s part of it (`span`: netops.span.Span)."""
    if run.document is None:
        raise TopologyError([Problem("", "this run has no stored document (queued by an older version); "
                                         "press Deploy again")])
    topology = parse_document(run.document)
    # from now on kernel objects may exist; quotas count this document, the editor shows its version
    services.set_deployed(lab.pk, True, run.document, run.lab_version)
    with _sink(run, host if span is not None else None) as sink:
        if span is None:
            engine.up(topology, lab=lab.lab_id, on_event=sink)
        else:
            engine.up(topology, lab=lab.lab_id, on_event=sink, span=span)
    # Nodes a re-deploy did not touch are still running (but those the user stopped); say so, so every node
    # ends with a state. In a run across hosts, each host speaks for its own nodes.
    state = LabState.objects.get(lab=lab)
    asked = runtime.read(lab.lab_id) if span is None else runtime.read(lab.lab_id, span=span)
    mine = set(topology.nodes) if span is None else {n for n in topology.nodes if span.placement.get(n) == host}
    stopped = asked.stopped
    down = {services.link_name([str(lk.a), str(lk.b)]): "down" for lk in topology.links
            if link_key(lk) in asked.links_down}  # links the deploy removed are no longer down
    if span is None:
        LabState.objects.filter(lab=lab).update(links=down)
    wanted = [(node, "stopped" if node in stopped else "running") for node in topology.nodes if node in mine]
    changes = [(node, st) for node, st in wanted if state.nodes.get(node) != st]
    if span is None or host == min(span.underlays or [host]):  # one host speaks for nodes no longer there
        # removed from the document by this deploy
        changes += [(node, "absent") for node in sorted(set(state.nodes) - set(topology.nodes))]
    services.node_states(lab.pk, run.pk, changes)


def _action(run: Run, lab: Lab, host: str | None = None) -> dict:
    """A node or link action (netops.actions) on what runs (in a run across hosts, on `host`'s part of it); a new
    running document (conditions) is recorded."""
    with _sink(run, host) as sink:
        result = actions.run(lab.lab_id, run.action or {}, on_event=sink)
    if result.get("document") is not None:
        state = LabState.objects.get(lab=lab)
        services.set_deployed(lab.pk, True, result["document"], state.deployed_version)
    return result


def _destroy(run: Run, lab: Lab, *, span=None, host: str | None = None) -> None:
    """Destroy the lab; in a run across hosts, `host`'s part of it (the last part marks the lab not deployed)."""
    with _sink(run, host if span is not None else None) as sink:
        if span is None:
            engine.down(lab.lab_id, on_event=sink)
        else:
            engine.down(lab.lab_id, on_event=sink, span=span)
    state = LabState.objects.filter(lab=lab).first()
    deployed = (state.deployed_document if state else None) or {}
    names = set(state.nodes if state else {}) | set((lab.document or {}).get("nodes") or {}) \
        | set(deployed.get("nodes") or {})
    if span is not None:  # each host speaks for its nodes; the first host also for those placed nowhere
        lowest = host == min(run.parts or [host])
        names = {n for n in names if span.placement.get(n) == host or (lowest and n not in span.placement)}
    services.node_states(lab.pk, run.pk, [(node, "absent") for node in sorted(names)
                                          if not state or state.nodes.get(node) != "absent"])
    if span is None:
        services.set_deployed(lab.pk, False)


def lab_status(lab_pk: int) -> dict:
    """netops' view of a lab: per-node state, interfaces, leases, drift (compared with what was deployed)."""
    lab = Lab.objects.get(pk=lab_pk)
    return engine.status(lab.lab_id).as_dict()


def router_view(lab_pk: int, node: str) -> dict:
    """A running router's routing table and neighbors (netops.frr_status.router_view), or the refusal:
    {"view": ...} | {"code": 400 | 503, "errors": [{path, message}]}."""
    lab = Lab.objects.get(pk=lab_pk)
    try:
        return {"view": frr_status.router_view(lab.lab_id, node)}
    except TopologyError as exc:
        return {"code": 400, "errors": [p.as_dict() for p in exc.problems]}
    except ApplyError as exc:
        return {"code": 503, "errors": [{"path": exc.element or f"nodes.{node}", "message": exc.message}]}


def check_lab(lab: Lab, *, placed_only: bool = False) -> list[dict]:
    """Compare what the kernel holds with the last known node states; push node.state for every change. Of a lab
    across hosts, this host checks the nodes it runs (and a lab it runs nothing of, not at all). `placed_only`:
    leave alone a lab that no deploy placed (it runs on whichever host took its deploy, maybe another)."""
    from django.conf import settings

    here, mine = parts.share_here(lab.pk, settings.TOPOLAB_HOST)
    if not here or (placed_only and mine is None):
        return []
    observed = engine.status(lab.lab_id).as_dict()
    if mine is not None:
        observed["nodes"] = {n: v for n, v in (observed.get("nodes") or {}).items() if n in mine}
    state = LabState.objects.get(lab=lab)
    drift = observed.get("drift", [])
    asked = set(observed.get("stopped") or ())
    changes: list[services.EventItem] = []
    for node, info in sorted(observed.get("nodes", {}).items()):
        # a node the user stopped is stopped, not broken
        now = info["state"] if node in asked else BROKEN.get(info["state"], info["state"])
        before = state.nodes.get(node)
        if before is None or before == now or before == "starting":
            continue
        reasons = [d for d in drift if d.startswith(f"nodes.{node}:") or d.startswith(f"nodes.{node}.")]
        changes.append(("node.state", node, {"state": now, "message": "; ".join(reasons) or f"observed {info['state']}"},
                        None))
    return services.record_events(lab.pk, None, changes)


def check_deployed_labs(*, placed_only: bool = False) -> int:
    """The periodic health check on this host: orphans destroyed and vanished labs marked (webapp.runs.health),
    then every deployed lab without an active run compared with the kernel (of a lab across hosts, the nodes this
    host runs). The host that takes the periodic task first asks every other host that is up to check its own
    share (`ask_other_hosts`); those run this with `placed_only`. Returns the events sent here."""
    from . import health

    if not placed_only:
        try:
            ask_other_hosts()
        except Exception:  # the broker: this host's own check still runs
            log.exception("health check: could not ask the other hosts to check their share")
    count = 0
    try:
        swept = health.sweep(placed_only=placed_only)
        count += len(swept.vanished)
    except Exception:
        log.exception("health check: the sweep for orphaned and vanished labs failed")
    labs = Lab.objects.filter(deploy_state__deployed=True).exclude(runs__status__in=Run.ACTIVE)
    for lab in labs:
        try:
            count += len(check_lab(lab, placed_only=placed_only))
        except Exception:
            log.exception("health check of lab %s failed", lab.pk)
    return count


def ask_other_hosts() -> list[str]:
    """Send the health check of its own share to every other lab host that is up, on its queue `agent.<host>`
    (a check not started within the health interval is dropped: only the latest state matters). Returns them."""
    from django.conf import settings

    from webapp.hosts.models import Host

    from . import tasks

    expires = float(getattr(settings, "TOPOLAB_HEALTH_INTERVAL", 30)) * 0.9
    asked = []
    for host in Host.objects.exclude(name=settings.TOPOLAB_HOST):
        if host.up:
            tasks.check_host_labs.apply_async(queue=parts.host_queue(host.name), expires=expires)
            asked.append(host.name)
    return asked


def prune() -> dict:
    """The periodic clean-up: old run events, and capture files past their retention or without a lab."""
    from . import health

    result = {"run_events": health.prune_run_events()}
    from django.apps import apps

    if apps.is_installed("webapp.consoles"):
        from webapp.consoles import retention

        result["captures"] = retention.prune_captures()
    return result


def reconcile(host: str) -> list[str]:
    """At worker start: finish this host's part of destroys across hosts that failed because it was down (its
    agent stopped answering), so a host that missed a destroy does not keep the lab's namespaces, tunnels and
    processes. Only a lab whose latest run is that destroy counts (a later deploy owns what runs now). When every
    other host did its part, the destroy is finished after all: the run succeeds and the lab is not deployed.
    Returns the lab ids cleaned."""
    cleaned = []
    for run in Run.objects.filter(kind=Run.Kind.DESTROY, status=Run.Status.FAILED).exclude(parts={}) \
            .select_related("lab"):
        if (run.parts.get(host) or {}).get("status") != parts.PART_FAILED:
            continue
        if Run.objects.filter(lab_id=run.lab_id).order_by("-pk").values_list("pk", flat=True).first() != run.pk:
            continue
        lab = run.lab
        try:
            with _sink(run, host) as sink:
                engine.down(lab.lab_id, on_event=sink, span=_span(run, host))
        except Exception:
            log.exception("host %s could not remove its part of lab %s after it came back", host, lab.lab_id)
            continue
        cleaned.append(lab.lab_id)
        parts.finish(run, host)
        services.record_event(lab.pk, run.pk, "run.part", host=host, state="succeeded",
                              message=f"host {host} removed its part of the lab when its agent came back")
        fresh = Run.objects.get(pk=run.pk)
        if all(p.get("status") == parts.PART_SUCCEEDED for p in fresh.parts.values()):
            Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED, error="", error_element="")
            services.set_deployed(lab.pk, False)
            services.record_event(lab.pk, run.pk, "run.finished", kind=run.kind,
                                  message=f"destroy finished: host {host} removed its part when it came back")
    return cleaned
