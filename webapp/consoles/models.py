"""Audit log of console and capture sessions, and the captures themselves."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class ConsoleSession(models.Model):
    """Who opened a console (or started a capture) on which node of which lab, and when it ended."""

    class Kind(models.TextChoices):
        CONSOLE = "console", "console"
        CAPTURE = "capture", "capture"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                             related_name="console_sessions")
    username = models.CharField(max_length=150)  # kept when the user is deleted
    lab = models.ForeignKey("labs.Lab", on_delete=models.SET_NULL, null=True, related_name="console_sessions")
    lab_ref = models.CharField(max_length=8)  # the lab id, kept when the lab is deleted
    node = models.CharField(max_length=64)  # node name, or the captured endpoint's label
    kind = models.CharField(max_length=10, choices=Kind.choices)
    started = models.DateTimeField(auto_now_add=True)
    ended = models.DateTimeField(null=True, blank=True)
    bytes_in = models.BigIntegerField(default=0)  # typed by the user (console) / 0 (capture)
    bytes_out = models.BigIntegerField(default=0)  # shown to the user (console) / pcap size (capture)
    reason = models.CharField(max_length=200, blank=True, default="")  # why it ended (or was refused)

    class Meta:
        ordering = ["-started", "-pk"]
        indexes = [models.Index(fields=["user", "ended"], name="consoles_session_open")]

    def __str__(self) -> str:
        return f"{self.kind} {self.username}@{self.lab_ref}/{self.node}"


class Capture(models.Model):
    """A tcpdump on one link or node interface of a deployed lab, written to `conf.capture_path(id)` on `host`."""

    class Status(models.TextChoices):
        STARTING = "starting", "starting"
        RUNNING = "running", "running"
        STOPPED = "stopped", "stopped"
        FAILED = "failed", "failed"

    lab = models.ForeignKey("labs.Lab", on_delete=models.CASCADE, related_name="captures")
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                                   related_name="captures")
    session = models.OneToOneField(ConsoleSession, on_delete=models.SET_NULL, null=True, related_name="capture")
    link = models.IntegerField(null=True, blank=True)  # index in the document's links, or
    node = models.CharField(max_length=64, blank=True, default="")  # a node interface
    interface = models.CharField(max_length=15, blank=True, default="")
    label = models.CharField(max_length=200, blank=True, default="")  # what the agent captured, for people
    filter = models.CharField(max_length=256, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STARTING)
    message = models.CharField(max_length=500, blank=True, default="")
    max_bytes = models.BigIntegerField()
    max_seconds = models.IntegerField()
    size = models.BigIntegerField(default=0)
    packets = models.IntegerField(default=0)
    agent_channel = models.CharField(max_length=200, blank=True, default="")  # the agent running it
    # the lab host whose stream agent runs it and holds its file (TOPOLAB_HOST, from the agent's answer to the start);
    # "" until it started. The download and the live list's backlog come from that host's stream agent.
    host = models.CharField(max_length=63, blank=True, default="")
    started = models.DateTimeField(auto_now_add=True)
    ended = models.DateTimeField(null=True, blank=True)

    ACTIVE = (Status.STARTING, Status.RUNNING)

    class Meta:
        ordering = ["-started", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(link__isnull=False, node="") | models.Q(link__isnull=True) & ~models.Q(node="")),
                name="consoles_capture_link_or_node",
            ),
        ]

    def __str__(self) -> str:
        return f"capture {self.pk} of {self.lab_id}: {self.label or self.endpoint}"

    @property
    def endpoint(self) -> str:
        return f"links.{self.link}" if self.link is not None else f"{self.node}:{self.interface}"

    @property
    def group(self) -> str:
        """Channel-layer group of the live packet list."""
        return f"capture-{self.pk}"
