"""Serializers of the runs API: runs, their events, and the bodies of 400/409/503 answers."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

# one "Errors" and one "Detail" component in the schema
from webapp.labs.api.serializers import DetailSerializer, ErrorsSerializer  # noqa: F401

from ..models import Run, RunEvent


class EventSerializer(serializers.Serializer):
    """An event as it goes over the WebSocket: {type, lab, run, seq, ts, node?, state?, message?, step?, total?}."""

    type = serializers.CharField(help_text="run.started | run.step | node.state | run.finished | run.failed")
    lab = serializers.IntegerField()
    run = serializers.IntegerField(allow_null=True)
    seq = serializers.IntegerField(help_text="Per-lab, grows by one per event")
    ts = serializers.FloatField(help_text="Seconds since the epoch when the agent recorded it")
    node = serializers.CharField(required=False)
    state = serializers.CharField(required=False)
    message = serializers.CharField(required=False)
    step = serializers.IntegerField(required=False)
    total = serializers.IntegerField(required=False)
    element = serializers.CharField(required=False, help_text="Document path of the element concerned")

    def to_representation(self, instance):
        return instance.as_message() if isinstance(instance, RunEvent) else instance


class ActionSerializer(serializers.Serializer):
    """The body of POST /api/labs/<pk>/actions/ (documentation only: netops.actions.check validates it)."""

    action = serializers.ChoiceField(["stop", "start", "restart", "isolate", "reconnect", "link-down", "link-up",
                                      "link-conditions"])
    node = serializers.CharField(required=False, help_text="The node of a node action")
    link = serializers.ListField(child=serializers.CharField(), required=False,
                                 help_text='The two endpoints of the link, as ["h1:eth0", "sw"]')
    conditions = serializers.DictField(required=False, help_text="link-conditions: delay, jitter, loss, rate, as "
                                       "in the document (a key left out is removed)")


class RunSerializer(serializers.ModelSerializer):
    started_by = serializers.CharField(source="started_by.get_username", read_only=True, default=None)
    kind = serializers.CharField(read_only=True, help_text="deploy | destroy | action")
    status = serializers.CharField(read_only=True, help_text="queued | running | succeeded | failed")

    class Meta:
        model = Run
        fields = ["id", "lab", "kind", "status", "started_by", "created", "started", "finished", "error",
                  "error_element", "lab_version", "action"]
        read_only_fields = fields


class RunDetailSerializer(RunSerializer):
    events = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = RunSerializer.Meta.fields + ["events"]
        read_only_fields = fields

    @extend_schema_field(EventSerializer(many=True))
    def get_events(self, run: Run) -> list[dict]:
        return [e.as_message() for e in run.events.order_by("seq")]


class BusySerializer(serializers.Serializer):
    detail = serializers.CharField()
    run = RunSerializer(help_text="The run that holds the lab")


class NodeStatusSerializer(serializers.Serializer):
    kind = serializers.CharField()
    state = serializers.CharField(help_text="running | degraded | stopped | absent")
    interfaces = serializers.DictField()
    leases = serializers.ListField(child=serializers.DictField(), required=False)
    vm = serializers.DictField(required=False)


class LabStatusSerializer(serializers.Serializer):
    lab = serializers.CharField(help_text="The engine's lab id")
    nodes = serializers.DictField(child=NodeStatusSerializer())
    drift = serializers.ListField(child=serializers.CharField())
    links = serializers.DictField(required=False, help_text="Each link by path: endpoints, state (up | down | "
                                  "stopped, as the user set it), cable (what the kernel shows)")
    stopped = serializers.ListField(child=serializers.CharField(), required=False,
                                    help_text="Nodes the user stopped")
    known = serializers.DictField(child=serializers.CharField(), help_text="Last known node states")
    deployed = serializers.BooleanField()

