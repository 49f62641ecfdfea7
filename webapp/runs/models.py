"""Runs (one deploy or destroy of a lab), the events they produce, and each lab's last known deploy state."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from webapp.labs.models import Lab


class Run(models.Model):
    """One deploy or destroy of a lab, executed by the agent. At most one queued/running run per lab."""

    class Kind(models.TextChoices):
        DEPLOY = "deploy"
        DESTROY = "destroy"
        CHECK = "check"  # run the lab's checks (webapp.checks); `document` holds {"checks", "source"}
        RESET = "reset"  # destroy, then deploy `document` (a template version again: webapp.checks)
        ACTION = "action"  # a node or link action on the running lab (netops.actions): stop, link down, ...

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    # The Celery task id, chosen before enqueueing, so worker-start recovery can ask whether it still runs.
    task_id = models.CharField(max_length=36, default=uuid.uuid4, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    error_element = models.CharField(max_length=300, blank=True, default="",
                                     help_text="Document path of the element the error concerns")
    # A deploy runs exactly the document that was validated and counted against the quotas when it was
    # started (not whatever the lab holds when the agent picks the run up), and says which version that was.
    document = models.JSONField(null=True, blank=True, help_text="The validated document this deploy applies")
    lab_version = models.PositiveIntegerField(null=True, blank=True, help_text="The lab's version of `document`")
    # An action run's request, checked against the running document when it was started (netops.actions.run)
    action = models.JSONField(null=True, blank=True, help_text="What an action run does: {action, node|link, ...}")
    # A run across hosts (webapp.runs.parts): what every host needs for the lab's segments that cross hosts, and
    # each host's part of the run. Both empty for a lab on one host.
    span = models.JSONField(null=True, blank=True,
                            help_text="Cross-host segments: {placement, underlays, vnis, mtu} (webapp.runs.parts)")
    parts = models.JSONField(default=dict, blank=True,
                             help_text="Each host's part: {host: {status, task_id, error, element}}")

    class Meta:
        ordering = ["-created", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["lab"], condition=models.Q(status__in=["queued", "running"]),
                name="runs_run_one_active_per_lab",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of {self.lab_id} #{self.pk} ({self.status})"

    @property
    def active(self) -> bool:
        return self.status in self.ACTIVE


class OrphanedLab(models.Model):
    """A lab the health check found in the kernel with no lab row to own it (deleted behind Topolab's back, or
    its owner's account deleted), and destroyed. Only ids this installation issued (LabId) are ever swept."""

    lab_id = models.CharField(max_length=8)
    found = models.DateTimeField(auto_now_add=True)
    removed = models.JSONField(default=list, blank=True, help_text="What destroy removed")
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-found", "-pk"]
        verbose_name = "orphaned lab removed by the health check"

    def __str__(self) -> str:
        return f"orphan {self.lab_id} ({self.found:%Y-%m-%d %H:%M})"


class SegmentVni(models.Model):
    """The VXLAN network identifier of one lab segment that crosses hosts (webapp.runs.parts.allocate_vnis).
    A row outlives its lab (lab set NULL): its VNI is never given to another segment."""

    lab = models.ForeignKey(Lab, on_delete=models.SET_NULL, null=True, blank=True, related_name="vnis")
    segment = models.CharField(max_length=200)
    vni = models.PositiveIntegerField(unique=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["vni"]
        verbose_name = "segment VNI"
        constraints = [models.UniqueConstraint(fields=["lab", "segment"], name="runs_segmentvni_unique_lab_segment")]

    def __str__(self) -> str:
        return f"VNI {self.vni}: {self.segment} of lab {self.lab_id}"


class RunEvent(models.Model):
    """One event of a lab (DESIGN.md "Events on the wire"). `seq` grows by one per lab, across runs."""

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="events")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, null=True, blank=True, related_name="events")
    seq = models.PositiveBigIntegerField()
    type = models.CharField(max_length=32)
    node = models.CharField(max_length=64, blank=True, default="")
    payload = models.JSONField(default=dict, blank=True)
    ts = models.DateTimeField()

    class Meta:
        ordering = ["lab", "seq"]
        constraints = [models.UniqueConstraint(fields=["lab", "seq"], name="runs_runevent_unique_lab_seq")]

    def __str__(self) -> str:
        return f"{self.lab_id}#{self.seq} {self.type}"

    def as_message(self) -> dict:
        """The JSON sent to browsers: {type, lab, run, seq, ts, node?, state?, message?, step?, total?, ...}."""
        message = {"type": self.type, "lab": self.lab_id, "run": self.run_id, "seq": self.seq,
                   "ts": self.ts.timestamp()}
        if self.node:
            message["node"] = self.node
        message.update(self.payload)
        return message


class LabState(models.Model):
    """What the agent last knew of a lab in the kernel: per-node states and the last event's seq.

    `deployed` is true from the first deploy until a destroy succeeds (kernel objects may exist).
    `deployed_document` / `deployed_version` are what the last deploy applied (quotas count them, the editor
    shows the version); both are cleared when the lab is destroyed or found gone from the kernel.
    """

    lab = models.OneToOneField(Lab, on_delete=models.CASCADE, primary_key=True, related_name="deploy_state")
    deployed = models.BooleanField(default=False)
    deployed_document = models.JSONField(null=True, blank=True)
    deployed_version = models.PositiveIntegerField(null=True, blank=True)
    nodes = models.JSONField(default=dict, blank=True)  # node name -> absent|starting|running|degraded|stopped|failed
    # links the user set down on the running lab (netops.actions), by their sorted endpoints joined by a space
    links = models.JSONField(default=dict, blank=True)  # "h1:eth0 sw" -> down
    last_seq = models.PositiveBigIntegerField(default=0)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["lab"]
        verbose_name = "lab deploy state"

    def __str__(self) -> str:
        return f"state of {self.lab_id}"

    @property
    def running(self) -> bool:
        """True when deployed and at least one node is running (the lab list's badge)."""
        return self.deployed and any(s in ("running", "degraded", "starting") for s in self.nodes.values())
