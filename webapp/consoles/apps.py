from __future__ import annotations

from django.apps import AppConfig


class ConsolesConfig(AppConfig):
    """Consoles and packet captures in the browser; the bytes are served by the agent (webapp.agent)."""

    name = "webapp.consoles"
    label = "consoles"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Consoles and captures"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (files of deleted captures)
