"""Lab checks in the web tier: which checks a lab has, starting a check (or reset) run, what each person may see of
the checks and their results, and a class's scores.

A lab started from a template is graded by the template version's frozen checks (its own copy of the document
has none: a student must neither read the hidden checks in their YAML nor rewrite them to pass); any other lab
by the `checks:` of its own document. Visibility (`details`, `title`, `hidden`, per check) applies to the owners
of labs started from a template; the template's owner and the instructors of the lab's owner see everything.
"""
from __future__ import annotations

import copy
import csv
import io
from typing import Any

from django.apps import apps
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from netops import labchecks
from netops.errors import Problem, TopologyError
from webapp.labs.models import Lab
from webapp.labs.permissions import instructs_owner
from webapp.runs import services as run_services
from webapp.runs.models import LabState, Run

from .models import CheckResult


def _origin(lab: Lab):
    if not apps.is_installed("webapp.classroom"):
        return None
    LabOrigin = apps.get_model("classroom", "LabOrigin")
    return LabOrigin.objects.select_related("template_version__template").filter(lab=lab).first()


def lab_checks(lab: Lab) -> tuple[list[dict[str, Any]], str]:
    """(the raw `checks:` list that grades the lab, its source: "template" or "document")."""
    origin = _origin(lab)
    if origin is not None:
        return list(origin.template_version.document.get("checks") or []), CheckResult.Source.TEMPLATE
    document = lab.document if isinstance(lab.document, dict) else {}
    raw = document.get("checks")
    return (list(raw) if isinstance(raw, list) else []), CheckResult.Source.DOCUMENT


def sees_everything(user, lab: Lab, source: str) -> bool:
    """May `user` see every check's details (and every outcome's message) of `lab`?"""
    if source != CheckResult.Source.TEMPLATE:
        return True
    if instructs_owner(user, lab):
        return True
    origin = _origin(lab)
    return bool(origin and origin.template_version.template.owner_id == getattr(user, "pk", None))


def visible_checks(user, lab: Lab) -> dict[str, Any]:
    """{checks, source, editable, all}: the checks `user` may see of `lab` (hidden ones left out, title-only ones
    without their body)."""
    raw, source = lab_checks(lab)
    everything = sees_everything(user, lab, source)
    return {"checks": raw if everything else labchecks.for_student(raw), "source": source,
            "editable": source == CheckResult.Source.DOCUMENT and lab.owner_id == getattr(user, "pk", None),
            "all": everything, "count": len(raw)}


def redact_outcome(outcome: dict[str, Any]) -> dict[str, Any] | None:
    """What a student sees of one outcome: all of it, its id/title/mark only, or nothing (hidden)."""
    seen = outcome.get("visibility", "details")
    if seen == "details":
        return outcome
    if seen == "title":
        return {k: outcome.get(k) for k in ("id", "title", "passed", "points", "earned", "visibility")}
    return None


