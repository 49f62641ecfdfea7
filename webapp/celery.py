"""The Celery app. Its worker is Topolab's agent: it runs as root and consumes the `agent` queue."""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("topolab")
# Every CELERY_* Django setting configures Celery (broker, JSON only, acks_late, time limits).
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
