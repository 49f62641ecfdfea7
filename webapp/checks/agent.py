"""The agent's side of check runs: run the checks (netops.labcheck_run) against the deployed lab, stream one event
per check, store the result. Imported only by the worker (webapp.runs.agent dispatches CHECK runs here)."""
from __future__ import annotations

from typing import Any

from netops import labcheck_run, labchecks
from netops.errors import ApplyError, Problem, TopologyError
from netops.events import Event
from netops.topology import parse_document
from webapp.labs.models import Lab
from webapp.runs import services
from webapp.runs.models import LabState, Run

from .models import CheckResult
from .services import redact_outcome

PEER_TIMEOUT = 10.0  # seconds a check part waits for another host's answer


def event_payload(outcome: dict[str, Any], source: str) -> dict[str, Any]:
    """What a check's event carries. Events are stored and replayed to everyone who may view the lab, students
    included: a template's title-only check says its id, title and mark; a hidden one only that a check ran."""
    if source != CheckResult.Source.TEMPLATE:
        return outcome
    return redact_outcome(outcome) or {"hidden": True}


def run_check(run: Run, lab: Lab) -> None:
    """A check run of a lab on one host: every check here, then the result stored."""
    store_result(run, lab, _run(run, lab, None))


def run_checks_part(run: Run, lab: Lab, host: str) -> list[list[Any]]:
    """`host`'s part of a check run of a lab across hosts: the checks that run in its nodes
    (webapp.runs.parts.checks_here), as [[check index, outcome dict]] for the run's end to store."""
    return _run(run, lab, host)


def _run(run: Run, lab: Lab, host: str | None) -> list[list[Any]]:
    state = LabState.objects.filter(lab=lab, deployed=True).first()
    if state is None or not state.deployed_document:
        raise TopologyError([Problem("", "the lab is not deployed: deploy it, then check it")])
    topology = parse_document(state.deployed_document)
    spec = run.document or {}
    checks, problems = labchecks.parse_checks(spec.get("checks"))
    if problems:
        raise TopologyError(problems)
    total = len(checks)
    here: set[str] | None = None
    ask = None
    if host is not None:
        from webapp.runs import parts

        where = parts.lab_span(lab.pk)
        checks = parts.checks_here(where, checks, host)
        here = {n for n, h in where.placement.items() if h == host}
        ask = peer_asker(lab, where.placement)
    source = spec.get("source", CheckResult.Source.DOCUMENT)
    index = {c.id: c.index for c in checks}

    def on_event(event: Event) -> None:
        payload = event_payload(event.data, source)
        message = event.message if "message" in payload else ""
        # the check's place among all the lab's checks (a host runs some of them)
        step = index.get(event.data.get("id"), (event.step or 1) - 1) + 1
        services.record_event(lab.pk, run.pk, event.type, message=message, step=step, total=total,
                              check=payload, host=host)

    outcomes = labcheck_run.run_checks(lab.lab_id, topology, checks, on_event=on_event, here=here, ask=ask)
    return [[check.index, outcome.as_dict()] for check, outcome in zip(checks, outcomes, strict=True)]


def peer_asker(lab: Lab, placement: dict[str, str]) -> labcheck_run.Ask:
    """The `ask` of a check part (netops.labcheck_run): a query about a node on another host goes to that host's
    stream agent (`lab.read`, answered by webapp.agent.service with labcheck_run.read_for_peer), and its answer
    comes back; no answer in PEER_TIMEOUT seconds, or a refusal, is an ApplyError naming the host."""
    from asgiref.sync import async_to_sync

    from webapp.consoles import conf
    from webapp.consoles.services import AgentUnavailable, ask_agent

    def ask(node: str, query: dict[str, Any]) -> Any:
        other = placement.get(node)
        if other is None:
            raise ApplyError(f"{node} is placed on no host", element=f"nodes.{node}")
        try:
            answer = async_to_sync(ask_agent)({"type": "lab.read", "lab": lab.pk, "node": node, **query},
                                              channel=conf.agent_channel(other), timeout=PEER_TIMEOUT)
        except AgentUnavailable as exc:
            raise ApplyError(f"host {other}: {exc}", element=f"nodes.{node}") from exc
        if not answer.get("ok"):
            raise ApplyError(f"host {other}: {answer.get('message') or 'refused'}", element=f"nodes.{node}")
        return answer.get("value")

    return ask


def store_result(run: Run, lab: Lab, outcomes: list[list[Any]]) -> None:
    """Store a check run's result (outcomes as [[check index, outcome dict]], in the checks' order) and say it."""
    source = (run.document or {}).get("source", CheckResult.Source.DOCUMENT)
    result = labchecks.score([labchecks.Outcome(**{k: v for k, v in o.items() if k != "earned"})
                              for _, o in outcomes])
    CheckResult.objects.create(lab=lab, run=run, source=source, earned=result["earned"],
                               possible=result["possible"], percent=result["percent"], outcomes=result["checks"])
    services.record_event(lab.pk, run.pk, "check.finished", earned=result["earned"], possible=result["possible"],
                          percent=result["percent"], passed=result["passed"], failed=result["failed"],
                          message=f"{result['passed']} of {len(outcomes)} checks passed "
                                  f"({result['earned']} of {result['possible']} points)")
