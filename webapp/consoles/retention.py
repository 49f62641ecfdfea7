"""Captures do not fill the disk: their files go with their lab, and after a retention period.

Runs in the agent (root): the pcap files live in conf.capture_dir() of their host, which the web tier neither
reads nor writes (downloads come from the host's stream agent, webapp.agent.pcaps).
File names are derived from capture ids only (conf.capture_path), never from stored or user text.
"""
from __future__ import annotations

import logging
import re
from datetime import timedelta

from django.utils import timezone

from . import conf
from .models import Capture

log = logging.getLogger("topolab.retention")
PCAP_NAME = re.compile(r"capture-([0-9]{1,18})\.pcap")


def delete_files(capture_ids) -> int:
    """Delete the pcap files of these captures if no Capture row has the id any more; returns files deleted."""
    ids = {int(i) for i in capture_ids}
    alive = set(Capture.objects.filter(pk__in=ids).values_list("pk", flat=True))
    deleted = 0
    for capture_id in sorted(ids - alive):
        try:
            conf.capture_path(capture_id).unlink()
            deleted += 1
        except FileNotFoundError:
            pass
    return deleted


def prune_captures(now=None) -> int:
    """Captures that ended more than conf.capture_retention_seconds() ago lose their row and file; files whose
    capture row is gone (its lab was deleted) are deleted. Returns the files deleted."""
    now = now or timezone.now()
    expired = Capture.objects.exclude(status__in=Capture.ACTIVE).filter(
        ended__lt=now - timedelta(seconds=conf.capture_retention_seconds()))
    ids = list(expired.values_list("pk", flat=True))
    expired.delete()
    directory = conf.capture_dir()
    on_disk = []
    if directory.is_dir():
        on_disk = [int(m.group(1)) for p in directory.iterdir() if (m := PCAP_NAME.fullmatch(p.name))]
    deleted = delete_files(set(ids) | set(on_disk))
    if deleted:
        log.info("retention: deleted %d capture files", deleted)
    return deleted
