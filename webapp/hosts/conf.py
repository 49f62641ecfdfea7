"""The hosts settings (webapp/settings.py reads and checks them from TOPOLAB_* variables)."""
from __future__ import annotations

import os

from django.conf import settings


def this_host() -> str:
    return settings.TOPOLAB_HOST


def underlay_address() -> str:
    return settings.TOPOLAB_UNDERLAY_ADDRESS


def heartbeat_interval() -> float:
    return float(getattr(settings, "TOPOLAB_HEARTBEAT_INTERVAL", 5))


def down_after() -> float:
    return float(getattr(settings, "TOPOLAB_HOST_DOWN_AFTER", 15))


def host_queue() -> str:
    """This host's own Celery queue."""
    from webapp.runs.parts import host_queue

    return host_queue(this_host())


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 0


def memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("topolab")
    except metadata.PackageNotFoundError:
        import netops

        return netops.__version__