def visible_result(user, result: CheckResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    outcomes = result.outcomes or []
    if not sees_everything(user, result.lab, result.source):
        outcomes = [o for o in (redact_outcome(x) for x in outcomes) if o is not None]
    return {"id": result.pk, "run": result.run_id, "created": result.created.isoformat(), "source": result.source,
            "earned": result.earned, "possible": result.possible, "percent": result.percent, "checks": outcomes}


def latest_result(lab: Lab) -> CheckResult | None:
    return CheckResult.objects.filter(lab=lab).select_related("lab").first()


# ------------------------------------------------------------------------------------------------ runs


def _start(lab: Lab, user, kind: str, document: dict[str, Any], version: int | None = None) -> Run:
    """A queued check or reset run. Of a lab across hosts (webapp.runs.parts), a check run has a part on each host
    that runs one of its checks in its nodes; a reset is placed like a deploy and has a part on every host of
    the new placement and of the last."""
    from webapp.runs import parts

    busy = run_services.active_run(lab)
    if busy is not None:
        raise run_services.lab_busy(busy)
    span, run_parts = None, {}
    if kind == Run.Kind.RESET:
        deployed = LabState.objects.filter(lab=lab, deployed=True).exists()
        span, run_parts = parts.plan_deploy(lab.pk, document, deployed=deployed)
    else:
        where = parts.lab_span(lab.pk)
        if where.across:
            checks, _ = labchecks.parse_checks(document.get("checks"))
            run_parts = parts.new_parts(parts.check_hosts(where, checks))
    try:
        with transaction.atomic():
            run = Run.objects.create(lab=lab, kind=kind, started_by=user if user.is_authenticated else None,
                                     document=document, lab_version=version, span=span, parts=run_parts)
    except IntegrityError:
        raise run_services.lab_busy(run_services.active_run(lab)) from None
    transaction.on_commit(lambda: _enqueue(run))
    return run


def _enqueue(run: Run) -> None:
    from webapp.runs import parts

    from . import tasks

    if run.parts:  # a lab across hosts: each host its part
        parts.enqueue(run)
        return
    task = tasks.check_lab if run.kind == Run.Kind.CHECK else tasks.reset_lab
    task.apply_async((run.pk,), task_id=str(run.task_id), queue=run_services.lab_queue(run.lab_id, "checks"))


def start_check(lab: Lab, user) -> Run:
    """A queued run of the lab's checks. TopologyError (400) when it has none or they are malformed, or when the
    lab is not deployed; LabBusyError (409) while another run holds the lab."""
    with transaction.atomic():
        lab = Lab.objects.select_for_update(no_key=True).get(pk=lab.pk)
        raw, source = lab_checks(lab)
        if not raw:
            raise TopologyError([Problem("checks", "this lab has no checks (add some in the Checks panel or "
                                                   "as a top-level checks: list)")])
        _, problems = labchecks.parse_checks(raw)
        if problems:
            raise TopologyError(problems)
        if not LabState.objects.filter(lab=lab, deployed=True).exists():
            raise TopologyError([Problem("", "the lab is not deployed: deploy it, then check it")])
        return _start(lab, user, Run.Kind.CHECK, {"checks": raw, "source": source})


def reset_document(lab: Lab) -> tuple[dict[str, Any], int]:
    """The document a reset deploys: the template version the lab was started from, without its checks."""
    origin = _origin(lab)
    if origin is None:
        raise TopologyError([Problem("", "this lab was not started from a template: there is nothing to reset to")])
    version = origin.template_version
    document = student_document(version.document)
    document["name"] = lab.name or document.get("name", "")
    return document, version.number


def student_document(template_document: dict[str, Any]) -> dict[str, Any]:
    """A template version's document as a student's lab gets it: without the checks (they grade it from the
    template, and some may be hidden from the student)."""
    return {k: copy.deepcopy(v) for k, v in template_document.items() if k != "checks"}


def start_reset(lab: Lab, user) -> Run:
    """Destroy the lab and deploy the template version it was started from again (the lab's document is replaced,
    its version grows). TopologyError (400) without a template; LabBusyError (409) while a run holds the lab."""
    with transaction.atomic():
        lab = Lab.objects.select_for_update(no_key=True).get(pk=lab.pk)
        document, _ = reset_document(lab)
        busy = run_services.active_run(lab)
        if busy is not None:
            raise run_services.lab_busy(busy)
        lab.document = document
        lab.version += 1
        lab.save(update_fields=["document", "version", "updated"])
        return _start(lab, user, Run.Kind.RESET, document, lab.version)


# ------------------------------------------------------------------------------------------------ classes


def class_scores(classroom) -> dict[str, Any]:
    """Every member's labs with their latest score and per-check marks, and the checks (columns) of the class's
    templates: {checks: [{id, title, points}], rows: [{lab, lab_id, owner, template, running, run, result}]}."""
    from webapp.classroom.services import class_labs

    rows, columns = [], {}
    for row in class_labs(classroom):
        raw, source = lab_checks(row.lab)
        for item in raw:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                columns.setdefault(item["id"], {"id": item["id"], "title": item.get("title", ""),
                                                "points": item.get("points", 1)})
        result = latest_result(row.lab)
        marks = {o["id"]: o["passed"] for o in (result.outcomes if result else [])}
        rows.append({"lab": row.lab.pk, "lab_id": row.lab.lab_id, "name": row.lab.name,
                     "owner": row.lab.owner.get_username(), "template": row.template, "running": row.running,
                     "source": source, "run": row.run, "checks": len(raw),
                     "result": None if result is None else {
                         "earned": result.earned, "possible": result.possible, "percent": result.percent,
                         "created": result.created.isoformat(), "marks": marks,
                         "messages": {o["id"]: o.get("message", "") for o in result.outcomes}}})
    return {"checks": list(columns.values()), "rows": rows}


def class_labs_to_check(classroom) -> QuerySet[Lab]:
    return Lab.objects.filter(owner__classes=classroom, deploy_state__deployed=True).distinct()


def check_all(classroom, user) -> dict[str, list[dict[str, Any]]]:
    """Start a check run on every deployed lab of the class's members that has checks; the agents run them in
    parallel as far as their worker concurrency goes. {started: [...], skipped: [{lab, reason}]}."""
    started, skipped = [], []
    for lab in class_labs_to_check(classroom).select_related("owner"):
        try:
            run = start_check(lab, user)
        except (TopologyError, run_services.LabBusyError) as exc:
            skipped.append({"lab": lab.pk, "owner": lab.owner.get_username(), "reason": str(exc)})
            continue
        started.append({"lab": lab.pk, "owner": lab.owner.get_username(), "run": run.pk})
    return {"started": started, "skipped": skipped}


def scores_csv(classroom) -> str:
    """The class's scores as CSV: student, lab, template, earned, possible, percent, checked at, then one column
    per check (1 passed, 0 failed, empty not run)."""
    data = class_scores(classroom)
    out = io.StringIO()
    writer = csv.writer(out)
    ids = [c["id"] for c in data["checks"]]
    writer.writerow(["student", "lab", "lab_id", "template", "earned", "possible", "percent", "checked", *ids])
    for row in data["rows"]:
        result = row["result"] or {}
        marks = result.get("marks", {})
        cells = ["" if i not in marks else int(bool(marks[i])) for i in ids]
        writer.writerow([_csv_text(row["owner"]), _csv_text(row["name"]), row["lab_id"], _csv_text(row["template"]),
                         result.get("earned", ""), result.get("possible", ""), result.get("percent", ""),
                         result.get("created", ""), *cells])
    return out.getvalue()


def _csv_text(value: str) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection: =, +, -, @ at the start)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
