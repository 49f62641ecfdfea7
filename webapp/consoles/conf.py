"""Settings of consoles and captures, each overridable in Django settings or by a TOPOLAB_* environment variable."""
from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings


def _get(name: str, default, cast=str):
    if hasattr(settings, name):
        return getattr(settings, name)
    raw = os.environ.get(f"TOPOLAB_{name}")
    return cast(raw) if raw is not None else default


def agent_channel(host: str | None = None) -> str:
    """The channel-layer channel every stream agent listens on, or (`host`) the one only that host's stream agent
    listens on: a console or capture of a node goes to the host that runs it (webapp.hosts, DESIGN.md
    "Scaling out")."""
    base = _get("AGENT_CHANNEL", "topolab-agent.default")
    return f"{base}.{host}" if host else base


def capture_dir() -> Path:
    """Where this host's stream agent has tcpdump write .pcap files (root's; the web tier never reads it: downloads
    and the live list's backlog come from the capture's host over the channel layer, webapp.agent.pcaps)."""
    return Path(_get("CAPTURE_DIR", settings.VAR_DIR / "captures", Path))


def capture_max_bytes() -> int:
    return int(_get("CAPTURE_MAX_BYTES", 10 * 1024 * 1024, int))


def capture_max_seconds() -> int:
    return int(_get("CAPTURE_MAX_SECONDS", 600, int))


def capture_retention_seconds() -> int:
    """A stopped capture (row and file) is deleted this long after it ended (default 7 days)."""
    return int(_get("CAPTURE_RETENTION_SECONDS", 7 * 86400, int))


def capture_max_running() -> int:
    """Running captures per user at once."""
    return int(_get("CAPTURE_MAX_RUNNING", 4, int))


def pcap_timeout() -> float:
    """Seconds the web tier waits for each answer of the capture host's stream agent to a pcap read (a chunk of a
    download, the live list's backlog) before it gives up and says so."""
    return float(_get("PCAP_TIMEOUT", 10.0, float))


def console_max_open() -> int:
    """Open consoles per user at once."""
    return int(_get("CONSOLE_MAX_OPEN", 16, int))


def console_idle_seconds() -> int:
    """The agent ends a console whose web side sent nothing (input or keepalive) for this long."""
    return int(_get("CONSOLE_IDLE_SECONDS", 90, int))


def capture_path(capture_id: int) -> Path:
    """The pcap file of a capture: derived from its id only, never from stored or user text."""
    return capture_dir() / f"capture-{int(capture_id)}.pcap"
