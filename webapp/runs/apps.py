from __future__ import annotations

from django.apps import AppConfig


class RunsConfig(AppConfig):
    """Runs: deploy and destroy of labs on the agent, their events, and live status over WebSockets."""

    name = "webapp.runs"
    label = "runs"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Runs"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (worker_ready recovery, periodic health check)
