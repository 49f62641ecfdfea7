"""Serializers of the labs API. Responses that carry a document also carry its validation problems."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from webapp.core.strict import StrictSerializer

from ..models import Lab
from ..services import EXPORT_FORMATS


class ProblemSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="Dotted path of the element concerned, e.g. nodes.r1.interfaces.eth0.address")
    message = serializers.CharField()


class ErrorsSerializer(serializers.Serializer):
    errors = ProblemSerializer(many=True)


class LabSummarySerializer(serializers.ModelSerializer):
    """A lab in a list: no document, only counts."""

    owner = serializers.CharField(source="owner.get_username", read_only=True)
    node_count = serializers.SerializerMethodField()
    link_count = serializers.SerializerMethodField()

    class Meta:
        model = Lab
        fields = ["id", "lab_id", "name", "description", "owner", "version", "node_count", "link_count",
                  "created", "updated"]
        read_only_fields = fields

    @extend_schema_field(serializers.IntegerField())
    def get_node_count(self, lab: Lab) -> int:
        nodes = lab.document.get("nodes") if isinstance(lab.document, dict) else None
        return len(nodes) if isinstance(nodes, dict) else 0

    @extend_schema_field(serializers.IntegerField())
    def get_link_count(self, lab: Lab) -> int:
        links = lab.document.get("links") if isinstance(lab.document, dict) else None
        return len(links) if isinstance(links, list) else 0


class LabSerializer(LabSummarySerializer):
    """A lab with its document, whether that document is valid, and what is wrong with it."""

    document = serializers.JSONField(read_only=True)
    valid = serializers.SerializerMethodField()
    errors = serializers.SerializerMethodField()
    deployed_version = serializers.SerializerMethodField()

    class Meta(LabSummarySerializer.Meta):
        fields = LabSummarySerializer.Meta.fields + ["document", "valid", "errors", "deployed_version"]
        read_only_fields = fields

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_deployed_version(self, lab: Lab) -> int | None:
        """The version the last deploy applied (null when nothing is deployed; runs app)."""
        state = getattr(lab, "deploy_state", None) if hasattr(Lab, "deploy_state") else None
        return getattr(state, "deployed_version", None) if state is not None else None

    def _problems(self) -> list[dict]:
        return self.context.get("problems", [])

    @extend_schema_field(serializers.BooleanField())
    def get_valid(self, lab: Lab) -> bool:
        return not self._problems()

    @extend_schema_field(ProblemSerializer(many=True))
    def get_errors(self, lab: Lab) -> list[dict]:
        return self._problems()


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


class UplinksSerializer(serializers.Serializer):
    bridges = serializers.ListField(child=serializers.CharField(), help_text="Host bridges `bridge:` may name")
    nat = serializers.BooleanField(help_text="`nat: true` is allowed")


class ConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    lab = LabSerializer()


class LabCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    document = serializers.JSONField(required=False, help_text="A topology document; default: an empty lab")


class LabWriteSerializer(StrictSerializer):
    """PUT replaces the document (and name/description); PATCH may send any subset. Both need `version`."""

    version = serializers.IntegerField(help_text="The version this change was made from")
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    document = serializers.JSONField(required=False)


class DuplicateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)


class ValidateSerializer(StrictSerializer):
    document = serializers.JSONField()


class ValidationResultSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    errors = ProblemSerializer(many=True)


class ImportSerializer(StrictSerializer):
    format = serializers.ChoiceField(choices=list(EXPORT_FORMATS) + ["auto"], default="auto")
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    file = serializers.FileField(required=False)
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)


class ImportResultSerializer(serializers.Serializer):
    lab = LabSerializer()
    warnings = ProblemSerializer(many=True)


class ImageSerializer(serializers.Serializer):
    name = serializers.CharField()
    format = serializers.CharField(required=False, help_text="qcow2, raw or kernel")
    memory = serializers.IntegerField(required=False, help_text="Default memory in MiB")
    os_hint = serializers.CharField(required=False, allow_null=True)


class SettingSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    type = serializers.ChoiceField(choices=["bool", "int", "text"])
    help = serializers.CharField(allow_blank=True)
    min = serializers.IntegerField(allow_null=True)
    max = serializers.IntegerField(allow_null=True)


class KindSerializer(serializers.Serializer):
    """One node kind of the registry (netops.kinds): what the canvas builds its palette and panels from."""

    name = serializers.CharField()
    label = serializers.CharField()
    help = serializers.CharField()
    prefix = serializers.CharField(help_text="New nodes are named prefix + a number (h1, r2)")
    palette = serializers.IntegerField(help_text="Place in the palette, smallest first")
    icon = serializers.CharField(help_text="Static path of the kind's icon")
    keys = serializers.ListField(child=serializers.CharField(), help_text="Keys a node of this kind may have")
    sections = serializers.ListField(child=serializers.CharField(), help_text="Sections of the properties panel")
    interface_keys = serializers.ListField(child=serializers.CharField(),
                                           help_text="Keys the properties panel offers per interface")
    settings = SettingSerializer(many=True, help_text="Plain keys the properties panel's settings section edits")
    interfaces = serializers.BooleanField(help_text="Links end on node:interface (else on the bare name)")
    namespace = serializers.BooleanField()
    console = serializers.ChoiceField(choices=["shell", "serial"], allow_null=True)
    capture = serializers.BooleanField(help_text="Its interfaces can be captured on")
    link_end = serializers.ChoiceField(choices=["ns", "tap", "segment"])
    serves_dhcp = serializers.BooleanField()
    masquerade = serializers.BooleanField()
    forwarding = serializers.BooleanField(help_text="Forwards between its interfaces (a router)")
    uplink = serializers.BooleanField(help_text="The lab's door to the host's networks")


class KindsSerializer(serializers.Serializer):
    kinds = KindSerializer(many=True)
    node_states = serializers.ListField(child=serializers.CharField(), help_text="States a node is reported in")
    node_name_re = serializers.CharField(help_text="What a node name must match (a JavaScript regular expression)")
