"""A lab host: one agent (Celery worker and stream agent) as it last announced itself."""
from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils import timezone

from . import conf


class Host(models.Model):
    """One row per agent, written by the agent itself (webapp.hosts.heartbeat) at its start and every
    TOPOLAB_HEARTBEAT_INTERVAL seconds; `up` while the last heartbeat is at most TOPOLAB_HOST_DOWN_AFTER old."""

    name = models.CharField(max_length=63, unique=True, help_text="TOPOLAB_HOST; the agent's queue is agent.<name>")
    underlay_address = models.GenericIPAddressField(protocol="IPv4", help_text="TOPOLAB_UNDERLAY_ADDRESS")
    cpus = models.PositiveIntegerField(default=0)
    memory_bytes = models.PositiveBigIntegerField(default=0)
    nodes_running = models.PositiveIntegerField(default=0)
    version = models.CharField(max_length=40, blank=True)
    first_seen = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(default=timezone.now)
    # When an agent's check found this host's heartbeats stopped and failed its parts of runs; cleared by the
    # host's next heartbeat.
    down_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def up(self) -> bool:
        return self.last_heartbeat >= timezone.now() - timedelta(seconds=conf.down_after())
