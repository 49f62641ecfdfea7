"""The hosts API: the lab hosts and whether each is up (staff only: it names the installation's machines)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..models import Host
from . import serializers as s


class HostListView(APIView):
    """Every lab host as its agent last announced itself."""

    permission_classes = [permissions.IsAuthenticated, permissions.IsAdminUser]

    @extend_schema(operation_id="hosts_list", tags=["hosts"], summary="List lab hosts (staff)",
                   responses=s.HostSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(s.HostSerializer(Host.objects.all(), many=True).data)
