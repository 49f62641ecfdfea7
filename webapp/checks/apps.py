from __future__ import annotations

from django.apps import AppConfig


class ChecksConfig(AppConfig):
    """Lab checks (issue 16): running a lab's checks as a run, their stored results, class scores."""

    name = "webapp.checks"
    label = "checks"
    default_auto_field = "django.db.models.BigAutoField"
