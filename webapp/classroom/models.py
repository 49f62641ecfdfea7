"""Classes, invite codes, published lab templates (with frozen versions), lab origins and quotas."""
from __future__ import annotations

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from webapp.labs.models import Lab


def new_token(nbytes: int = 9) -> str:
    return secrets.token_urlsafe(nbytes)


class Classroom(models.Model):
    """A class: its instructors see and run their members' labs; members see only their own."""

    name = models.CharField(max_length=100)
    instructors = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="taught_classes", blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="classes", blank=True)
    uplink_bridges = models.JSONField(
        default=list, blank=True,
        help_text="Host bridges its members (students) may attach labs to; only bridges the operator allows "
                  "(TOPOLAB_UPLINK_BRIDGES) count")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [models.UniqueConstraint(fields=["name"], name="classroom_classroom_unique_name")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from webapp.labs.uplinks import server_bridges

        bridges = self.uplink_bridges
        if not isinstance(bridges, list) or not all(isinstance(b, str) for b in bridges):
            raise ValidationError({"uplink_bridges": "a list of bridge names"})
        unknown = [b for b in bridges if b not in server_bridges()]
        if unknown:
            raise ValidationError({"uplink_bridges": f"not bridges labs may use on this server: {', '.join(unknown)}"})


class InviteCode(models.Model):
    """A code that signs a new user up as a member of `classroom`, until it expires or is used up."""

    code = models.CharField(max_length=32, default=new_token)
    classroom = models.ForeignKey(Classroom, on_delete=models.CASCADE, related_name="invite_codes")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    expires = models.DateTimeField(null=True, blank=True, help_text="Empty: never")
    max_uses = models.PositiveIntegerField(default=50)
    uses = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["code"], name="classroom_invitecode_unique_code"),
            models.CheckConstraint(condition=models.Q(uses__lte=models.F("max_uses")),
                                   name="classroom_invitecode_uses_within_max"),
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.classroom})"

    def clean(self) -> None:
        if self.max_uses < 1:
            raise ValidationError({"max_uses": "must be at least 1"})

    def unusable_reason(self, now=None) -> str | None:
        """Why the code cannot be used now, or None when it can."""
        now = now or timezone.now()
        if self.expires is not None and self.expires <= now:
            return "this invite code has expired"
        if self.uses >= self.max_uses:
            return "this invite code has been used up"
        return None


class Visibility(models.TextChoices):
    CLASS = "class", "My classes"
    PUBLIC = "public", "Everybody on this server"
    LINK = "link", "Anyone with the share link"


class Template(models.Model):
    """A lab an instructor published. Its content lives in frozen TemplateVersions; the latest is cloned."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lab_templates")
    title = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    instructions = models.TextField(blank=True, default="", help_text="Markdown, shown beside the canvas")
    visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.CLASS)
    classrooms = models.ManyToManyField(Classroom, related_name="templates", blank=True)
    share_token = models.CharField(max_length=32, default=new_token, editable=False)
    source_lab = models.ForeignKey(Lab, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                                   help_text="The lab publishing again takes the document from")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title", "pk"]
        constraints = [models.UniqueConstraint(fields=["share_token"], name="classroom_template_unique_token")]

    def __str__(self) -> str:
        return self.title

    def latest_version(self) -> TemplateVersion | None:
        return self.versions.order_by("-number").first()


class TemplateVersion(models.Model):
    """One publication of a template: the document and instructions as they were, never changed after."""

    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    document = models.JSONField()
    instructions = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["template", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["template", "number"], name="classroom_templateversion_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.template} v{self.number}"


class LabOrigin(models.Model):
    """Which template version a lab was started from (kept when the template is published again)."""

    lab = models.OneToOneField(Lab, on_delete=models.CASCADE, primary_key=True, related_name="origin")
    template_version = models.ForeignKey(TemplateVersion, on_delete=models.CASCADE, related_name="labs")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.lab} from {self.template_version}"


class Quota(models.Model):
    """Limits for one user or one class; an empty limit falls back to the operator default (settings). Staff
    accounts get no operator defaults: only the limits of a row made for them."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True,
                                related_name="quota")
    classroom = models.OneToOneField(Classroom, on_delete=models.CASCADE, null=True, blank=True,
                                     related_name="quota")
    running_labs = models.PositiveIntegerField(null=True, blank=True)
    nodes = models.PositiveIntegerField(null=True, blank=True, help_text="Nodes in running labs")
    vms = models.PositiveIntegerField(null=True, blank=True, help_text="VMs in running labs")
    vm_memory = models.PositiveIntegerField(null=True, blank=True, help_text="MiB of VM memory in running labs")

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(user__isnull=False, classroom__isnull=True)
                           | models.Q(user__isnull=True, classroom__isnull=False)),
                name="classroom_quota_user_xor_classroom",
            ),
        ]

    def __str__(self) -> str:
        return f"quota of {self.user or self.classroom}"

    def clean(self) -> None:
        if (self.user_id is None) == (self.classroom_id is None):
            raise ValidationError({"user": "a quota is for one user or for one class"})
