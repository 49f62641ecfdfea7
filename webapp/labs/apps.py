from __future__ import annotations

from django.apps import AppConfig


class LabsConfig(AppConfig):
    """Labs: the topology documents users draw, their REST API and the editor pages."""

    name = "webapp.labs"
    label = "labs"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Labs"
