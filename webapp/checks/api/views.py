"""The checks API: run a lab's checks, see them and their latest result, reset a lab to its template; a class's
scores, "Check all" and the CSV export (instructors of the class).

Labs the caller may not see answer 404 (webapp.labs.permissions); what a student sees of a template's checks is
decided by webapp.checks.services (hidden checks are never in an answer or an event a student can read).
"""
from __future__ import annotations

from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from netops.errors import LabBusyError, Problem
from webapp.core.errors import Refusal
from webapp.core.strict import body_problems
from webapp.core.throttling import ScopedThrottle
from webapp.labs.models import Lab
from webapp.labs.permissions import can_deploy, can_edit, can_view, visible_labs
from webapp.runs.api.serializers import RunSerializer

from .. import services

TAGS = ["checks"]


def _lab(request: Request, pk: int) -> Lab:
    lab = get_object_or_404(visible_labs(request.user).select_related("owner"), pk=pk)
    if not can_view(request.user, lab):
        raise Http404
    return lab


def _no_body(request: Request) -> None:
    unknown = body_problems(request)
    if unknown:
        raise Refusal([Problem(k, m) for k, m in unknown])


def _busy(exc: LabBusyError) -> Refusal:
    return Refusal(str(exc), code=status.HTTP_409_CONFLICT, run=RunSerializer(exc.run).data if exc.run else None)


class LabCheckView(APIView):
    throttle_classes = [ScopedThrottle]
    throttle_scope = "deploy"

    @extend_schema(operation_id="labs_check", tags=TAGS, request=None,
                   responses={202: RunSerializer, 400: OpenApiResponse(description="No checks, malformed checks "
                                                                                   "(each error names its path), "
                                                                                   "or the lab is not deployed"),
                              403: OpenApiResponse(description="You may view this lab but not run it"),
                              404: OpenApiResponse(description="No such lab, or not yours"),
                              409: OpenApiResponse(description="Another run of this lab is active")},
                   summary="Run the lab's checks (a run: check.passed / check.failed events, then a stored result)")
    def post(self, request: Request, pk: int) -> Response:
        lab = _lab(request, pk)
        if not can_deploy(request.user, lab):
            raise PermissionDenied("You may view this lab but not run its checks.")
        _no_body(request)
        try:
            run = services.start_check(lab, request.user)
        except LabBusyError as exc:
            raise _busy(exc) from exc
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class LabChecksView(APIView):
    @extend_schema(operation_id="labs_checks", tags=TAGS, responses={200: OpenApiTypes.OBJECT},
                   summary="The lab's checks as the caller may see them, and the latest result",
                   description="{checks, source: document|template, editable, all, count, result}. A student sees "
                               "a template's title-only checks without their body and its hidden checks not at "
                               "all; `count` is how many there are.")
    def get(self, request: Request, pk: int) -> Response:
        lab = _lab(request, pk)
        body = services.visible_checks(request.user, lab)
        body["result"] = services.visible_result(request.user, services.latest_result(lab))
        return Response(body)


class LabResetView(APIView):
    throttle_classes = [ScopedThrottle]
    throttle_scope = "deploy"

    @extend_schema(operation_id="labs_reset", tags=TAGS, request=None,
                   responses={202: RunSerializer, 400: OpenApiResponse(description="Not started from a template"),
                              404: OpenApiResponse(description="No such lab, or not yours"),
                              409: OpenApiResponse(description="Another run of this lab is active")},
                   summary="Reset to template: destroy the lab and deploy the template version it was started "
                           "from (its document is replaced)")
    def post(self, request: Request, pk: int) -> Response:
        lab = _lab(request, pk)
        if not can_edit(request.user, lab):
            raise PermissionDenied("Only the lab's owner may reset it.")
        _no_body(request)
        try:
            run = services.start_reset(lab, request.user)
        except LabBusyError as exc:
            raise _busy(exc) from exc
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


def _class(request: Request, pk: int):
    from webapp.classroom.models import Classroom
    from webapp.classroom.services import class_for_instructor

    try:
        return class_for_instructor(request.user, pk)
    except Classroom.DoesNotExist:
        raise Http404 from None


class ClassScoresView(APIView):
    @extend_schema(operation_id="classes_scores", tags=TAGS, responses={200: OpenApiTypes.OBJECT},
                   summary="Every member lab's latest score and per-check marks",
                   description="Who may call: instructors of the class (others get 404). scores.csv answers the "
                               "same as CSV.")
    def get(self, request: Request, pk: int) -> Response:
        return Response(services.class_scores(_class(request, pk)))


class ClassScoresCsvView(APIView):
    @extend_schema(operation_id="classes_scores_csv", tags=TAGS, responses={(200, "text/csv"): OpenApiTypes.STR},
                   summary="The class's scores as CSV: one row per lab, one column per check (1 passed, 0 failed)",
                   description="Who may call: instructors of the class (others get 404).")
    def get(self, request: Request, pk: int) -> HttpResponse:
        classroom = _class(request, pk)
        response = HttpResponse(services.scores_csv(classroom), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="class-{classroom.pk}-scores.csv"'
        return response


class ClassCheckAllView(APIView):
    throttle_classes = [ScopedThrottle]
    throttle_scope = "deploy"

    @extend_schema(operation_id="classes_check_all", tags=TAGS, request=None, responses={202: OpenApiTypes.OBJECT},
                   summary="Run the checks of every deployed member lab",
                   description="Who may call: instructors of the class (others get 404). Answers {started: [{lab, "
                               "owner, run}], skipped: [{lab, owner, reason}]}; the agents run them in parallel as "
                               "far as their worker concurrency goes.")
    def post(self, request: Request, pk: int) -> Response:
        classroom = _class(request, pk)
        _no_body(request)
        return Response(services.check_all(classroom, request.user), status=status.HTTP_202_ACCEPTED)
