"""The smallest agent task: proves broker, worker and result backend are wired."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="webapp.core.tasks.ping")
def ping() -> str:
    return "pong"
