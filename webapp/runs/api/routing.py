"""A running router's routing table and neighbor states, for its properties panel (issue 15).

`GET /api/labs/<pk>/nodes/<node>/routing/` asks the agent, which asks the router's own FRR instance in the lab's
cell (netops.frr_status.router_view). Who may: whoever may view the lab (webapp.labs.permissions); other labs
answer 404. Before anything reaches the agent, the node must be a router with routing: in the document the lab
runs (`LabState.deployed_document`), else 400 naming it; a lab that is not deployed answers 409.
"""
from __future__ import annotations

from celery.exceptions import TimeoutError as CeleryTimeout
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from netops.errors import Problem
from netops.frr_status import view_target
from netops.topology import parse_document
from webapp.core.errors import Refusal
from webapp.core.throttling import ScopedThrottle

from .. import services
from ..models import LabState
from . import serializers as s
from .views import TAGS, _lab

VIEW_TIMEOUT = 26  # the agent's two vtysh calls take 10 s each at most (netops.frr_status)


class RouterRoutingView(APIView):
    throttle_classes = [ScopedThrottle]
    throttle_scope = "routing"

    @extend_schema(
        operation_id="labs_router_routing", tags=TAGS,
        responses={
            200: OpenApiResponse(description="{node, daemons, routes: [{prefix, family, protocol, selected, "
                                             "installed, distance, metric, uptime, nexthops}], routes_total, "
                                             "truncated, notes, ospf, ospf6: [{id, address, interface, state, role, "
                                             "up, dead}], bgp: [{peer, interface, af, asn, state, up, received, "
                                             "sent}]}"),
            400: OpenApiResponse(s.ErrorsSerializer, description="The node is no router running FRR"),
            404: OpenApiResponse(description="No such lab, or not yours"),
            409: OpenApiResponse(s.ErrorsSerializer, description="The lab is not deployed"),
            503: OpenApiResponse(s.ErrorsSerializer, description="The agent or FRR did not answer")},
        summary="A running router's routing table and OSPF/BGP neighbors, from its FRR (asks the agent)")
    def get(self, request: Request, pk: int, node: str) -> Response:
        from .. import tasks

        lab = _lab(request, pk)
        state = LabState.objects.filter(lab=lab).first()
        if not (state and state.deployed and state.deployed_document):
            raise Refusal(Problem(f"nodes.{node}", "the lab is not deployed: deploy it to see its routing"),
                          code=status.HTTP_409_CONFLICT)
        view_target(parse_document(state.deployed_document), node)  # 400 (TopologyError) names the node
        result = tasks.router_view.apply_async((lab.pk, node), queue=services.lab_queue(lab.pk, "the router view", node=node))
        try:
            answer = result.get(timeout=VIEW_TIMEOUT)
        except CeleryTimeout:
            result.revoke()
            raise Refusal(f"the agent did not answer within {VIEW_TIMEOUT} s",
                          code=status.HTTP_503_SERVICE_UNAVAILABLE) from None
        finally:
            result.forget()
        if "errors" in answer:
            raise Refusal([Problem(e["path"], e["message"]) for e in answer["errors"]], code=answer["code"])
        return Response(answer["view"])
