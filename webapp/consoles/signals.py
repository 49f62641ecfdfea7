"""A deleted capture (with its lab, or by the retention sweep) has its file deleted by the agent, which owns it."""
from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import Capture

log = logging.getLogger(__name__)


@receiver(post_delete, sender=Capture)
def _delete_file_later(sender, instance: Capture, **kwargs) -> None:
    capture_id, host = instance.pk, instance.host
    transaction.on_commit(lambda: _enqueue([capture_id], host))


def _enqueue(ids: list[int], host: str = "") -> None:
    from webapp.runs.parts import host_queue
    from webapp.runs.services import agent_queue

    from . import tasks

    try:  # the agent of the host that holds the file (a capture that never ran has none: any agent)
        tasks.delete_capture_files.apply_async((ids,), queue=host_queue(host) if host else agent_queue())
    except Exception:  # noqa: BLE001 - the periodic prune deletes it anyway
        log.warning("could not ask the agent to delete capture files %s; the next prune will", ids)
