"""Quotas: what a deploy would add to the running labs of its owner and of the owner's classes, checked first.

"Running" means the runs app knows the lab may have kernel objects (deployed, not yet destroyed) or has a
deploy queued or running. Deploying a lab that already runs counts it once, with its new document.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet
from rest_framework.exceptions import PermissionDenied

from netops import kinds
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


class QuotaExceeded(PermissionDenied):
    """A deploy would exceed a quota; the message names the quota, e.g.
    'quota exceeded: running labs 2 of 2 for user alice'."""

    default_code = "quota_exceeded"


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


def usage_of(labs: QuerySet[Lab]) -> Usage:
    total = Usage()
    for document in labs.values_list("document", flat=True):
        total = total + lab_usage(document)
    return total


def limits_for(quota: Quota | None, scope: str) -> dict[str, int]:
    """Each resource's limit for one user or class (scope USER or CLASS); 0 means no limit."""
    limits = {}
    for field, suffix, _ in RESOURCES:
        value = getattr(quota, field) if quota is not None else None
        limits[field] = value if value is not None else quota_default(f"{scope}_{suffix}")
    return limits


def _check(scope_words: str, limits: dict[str, int], before: Usage, after: Usage) -> None:
    for field, _, words in RESOURCES:
        limit, used, wanted = limits[field], getattr(before, field), getattr(after, field)
        if limit and wanted > limit and wanted > used:
            shown = used if field == "running_labs" else wanted
            extra = "" if field == "running_labs" else f" with this lab (now {used})"
            raise QuotaExceeded(f"quota exceeded: {words} {shown} of {limit} for {scope_words}{extra}")


def check_deploy_quota(user, lab: Lab) -> None:
    """Raise QuotaExceeded when deploying `lab` would take its owner or one of the owner's classes over quota.

    Quotas belong to the lab's owner (an instructor deploying a student's lab spends the student's quota).
    `user` is who asks; it is part of the contract for future per-requester rules. The operator's defaults are
    for students and instructors: a staff account (the operators themselves) is limited only by a Quota row made
    for it, and by its classes if it is a member of one.
    """
    owner = lab.owner
    running = running_labs().exclude(pk=lab.pk)
    this = lab_usage(lab.document)

    quota = Quota.objects.filter(user=owner).first()
    if quota is not None or not owner.is_staff:
        mine = usage_of(running.filter(owner=owner))
        _check(f"user {owner.get_username()}", limits_for(quota, "USER"), mine, mine + this)

    for classroom in Classroom.objects.filter(members=owner).select_related("quota"):
        theirs = usage_of(running.filter(owner__classes=classroom))
        quota = getattr(classroom, "quota", None)
        _check(f"class {classroom.name}", limits_for(quota, "CLASS"), theirs, theirs + this)
