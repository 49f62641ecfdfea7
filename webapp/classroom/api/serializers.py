"""Serializers of the classroom API."""
from __future__ import annotations

from rest_framework import serializers

from webapp.core.strict import StrictSerializer
from webapp.labs.models import Lab

from ..models import Classroom, InviteCode, Template, TemplateVersion, Visibility


class MemberSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()


class InviteSerializer(serializers.ModelSerializer):
    signup_url = serializers.SerializerMethodField()

    class Meta:
        model = InviteCode
        fields = ["id", "code", "expires", "max_uses", "uses", "created", "signup_url"]
        read_only_fields = ["id", "code", "uses", "created", "signup_url"]

    def get_signup_url(self, invite: InviteCode) -> str:
        return f"/accounts/signup/?code={invite.code}"


class ClassroomSerializer(serializers.ModelSerializer):
    instructors = MemberSerializer(many=True, read_only=True)
    members = MemberSerializer(many=True, read_only=True)

    class Meta:
        model = Classroom
        fields = ["id", "name", "instructors", "members", "uplink_bridges", "created"]
        read_only_fields = ["id", "instructors", "members", "uplink_bridges", "created"]


class ClassroomDetailSerializer(ClassroomSerializer):
    invite_codes = InviteSerializer(many=True, read_only=True)

    class Meta(ClassroomSerializer.Meta):
        fields = ClassroomSerializer.Meta.fields + ["invite_codes"]
        read_only_fields = fields


class LabRowSerializer(serializers.Serializer):
    """A member's lab with what the runs app last knew of it."""

    id = serializers.IntegerField(source="lab.pk")
    lab_id = serializers.CharField(source="lab.lab_id")
    name = serializers.CharField(source="lab.name")
    owner = serializers.CharField(source="lab.owner.get_username")
    deployed = serializers.BooleanField(help_text="Kernel objects may exist (deployed and not destroyed)")
    running = serializers.BooleanField(help_text="Deployed with at least one node up")
    nodes = serializers.DictField(child=serializers.CharField(), help_text="Node name -> last known state")
    run = serializers.DictField(allow_null=True, help_text="The active deploy/destroy, if any")
    template = serializers.CharField(help_text="Template version the lab was started from, if any")


class TemplateVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = TemplateVersion
        fields = ["number", "created"]
        read_only_fields = fields


class TemplateSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.get_username", read_only=True)
    classrooms = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    latest_version = serializers.SerializerMethodField()
    share_url = serializers.SerializerMethodField()

    class Meta:
        model = Template
        fields = ["id", "title", "description", "instructions", "visibility", "classrooms", "owner",
                  "latest_version", "share_url", "created", "updated"]
        read_only_fields = fields

    def get_latest_version(self, template: Template) -> int | None:
        version = template.latest_version()
        return version.number if version else None

    def get_share_url(self, template: Template) -> str | None:
        """Only the owner sees the share link of a link template."""
        request = self.context.get("request")
        if template.visibility != Visibility.LINK or request is None or request.user.pk != template.owner_id:
            return None
        return f"/t/{template.share_token}/"


class TemplateDetailSerializer(TemplateSerializer):
    instructions_html = serializers.SerializerMethodField()
    versions = TemplateVersionSerializer(many=True, read_only=True)

    class Meta(TemplateSerializer.Meta):
        fields = TemplateSerializer.Meta.fields + ["instructions_html", "versions"]
        read_only_fields = fields

    def get_instructions_html(self, template: Template) -> str:
        from ..markdown import render_markdown

        return render_markdown(template.instructions)


class PublishSerializer(StrictSerializer):
    lab = serializers.PrimaryKeyRelatedField(queryset=Lab.objects.all(), help_text="One of your labs")
    title = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    instructions = serializers.CharField(required=False, allow_blank=True, default="",
                                         help_text="Markdown; raw HTML is shown as text")
    visibility = serializers.ChoiceField(choices=Visibility.choices, default=Visibility.CLASS)
    classrooms = serializers.PrimaryKeyRelatedField(queryset=Classroom.objects.all(), many=True, required=False,
                                                    help_text="Classes you instruct (needed for `class`)")


class PublishAgainSerializer(StrictSerializer):
    lab = serializers.PrimaryKeyRelatedField(queryset=Lab.objects.all(), required=False,
                                             help_text="Default: the lab the template was published from")
    title = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    instructions = serializers.CharField(required=False, allow_blank=True)


class ClassroomCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)


class ClassroomUpdateSerializer(StrictSerializer):
    uplink_bridges = serializers.ListField(child=serializers.CharField(max_length=15), required=False,
                                           help_text="Host bridges members may attach labs to")


class InviteCreateSerializer(StrictSerializer):
    max_uses = serializers.IntegerField(min_value=1, default=50)
    expires = serializers.DateTimeField(required=False, allow_null=True)


class InstructionsSerializer(serializers.Serializer):
    template = serializers.CharField(allow_null=True)
    template_id = serializers.IntegerField(allow_null=True)
    version = serializers.IntegerField(allow_null=True)
    markdown = serializers.CharField()
    html = serializers.CharField(help_text="Rendered Markdown; raw HTML and unsafe URLs are escaped or dropped")


class StartedLabSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    lab_id = serializers.CharField()
    name = serializers.CharField()
    url = serializers.CharField(help_text="The lab's editor page")
