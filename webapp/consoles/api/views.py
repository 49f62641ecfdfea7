"""Capture REST API: start, list, detail, stop, download; and the lab's console audit log.
Error bodies are {"errors": [{"path", "message"}]} (webapp.core.errors).

Starting asks the stream agent and waits for its answer, so a filter tcpdump cannot compile, or a lab that is
not deployed, answers 400 with the reason; no tcpdump runs then. A download streams from the stream agent of the
host that holds the file (Capture.host).
"""
from __future__ import annotations

from asgiref.sync import async_to_sync
from django.http import Http404, StreamingHttpResponse
from django.utils.http import content_disposition_header
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from netops.errors import Problem
from webapp.core.errors import response as error_response
from webapp.core.strict import body_problems
from webapp.labs import permissions

from .. import conf, services
from ..models import Capture
from . import serializers as s

TAG = ["captures"]
BAD = OpenApiResponse(s.ErrorsSerializer, description="Refused; each error names its field")



def _lab(request, pk: int):
    lab = services.lab_for(request.user, pk)
    if lab is None:
        raise Http404("no such lab")
    return lab


def _may(request, lab) -> Response | None:
    if not services.can_console(request.user, lab):
        return error_response([Problem("", "you may not capture packets in this lab")], status.HTTP_403_FORBIDDEN)
    return None


def _capture(request, pk: int, capture: int) -> tuple[Capture | None, Response | None]:
    """The lab's capture `capture` for a user who may capture there: (capture, None), or (None, the refusal);
    404 for a lab the user may not see or a capture that is not the lab's."""
    lab = _lab(request, pk)
    if (refused := _may(request, lab)) is not None:
        return None, refused
    cap = Capture.objects.filter(lab=lab, pk=capture).first()
    if cap is None:
        raise Http404("no such capture")
    return cap, None


class CaptureListView(APIView):
    @extend_schema(tags=TAG, responses=s.CaptureSerializer(many=True))
    def get(self, request, pk: int):
        lab = _lab(request, pk)
        if (refused := _may(request, lab)) is not None:
            return refused
        return Response(s.CaptureSerializer(services.captures_of(lab)[:200], many=True).data)

    @extend_schema(tags=TAG, request=s.CaptureRequestSerializer,
                   responses={201: s.CaptureSerializer, 400: BAD, 503: BAD})
    def post(self, request, pk: int):
        lab = _lab(request, pk)
        if (refused := _may(request, lab)) is not None:
            return refused
        body = s.CaptureRequestSerializer(data=request.data)
        if not body.is_valid():
            return error_response([Problem(k, str(v[0])) for k, v in body.errors.items()])  # unknown fields too
        clean, problems = services.check_capture_request(lab, body.validated_data)
        if problems:
            return error_response(problems)
        cap = services.claim_capture(request.user, lab, clean)  # the limit checked and claimed atomically
        if cap is None:
            return error_response([Problem("", f"at most {conf.capture_max_running()} captures may run at once")],
                          status.HTTP_429_TOO_MANY_REQUESTS)
        try:
            channel = services.agent_channel_for(lab, cap.node or None, cap.link)  # the host that runs it
            reply = async_to_sync(services.ask_agent)(services.start_message(cap), channel=channel)
        except services.AgentUnavailable as exc:
            services.fail_capture(cap, str(exc))
            return error_response([Problem("", str(exc))], status.HTTP_503_SERVICE_UNAVAILABLE)
        cap = services.apply_start_reply(cap, reply)
        if cap.status == Capture.Status.FAILED:
            return error_response([Problem(reply.get("path", ""), cap.message)])
        return Response(s.CaptureSerializer(cap).data, status=status.HTTP_201_CREATED)


class CaptureDetailView(APIView):
    @extend_schema(tags=TAG, responses=s.CaptureSerializer)
    def get(self, request, pk: int, capture: int):
        cap, refused = _capture(request, pk, capture)
        if refused is not None:
            return refused
        return Response(s.CaptureSerializer(cap).data)


class CaptureStopView(APIView):
    @extend_schema(tags=TAG, request=None, responses=s.CaptureSerializer)
    def post(self, request, pk: int, capture: int):
        cap, refused = _capture(request, pk, capture)
        if refused is not None:
            return refused
        if unknown := body_problems(request):
            return error_response([Problem(k, m) for k, m in unknown])
        if cap.status in Capture.ACTIVE:
            try:
                async_to_sync(services.ask_agent)({"type": "capture.stop", "capture": cap.pk},
                                                  channel=cap.agent_channel or None)
            except services.AgentUnavailable as exc:
                services.fail_capture(cap, f"stopped without the agent: {exc}")
            cap.refresh_from_db()
        return Response(s.CaptureSerializer(cap).data)


class CaptureDownloadView(APIView):
    """The capture's pcap file, streamed from the stream agent of the host that holds it (webapp.agent.pcaps): the
    web tier reads no capture file. An error before the first byte is one error body naming the capture (404 no
    file, 503 the host's stream agent does not answer within conf.pcap_timeout()); one after it cuts the download
    short (its Content-Length then tells the browser it is incomplete)."""

    @extend_schema(tags=TAG, responses={(200, "application/vnd.tcpdump.pcap"): bytes, 404: BAD, 503: BAD})
    def get(self, request, pk: int, capture: int):
        cap, refused = _capture(request, pk, capture)
        if refused is not None:
            return refused
        try:
            stream = async_to_sync(services.open_pcap)(cap)
        except services.PcapUnavailable as exc:
            return error_response([Problem("", str(exc))], exc.status)
        response = StreamingHttpResponse(stream.chunks(), content_type="application/vnd.tcpdump.pcap")
        response["Content-Length"] = str(stream.size)
        response["Content-Disposition"] = content_disposition_header(
            True, f"{cap.lab.lab_id}-capture-{cap.pk}.pcap")
        return response


class ConsoleSessionListView(APIView):
    @extend_schema(
        tags=["consoles"], responses=s.ConsoleSessionSerializer(many=True),
        summary="The lab's console and capture sessions (audit log), newest first",
        description="Who opened a console or started a capture on which node or link, when, and how it ended "
                    "(`ended` is null while it is open). The latest 200; visible to whoever may view the lab.")
    def get(self, request, pk: int):
        lab = _lab(request, pk)
        if not permissions.can_view(request.user, lab):
            raise Http404("no such lab")
        return Response(s.ConsoleSessionSerializer(services.sessions_of(lab)[:200], many=True).data)
