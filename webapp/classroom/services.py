"""Classroom logic: classes and invite codes, sign-up, publishing templates, starting labs, dashboards.

Views call these; they raise DRF PermissionDenied / ValidationError (InviteError, QuotaExceeded), so the API
answers 403/400 with the message, and pages show it).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q, QuerySet
from rest_framework.exceptions import PermissionDenied, ValidationError

from webapp.accounts.models import Profile, Role, is_instructor
from webapp.labs import services as lab_services
from webapp.labs.models import Lab
from webapp.labs.permissions import can_edit

from .markdown import render_markdown
from .models import Classroom, InviteCode, LabOrigin, Template, TemplateVersion, Visibility
from .quotas import QuotaExceeded, check_deploy_quota  # noqa: F401  (the deploy hook's public home)


class InviteError(ValidationError):
    """An invite code that does not exist, expired, or is used up."""


# ------------------------------------------------------------------------------------------------ classes


def may_teach(user) -> bool:
    """Instructors and the operator may create classes and publish templates."""
    return is_instructor(user) or bool(getattr(user, "is_staff", False))


def taught_classes(user) -> QuerySet[Classroom]:
    if not getattr(user, "is_authenticated", False):
        return Classroom.objects.none()
    return Classroom.objects.filter(instructors=user)


def create_classroom(instructor, name: str) -> Classroom:
    if not may_teach(instructor):
        raise PermissionDenied("Only instructors may create classes.")
    if Classroom.objects.filter(name=name).exists():
        raise ValidationError({"name": f"a class named {name!r} exists already"})
    classroom = Classroom.objects.create(name=name)
    classroom.instructors.add(instructor)
    return classroom


def update_classroom(classroom: Classroom, by, *, uplink_bridges: list[str] | None = None) -> Classroom:
    """Change a class (its instructors only). Members may be given host bridges the instructor may use."""
    if not classroom.instructors.filter(pk=by.pk).exists():
        raise PermissionDenied("Only an instructor of this class may change it.")
    if uplink_bridges is not None:
        from webapp.labs.uplinks import bridges_for

        mine = bridges_for(by)
        refused = [b for b in uplink_bridges if b not in mine]
        if refused:
            raise ValidationError({"uplink_bridges": f"not bridges you may use on this server: {', '.join(refused)}"
                                                     f" (you may use: {', '.join(mine) or 'none'})"})
        classroom.uplink_bridges = list(dict.fromkeys(uplink_bridges))
        classroom.save(update_fields=["uplink_bridges"])
    return classroom


def class_for_instructor(user, pk: int) -> Classroom:
    """The class `pk` if `user` instructs it; otherwise Classroom.DoesNotExist (404 for everybody else)."""
    return taught_classes(user).get(pk=pk)


def create_invite(classroom: Classroom, by, *, max_uses: int = 50, expires: datetime | None = None) -> InviteCode:
    if not classroom.instructors.filter(pk=by.pk).exists():
        raise PermissionDenied("Only an instructor of this class may create its invite codes.")
    invite = InviteCode(classroom=classroom, created_by=by, max_uses=max_uses, expires=expires)
    try:
        invite.full_clean()
    except DjangoValidationError as exc:
        raise ValidationError(exc.message_dict) from None
    invite.save()
    return invite


def remove_member(classroom: Classroom, user_id: int) -> None:
    classroom.members.remove(user_id)


def sign_up(code: str, username: str, password: str):
    """Create a student account and make it a member of the code's class, consuming one use of the code."""
    User = get_user_model()
    with transaction.atomic():
        invite = InviteCode.objects.select_related("classroom").filter(code=code.strip()).first()
        if invite is None:
            raise InviteError({"code": "no such invite code"})
        reason = invite.unusable_reason()
        if reason:
            raise InviteError({"code": reason})
        # Compare-and-set, so two sign-ups racing for the last use cannot both win.
        if not InviteCode.objects.filter(pk=invite.pk, uses__lt=F("max_uses")).update(uses=F("uses") + 1):
            raise InviteError({"code": "this invite code has been used up"})
        if User.objects.filter(username=username).exists():
            raise ValidationError({"username": "this username is taken"})
        user = User(username=username)
        try:
            validate_password(password, user)
        except DjangoValidationError as exc:
            raise ValidationError({"password": list(exc.messages)}) from None
        user.set_password(password)
        try:
            with transaction.atomic():  # a savepoint: on PostgreSQL a failed insert aborts the whole transaction
                user.save()
        except IntegrityError:  # the same name signed up in between
            raise ValidationError({"username": "this username is taken"}) from None
        Profile.objects.create(user=user, role=Role.STUDENT)
        invite.classroom.members.add(user)
    return user


# ------------------------------------------------------------------------------------------------ lab states


@dataclass
class LabRow:
    """One lab on a class dashboard."""

    lab: Lab
    deployed: bool
    running: bool
    nodes: dict
    run: dict | None
    template: str


def lab_rows(labs: QuerySet[Lab]) -> list[LabRow]:
    """Labs with the runs app's last known state."""
    labs = labs.select_related("owner", "origin__template_version__template").order_by("owner__username", "document__name")
    LabState = apps.get_model("runs", "LabState")
    Run = apps.get_model("runs", "Run")
    states = {s.lab_id: s for s in LabState.objects.filter(lab__in=labs)}
    active = {}
    for run in Run.objects.filter(lab__in=labs, status__in=["queued", "running"]):
        active[run.lab_id] = {"id": run.pk, "kind": run.kind, "status": run.status}
    rows = []
    for lab in labs:
        state = states.get(lab.pk)
        origin = getattr(lab, "origin", None)  # a missing reverse one-to-one raises AttributeError
        rows.append(LabRow(
            lab=lab,
            deployed=bool(state and state.deployed),
            running=bool(state and state.running),
            nodes=dict(state.nodes) if state else {},
            run=active.get(lab.pk),
            template=str(origin.template_version) if origin else "",
        ))
    return rows


