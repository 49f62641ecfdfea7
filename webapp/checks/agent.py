"""The agent's side of check runs: run the checks (netops.labcheck_run) against the deployed lab, stream one event
per check, store the result. Imported only by the worker (webapp.runs.agent dispatches CHECK runs here)."""
from __future__ import annotations

from typing import Any

from netops import labcheck_run, labchecks
from netops.errors import Problem, TopologyError
from netops.events import Event
from netops.topology import parse_document
from webapp.labs.models import Lab
from webapp.runs import services
from webapp.runs.models import LabState, Run

from .models import CheckResult
from .services import redact_outcome


def event_payload(outcome: dict[str, Any], source: str) -> dict[str, Any]:
    """What a check's event carries. Events are stored and replayed to everyone who may view the lab, students
    included: a template's title-only check says its id, title and mark; a hidden one only that a check ran."""
    if source != CheckResult.Source.TEMPLATE:
        return outcome
    return redact_outcome(outcome) or {"hidden": True}


def run_check(run: Run, lab: Lab) -> None:
    state = LabState.objects.filter(lab=lab, deployed=True).first()
    if state is None or not state.deployed_document:
        raise TopologyError([Problem("", "the lab is not deployed: deploy it, then check it")])
    topology = parse_document(state.deployed_document)
    spec = run.document or {}
    checks, problems = labchecks.parse_checks(spec.get("checks"))
    if problems:
        raise TopologyError(problems)
    source = spec.get("source", CheckResult.Source.DOCUMENT)

    def on_event(event: Event) -> None:
        payload = event_payload(event.data, source)
        message = event.message if "message" in payload else ""
        services.record_event(lab.pk, run.pk, event.type, message=message, step=event.step, total=event.total,
                              check=payload)

    outcomes = labcheck_run.run_checks(lab.lab_id, topology, checks, on_event=on_event)
    result = labchecks.score(outcomes)
    CheckResult.objects.create(lab=lab, run=run, source=source, earned=result["earned"],
                               possible=result["possible"], percent=result["percent"], outcomes=result["checks"])
    services.record_event(lab.pk, run.pk, "check.finished", earned=result["earned"], possible=result["possible"],
                          percent=result["percent"], passed=result["passed"], failed=result["failed"],
                          message=f"{result['passed']} of {len(outcomes)} checks passed "
                                  f"({result['earned']} of {result['possible']} points)")
