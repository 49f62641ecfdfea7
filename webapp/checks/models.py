"""The stored result of one run of a lab's checks (netops.labchecks.score): score and per-check outcomes."""
from __future__ import annotations

from django.db import models

from webapp.labs.models import Lab


class CheckResult(models.Model):
    """One run of a lab's checks. `outcomes` holds every check's outcome in full (what was seen); who may read
    which part is decided by webapp.checks.services.visible_result."""

    class Source(models.TextChoices):
        DOCUMENT = "document"  # the lab's own `checks:`
        TEMPLATE = "template"  # the frozen checks of the template version the lab was started from

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="check_results")
    run = models.OneToOneField("runs.Run", on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="check_result")
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.DOCUMENT)
    earned = models.PositiveIntegerField(default=0)
    possible = models.PositiveIntegerField(default=0)
    percent = models.FloatField(default=0.0)
    outcomes = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-pk"]
        indexes = [models.Index(fields=["lab", "-created"], name="checks_result_lab_created")]

    def __str__(self) -> str:
        return f"checks of {self.lab_id}: {self.earned}/{self.possible}"
