"""Classroom pages. Thin: they authorise through services / labs.permissions and render."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework.exceptions import APIException

from netops.errors import LabBusyError
from webapp.labs.models import Lab
from webapp.labs.permissions import can_deploy, visible_labs

from . import services
from .forms import ClassroomForm, InviteForm, PublishForm
from .markdown import render_markdown
from .models import Classroom, Template


def _error_text(exc: APIException) -> str:
    detail = exc.detail
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in detail.items())
    if isinstance(detail, list):
        return " ".join(map(str, detail))
    return str(detail)


def _class(request: HttpRequest, pk: int) -> Classroom:
    try:
        return services.class_for_instructor(request.user, pk)
    except Classroom.DoesNotExist:
        raise Http404 from None


def _template(request: HttpRequest, pk: int | None = None, token: str | None = None) -> Template:
    try:
        return services.template_for(request.user, pk=pk, token=token)
    except Template.DoesNotExist:
        raise Http404 from None


@login_required
@require_http_methods(["GET", "POST"])
def class_list(request: HttpRequest) -> HttpResponse:
    form = ClassroomForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            classroom = services.create_classroom(request.user, form.cleaned_data["name"])
        except APIException as exc:
            messages.error(request, _error_text(exc))
        else:
            return redirect("class-dashboard", pk=classroom.pk)
    classes = services.taught_classes(request.user).prefetch_related("members")
    return render(request, "classroom/class_list.html",
                  {"classes": classes, "form": form, "may_teach": services.may_teach(request.user)})


@login_required
def class_dashboard(request: HttpRequest, pk: int) -> HttpResponse:
    classroom = _class(request, pk)
    return render(request, "classroom/class_dashboard.html", {
        "classroom": classroom,
        "members": classroom.members.order_by("username"),
        "invites": classroom.invite_codes.all(),
        "rows": services.class_labs(classroom),
        "invite_form": InviteForm(),
    })


@login_required
@require_POST
def class_invite(request: HttpRequest, pk: int) -> HttpResponse:
    classroom = _class(request, pk)
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invite = services.create_invite(classroom, request.user, max_uses=form.cleaned_data["max_uses"],
                                            expires=form.cleaned_data.get("expires"))
        except APIException as exc:
            messages.error(request, _error_text(exc))
        else:
            messages.success(request, f"Invite code {invite.code} created.")
    else:
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    return redirect("class-dashboard", pk=pk)


@login_required
@require_POST
def class_lab_destroy(request: HttpRequest, pk: int, lab_pk: int) -> HttpResponse:
    """Destroy a member's lab from the dashboard (the same rule as the API: can_deploy)."""
    classroom = _class(request, pk)
    lab = get_object_or_404(visible_labs(request.user), pk=lab_pk, owner__classes=classroom)
    if not can_deploy(request.user, lab):
        raise Http404
    from webapp.runs import services as runs

    try:
        runs.start_run(lab, request.user, "destroy")
    except LabBusyError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Destroying {lab.name} ({lab.lab_id}) of {lab.owner.get_username()}.")
    return redirect("class-dashboard", pk=pk)


@login_required
def template_list(request: HttpRequest) -> HttpResponse:
    templates = services.visible_templates(request.user).select_related("owner")
    own_labs = Lab.objects.filter(owner=request.user) if services.may_teach(request.user) else Lab.objects.none()
    return render(request, "classroom/template_list.html", {
        "templates": templates, "own_labs": own_labs, "may_teach": services.may_teach(request.user),
    })


def _template_page(request: HttpRequest, template: Template, start_url: str) -> HttpResponse:
    return render(request, "classroom/template_detail.html", {
        "template": template,
        "instructions_html": render_markdown(template.instructions),
        "versions": template.versions.all(),
        "start_url": start_url,
        "is_owner": template.owner_id == request.user.pk,
    })


@login_required
def template_detail(request: HttpRequest, pk: int) -> HttpResponse:
    template = _template(request, pk)
    return _template_page(request, template, f"/templates/{template.pk}/start/")


@login_required
def shared_template(request: HttpRequest, token: str) -> HttpResponse:
    template = _template(request, token=token)
    return _template_page(request, template, f"/t/{token}/start/")


@login_required
@require_POST
def template_start(request: HttpRequest, pk: int) -> HttpResponse:
    lab = services.start_lab(request.user, _template(request, pk))
    return redirect("lab-editor", pk=lab.pk)


@login_required
@require_POST
def shared_template_start(request: HttpRequest, token: str) -> HttpResponse:
    lab = services.start_lab(request.user, _template(request, token=token))
    return redirect("lab-editor", pk=lab.pk)


@login_required
@require_http_methods(["GET", "POST"])
def template_publish(request: HttpRequest) -> HttpResponse:
    """Publish one of my labs (?lab=<pk>) as a new template."""
    lab = get_object_or_404(Lab, pk=request.GET.get("lab") or request.POST.get("lab") or 0, owner=request.user)
    form = PublishForm(request.POST or None, initial={"title": lab.name, "description": lab.description},
                       classrooms=services.taught_classes(request.user))
    if request.method == "POST" and form.is_valid():
        try:
            template = services.publish(request.user, lab, **form.cleaned_data)
        except APIException as exc:
            messages.error(request, _error_text(exc))
        else:
            messages.success(request, f"Published {template.title} (version 1).")
            return redirect("template-detail", pk=template.pk)
    return render(request, "classroom/template_publish.html", {"form": form, "lab": lab})


@login_required
@require_POST
def template_publish_again(request: HttpRequest, pk: int) -> HttpResponse:
    template = _template(request, pk)
    try:
        version = services.publish_again(request.user, template)
    except APIException as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, f"Published version {version.number}.")
    return redirect("template-detail", pk=pk)
