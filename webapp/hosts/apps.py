from __future__ import annotations

from django.apps import AppConfig


class HostsConfig(AppConfig):
    """Lab hosts: one row per agent, kept by its heartbeat; hosts whose heartbeats stopped are down."""

    name = "webapp.hosts"
    label = "hosts"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Lab hosts"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (the worker's host queue and heartbeat)
