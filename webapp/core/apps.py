from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The front page, health check and the project's smallest Celery task."""

    name = "webapp.core"
    label = "core"
    default_auto_field = "django.db.models.BigAutoField"