def class_labs(classroom: Classroom) -> list[LabRow]:
    return lab_rows(Lab.objects.filter(owner__classes=classroom))


# ------------------------------------------------------------------------------------------------ templates


def visible_templates(user) -> QuerySet[Template]:
    """Templates `user` may see in lists: their own, public ones, and class ones of their classes."""
    if not getattr(user, "is_authenticated", False):
        return Template.objects.none()
    classes = Q(classrooms__members=user) | Q(classrooms__instructors=user)
    return Template.objects.filter(
        Q(owner=user) | Q(visibility=Visibility.PUBLIC) | (Q(visibility=Visibility.CLASS) & classes)
    ).distinct()


def can_use_template(user, template: Template, token: str | None = None) -> bool:
    """May `user` see and start this template (a link template needs its share token)."""
    if not getattr(user, "is_authenticated", False):
        return False
    if template.visibility == Visibility.LINK and token is not None and token == template.share_token:
        return True
    return visible_templates(user).filter(pk=template.pk).exists()


def template_for(user, pk: int | None = None, token: str | None = None) -> Template:
    """The template by id (if visible) or by share token; Template.DoesNotExist otherwise."""
    if token is not None:
        template = Template.objects.get(share_token=token, visibility=Visibility.LINK)
    else:
        template = Template.objects.get(pk=pk)
    if not can_use_template(user, template, token):
        raise Template.DoesNotExist
    return template


def _check_publish(user, lab: Lab, visibility: str, classrooms: list[Classroom]) -> None:
    if not may_teach(user):
        raise PermissionDenied("Only instructors may publish templates.")
    if not can_edit(user, lab):
        raise PermissionDenied("You may only publish your own labs.")
    if visibility == Visibility.CLASS and not classrooms:
        raise ValidationError({"classrooms": "a class template needs at least one class"})
    foreign = [c.name for c in classrooms if not c.instructors.filter(pk=user.pk).exists()]
    if foreign:
        raise ValidationError({"classrooms": f"you do not instruct {', '.join(foreign)}"})
    problems = lab_services.lab_problems(lab)
    if problems:
        raise ValidationError({"document": [f"{p.path}: {p.message}" for p in problems]})


@transaction.atomic
def publish(user, lab: Lab, *, title: str, description: str = "", instructions: str = "",
            visibility: str = Visibility.CLASS, classrooms: list[Classroom] = ()) -> Template:
    """Publish `lab` as a new template with version 1 (a frozen copy of its document)."""
    classrooms = list(classrooms)
    _check_publish(user, lab, visibility, classrooms)
    template = Template.objects.create(owner=user, title=title, description=description,
                                       instructions=instructions, visibility=visibility, source_lab=lab)
    template.classrooms.set(classrooms)
    _freeze(template, lab)
    return template


@transaction.atomic
def publish_again(user, template: Template, lab: Lab | None = None, **changes) -> TemplateVersion:
    """A new version from `lab` (default: the lab it was published from). Started labs keep their version."""
    if template.owner_id != user.pk:
        raise PermissionDenied("Only the template's owner may publish it again.")
    # one publication of the template at a time: the next version number is read, then written
    Template.objects.select_for_update(no_key=True).filter(pk=template.pk).first()
    lab = lab or template.source_lab
    if lab is None:
        raise ValidationError({"lab": "the lab this template came from is gone; name another lab"})
    classrooms = list(changes.pop("classrooms", template.classrooms.all()))
    for field, value in changes.items():
        if value is not None:
            setattr(template, field, value)
    _check_publish(user, lab, template.visibility, classrooms)
    template.source_lab = lab
    template.save()
    template.classrooms.set(classrooms)
    return _freeze(template, lab)


def _freeze(template: Template, lab: Lab) -> TemplateVersion:
    number = (template.versions.aggregate(last=Max("number"))["last"] or 0) + 1
    document = copy.deepcopy(lab.document)
    document["name"] = template.title
    return TemplateVersion.objects.create(template=template, number=number, document=document,
                                          instructions=template.instructions)


@transaction.atomic
def start_lab(user, template: Template) -> Lab:
    """Clone the template's latest version into a new lab of `user` (its own lab id), ready to deploy."""
    version = template.latest_version()
    if version is None:
        raise ValidationError({"template": "this template has no published version"})
    from webapp.checks.services import student_document  # the template grades the lab: its copy has no checks

    saved = lab_services.create_lab(user, template.title, template.description, student_document(version.document))
    LabOrigin.objects.create(lab=saved.lab, template_version=version)
    return saved.lab


def lab_instructions(lab: Lab) -> dict | None:
    """The instructions of the template version a lab was started from, as safe HTML; None if it has none."""
    origin = LabOrigin.objects.select_related("template_version__template").filter(lab=lab).first()
    if origin is None:
        return None
    version = origin.template_version
    return {"template": version.template.title, "template_id": version.template_id, "version": version.number,
            "markdown": version.instructions, "html": render_markdown(version.instructions)}
