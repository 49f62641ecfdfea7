from __future__ import annotations

from rest_framework import serializers

from webapp.core.strict import StrictSerializer

from ..models import Capture, ConsoleSession


class CaptureRequestSerializer(StrictSerializer):
    """Capture a link (its index in the document's `links`) or one node interface; optionally a BPF filter."""

    link = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    node = serializers.CharField(required=False, allow_blank=True, max_length=64)
    interface = serializers.CharField(required=False, allow_blank=True, max_length=64)
    filter = serializers.CharField(required=False, allow_blank=True, max_length=1000, trim_whitespace=False)


class CaptureSerializer(serializers.ModelSerializer):
    started_by = serializers.CharField(source="started_by.get_username", default=None, read_only=True)
    download = serializers.SerializerMethodField()
    live = serializers.SerializerMethodField()

    class Meta:
        model = Capture
        fields = ["id", "link", "node", "interface", "label", "filter", "status", "message", "size", "packets",
                  "max_bytes", "max_seconds", "started_by", "started", "ended", "download", "live"]
        read_only_fields = fields

    def get_download(self, obj: Capture) -> str:
        return f"/api/labs/{obj.lab_id}/captures/{obj.pk}/pcap"

    def get_live(self, obj: Capture) -> str:
        return f"/ws/labs/{obj.lab_id}/captures/{obj.pk}/"


class ConsoleSessionSerializer(serializers.ModelSerializer):
    """One row of the audit log: a console opened, or a capture started, on a node or link of the lab."""

    user = serializers.CharField(source="username", read_only=True)
    capture = serializers.IntegerField(source="capture.pk", default=None, read_only=True,
                                       help_text="the capture's id, for kind capture")

    class Meta:
        model = ConsoleSession
        fields = ["id", "kind", "user", "node", "started", "ended", "bytes_in", "bytes_out", "reason", "capture"]
        read_only_fields = fields


# the same {"errors": [{"path", "message"}]} body as the labs API: one schema component
from webapp.labs.api.serializers import ErrorsSerializer  # noqa: E402,F401
