"""The runs REST API: deploy, destroy, runs with their events, the event log and live status of a lab.

Views authorise through webapp.labs.permissions and leave the work to `..services` (web side) and the agent.
Labs the user may not see answer 404, as in the labs API.
"""
from __future__ import annotations

import time

from celery.exceptions import TimeoutError as CeleryTimeout
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from netops.errors import LabBusyError, Problem
from webapp.core.errors import Refusal
from webapp.core.strict import body_problems
from webapp.core.throttling import ScopedThrottle
from webapp.labs.models import Lab
from webapp.labs.permissions import can_deploy, can_view, visible_labs

from .. import services
from ..models import LabState, Run
from . import serializers as s

TAGS = ["runs"]
STATUS_TIMEOUT = 10


def _lab(request: Request, pk: int) -> Lab:
    lab = get_object_or_404(visible_labs(request.user), pk=pk)
    if not can_view(request.user, lab):
        raise PermissionDenied("You may not see this lab.")
    return lab


class _StartRunView(APIView):
    kind: str = ""
    throttle_classes = [ScopedThrottle]
    throttle_scope = "deploy"

    def post(self, request: Request, pk: int) -> Response:
        lab = _lab(request, pk)
        if not can_deploy(request.user, lab):
            raise PermissionDenied("You may view this lab but not deploy or destroy it.")
        unknown = body_problems(request)
        if unknown:
            raise Refusal([Problem(k, m) for k, m in unknown])
        try:  # an invalid document (TopologyError) answers 400 through webapp.core.errors
            run = services.start_run(lab, request.user, self.kind)  # quotas, in the same transaction
        except LabBusyError as exc:  # 409 with the run that holds the lab
            raise Refusal(str(exc), code=status.HTTP_409_CONFLICT,
                          run=s.RunSerializer(exc.run).data if exc.run else None) from exc
        return Response(s.RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


_START_RESPONSES = {
    202: s.RunSerializer,
    400: OpenApiResponse(s.ErrorsSerializer, description="The document is invalid; each error names its path"),
    403: OpenApiResponse(description="You may view this lab but not deploy it, or (deploy) a quota would be "
                                     "exceeded: {detail: 'quota exceeded: running labs 2 of 2 for user alice "
                                     "(lab1, lab2)', labs: [{id, name, url}]}"),
    404: OpenApiResponse(description="No such lab, or not yours"),
    409: OpenApiResponse(s.BusySerializer, description="Another deploy or destroy of this lab is active"),
}


class DeployView(_StartRunView):
    kind = Run.Kind.DEPLOY

    @extend_schema(operation_id="labs_deploy", tags=TAGS, request=None, responses=_START_RESPONSES,
                   summary="Deploy the lab (or apply what changed since the last deploy)")
    def post(self, request: Request, pk: int) -> Response:
        return super().post(request, pk)


class DestroyView(_StartRunView):
    kind = Run.Kind.DESTROY

    @extend_schema(operation_id="labs_destroy_deployment", tags=TAGS, request=None,
                   responses={k: v for k, v in _START_RESPONSES.items() if k != 400},
                   summary="Remove everything the lab has in the kernel")
    def post(self, request: Request, pk: int) -> Response:
        return super().post(request, pk)


class LabActionView(APIView):
    """POST /api/labs/<pk>/actions/: one node or link action on the running lab, as a run with events."""

    throttle_classes = [ScopedThrottle]
    throttle_scope = "deploy"

    @extend_schema(
        operation_id="labs_action", tags=TAGS, request=s.ActionSerializer,
        responses={**_START_RESPONSES,
                   400: OpenApiResponse(s.ErrorsSerializer, description="No such node or link in the running "
                                        "lab, an action the node cannot take, or bad conditions (each error names "
                                        "its path: node, link, conditions.delay ...)"),
                   409: OpenApiResponse(s.BusySerializer, description="Another run of this lab is active, or the "
                                        "lab is not deployed")},
        summary="Stop, start, restart, isolate or reconnect a node; set a link down or up or change its "
                "conditions, on the running lab")
    def post(self, request: Request, pk: int) -> Response:
        lab = _lab(request, pk)
        if not can_deploy(request.user, lab):
            raise PermissionDenied("You may view this lab but not run actions on it.")
        try:  # a bad action (TopologyError) answers 400 through webapp.core.errors
            run = services.start_action(lab, request.user, request.data)
        except services.NotDeployed as exc:
            raise Refusal(str(exc), code=status.HTTP_409_CONFLICT) from exc
        except LabBusyError as exc:
            raise Refusal(str(exc), code=status.HTTP_409_CONFLICT,
                          run=s.RunSerializer(exc.run).data if exc.run else None) from exc
        return Response(s.RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class RunDetailView(APIView):
    @extend_schema(operation_id="runs_retrieve", tags=TAGS, responses={200: s.RunDetailSerializer},
                   summary="A run with its events")
    def get(self, request: Request, pk: int) -> Response:
        run = get_object_or_404(Run.objects.select_related("lab", "started_by"), pk=pk,
                                lab__in=visible_labs(request.user))
        return Response(s.RunDetailSerializer(run).data)


class LabRunsView(APIView):
    @extend_schema(operation_id="labs_runs_list", tags=TAGS, responses={200: s.RunSerializer(many=True)},
                   summary="The lab's runs, newest first")
    def get(self, request: Request, pk: int) -> Response:
        lab = _lab(request, pk)
        runs = lab.runs.select_related("started_by")[:100]
        return Response(s.RunSerializer(runs, many=True).data)


class LabEventsView(APIView):
    @extend_schema(
        operation_id="labs_events_list", tags=TAGS, responses={200: s.EventSerializer(many=True)},
        parameters=[OpenApiParameter("after", OpenApiTypes.INT, description="Only events with a larger seq"),
                    OpenApiParameter("limit", OpenApiTypes.INT, description="At most this many (max 1000)")],
        summary="The lab's events after a sequence number, oldest first")
    def get(self, request: Request, pk: int) -> Response:
        lab = _lab(request, pk)
        try:
            after = int(request.query_params.get("after", 0))
            limit = min(max(int(request.query_params.get("limit", services.REPLAY_BATCH)), 1), services.REPLAY_BATCH)
        except ValueError:
            raise ValidationError({"after": "must be an integer"}) from None
        return Response(services.events_after(lab.pk, after, limit))


class LabStatusView(APIView):
    throttle_classes = [ScopedThrottle]
    throttle_scope = "status"

    @extend_schema(operation_id="labs_status", tags=TAGS,
                   responses={200: s.LabStatusSerializer,
                              503: OpenApiResponse(s.DetailSerializer, description="The agent did not answer")},
                   summary="Observed state of the lab in the kernel (asks the agent), with drift")
    def get(self, request: Request, pk: int) -> Response:
        from .. import tasks

        lab = _lab(request, pk)
        queues = services.status_queues(lab.pk)  # one per host that runs a part of the lab
        results = {host: tasks.lab_status.apply_async((lab.pk,), queue=queue) for host, queue in queues.items()}
        answers = {}
        try:
            deadline = time.monotonic() + STATUS_TIMEOUT
            for host, result in results.items():  # asked at once, answered in parallel
                try:
                    answers[host] = result.get(timeout=max(0.1, deadline - time.monotonic()))
                except CeleryTimeout:
                    result.revoke()
                    who = f"the agent of host {host}" if host else "the agent"
                    raise Refusal(f"{who} did not answer within {STATUS_TIMEOUT} s",
                                  code=status.HTTP_503_SERVICE_UNAVAILABLE) from None
        finally:
            for result in results.values():
                result.forget()
        observed = services.with_leased_addresses(services.merge_status(lab.pk, answers))
        state = LabState.objects.filter(lab=lab).first()
        observed["known"] = dict(state.nodes) if state else {}
        observed["deployed"] = bool(state and state.deployed)
        return Response(observed)
