"""Quotas: what a deploy would add to the running labs of its owner and of the owner's classes, checked first.

"Running" means the runs app knows the lab may have kernel objects (deployed, not yet destroyed) or has a
deploy queued or running. Deploying a lab that already runs counts it once, with its new document.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from rest_framework import status

from netops import kinds
from webapp.core.errors import Refusal
from webapp.labs import services as lab_services
from webapp.labs.models import Lab

from .conf import quota_default
from .models import Classroom, Quota

DEFAULT_VM_MEMORY = 256  # MiB, when neither the node nor its image names one

#: (Quota field, settings suffix, words in the message)
RESOURCES = (
    ("running_labs", "RUNNING_LABS", "running labs"),
    ("nodes", "NODES", "nodes"),
    ("vms", "VMS", "VMs"),
    ("vm_memory", "VM_MEMORY", "VM memory (MiB)"),
)


class QuotaExceeded(Refusal):
    """A deploy would exceed a quota. The API answers 403 with the message and the labs using the quota:
    {"errors": [{"path": "", "message"}], "detail": message, "labs": [{id, name, owner, url}]}; the message names
    the quota and those labs, e.g. 'quota exceeded: running labs 2 of 2 for user alice; in use by lab1 (/labs/3/),
    lab2 (/labs/4/): destroy one to free it'."""

    default_code = "quota_exceeded"

    def __init__(self, message: str, labs: list[dict] | None = None):
        self.message = message
        self.labs = list(labs or [])
        super().__init__(message, code=status.HTTP_403_FORBIDDEN, labs=self.labs)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Usage:
    running_labs: int = 0
    nodes: int = 0
    vms: int = 0
    vm_memory: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f) + getattr(other, f) for f, _, _ in RESOURCES))


def lab_usage(document: dict) -> Usage:
    """What one running lab with this document uses."""
    nodes = document.get("nodes") if isinstance(document, dict) else None
    nodes = nodes if isinstance(nodes, dict) else {}
    memory_of_image = {i.get("name"): i.get("memory") for i in lab_services.list_images()}
    cost: dict[str, int] = {"running_labs": 1, "nodes": len(nodes)}
    for node in nodes.values():  # each kind says what a node of it costs (netops.kinds: a VM its memory)
        if isinstance(node, dict) and kinds.known(node.get("kind")):
            for resource, amount in kinds.get(node["kind"]).cost(node, memory_of_image, DEFAULT_VM_MEMORY).items():
                cost[resource] = cost.get(resource, 0) + amount
    return Usage(**cost)


def running_labs() -> QuerySet[Lab]:
    """Labs that may have kernel objects now or are about to."""
    return Lab.objects.filter(
        Q(deploy_state__deployed=True) | Q(runs__kind="deploy", runs__status__in=["queued", "running"])
    ).distinct()


def counted_documents(labs: QuerySet[Lab]) -> list[tuple[Lab, dict]]:
    """Each running lab with the document that counts for it: the one its active deploy is applying, else the
    one its last deploy applied (never the lab's current, perhaps undeployed, document; that is only a fallback
    for labs deployed before runs stored their document)."""
    if not apps.is_installed("webapp.runs"):
        return [(lab, lab.document) for lab in labs]
    Run = apps.get_model("runs", "Run")
    active = dict(Run.objects.filter(lab__in=labs, kind="deploy", status__in=["queued", "running"])
                  .exclude(document=None).values_list("lab_id", "document"))
    out = []
    for lab in labs.select_related("deploy_state").order_by("pk"):
        state = getattr(lab, "deploy_state", None)
        document = active.get(lab.pk)
        if document is None and state is not None and state.deployed:
            document = state.deployed_document
        out.append((lab, document if document is not None else lab.document))
    return out


def usage_of(counted: list[tuple[Lab, dict]]) -> Usage:
    total = Usage()
    for _, document in counted:
        total = total + lab_usage(document)
    return total


def limits_for(quota: Quota | None, scope: str) -> dict[str, int]:
    """Each resource's limit for one user or class (scope USER or CLASS); 0 means no limit."""
    limits = {}
    for field, suffix, _ in RESOURCES:
        value = getattr(quota, field) if quota is not None else None
        limits[field] = value if value is not None else quota_default(f"{scope}_{suffix}")
    return limits


def lab_link(lab: Lab) -> dict:
    return {"id": lab.pk, "name": lab.name, "owner": lab.owner.get_username(), "url": f"/labs/{lab.pk}/"}


def _check(scope_words: str, limits: dict[str, int], counted: list[tuple[Lab, dict]], this: Usage) -> None:
    before = usage_of(counted)
    after = before + this
    for field, _, words in RESOURCES:
        limit, used, wanted = limits[field], getattr(before, field), getattr(after, field)
        if limit and wanted > limit and wanted > used:
            shown = used if field == "running_labs" else wanted
            extra = "" if field == "running_labs" else f" with this lab (now {used})"
            users = [lab for lab, document in counted if getattr(lab_usage(document), field)]
            names = ", ".join(f"{lab.name} (/labs/{lab.pk}/)" for lab in users)
            message = f"quota exceeded: {words} {shown} of {limit} for {scope_words}{extra}"
            if names:
                message += f"; in use by {names}: destroy one to free it"
            raise QuotaExceeded(message, [lab_link(lab) for lab in users])


def check_deploy_quota(user, lab: Lab, document: dict | None = None) -> None:
    """Raise QuotaExceeded when deploying `document` (default: the lab's) would take the lab's owner or one of the
    owner's classes over quota. The message names the labs that use the quota, and links to them.

    Counts the documents deployed (or being deployed) in the owner's other labs plus this one. Call it inside the
    transaction that creates the run: the owner's and classes' rows are locked (select_for_update on PostgreSQL;
    SQLite runs one write transaction at a time), so two deploys cannot both take the last slot: the second one
    counts after the first committed (READ COMMITTED reads anew at each statement).

    Quotas belong to the lab's owner (an instructor deploying a student's lab spends the student's quota).
    `user` is who asks; it is part of the contract for future per-requester rules. The operator's defaults are
    for students and instructors: a staff account (the operators themselves) is limited only by a Quota row made
    for it, and by its classes if it is a member of one.
    """
    owner = get_user_model().objects.select_for_update(no_key=True).get(pk=lab.owner_id)
    # of=self: only the classes' rows (not the membership rows, nor the outer-joined quota); in pk order, so two
    # owners in the same classes lock them in the same order and cannot deadlock
    classes = list(Classroom.objects.select_for_update(no_key=True, of=("self",)).filter(members=owner)
                   .select_related("quota").order_by("pk"))
    running = running_labs().exclude(pk=lab.pk).select_related("owner")
    this = lab_usage(lab.document if document is None else document)

    quota = Quota.objects.filter(user=owner).first()
    if quota is not None or not owner.is_staff:
        mine = counted_documents(running.filter(owner=owner))
        _check(f"user {owner.get_username()}", limits_for(quota, "USER"), mine, this)

    for classroom in classes:
        theirs = counted_documents(running.filter(owner__classes=classroom))
        quota = getattr(classroom, "quota", None)
        _check(f"class {classroom.name}", limits_for(quota, "CLASS"), theirs, this)
