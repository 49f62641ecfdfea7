"""Agent task: delete the pcap files of captures that are gone (their lab was deleted). Ids only."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="webapp.consoles.tasks.delete_capture_files", soft_time_limit=50, time_limit=60)
def delete_capture_files(capture_ids: list[int]) -> int:
    from . import retention

    return retention.delete_files(capture_ids)
