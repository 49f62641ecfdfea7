"""The stream agent serves the pcap files of this host's captures to the web tier, which reads no capture file
itself (it may run on another machine than the capture, and it is unprivileged): a download chunk by chunk
(`capture.read`), and the live list's backlog (`capture.backlog`). webapp.consoles.services asks; this answers.

Only a capture whose row names this host (Capture.host == TOPOLAB_HOST) is served, and only its file in this host's
capture directory, named from the capture id alone (conf.capture_path): nothing from a message becomes a path. A
message's capture must be an integer; anything else (a path, a string) is refused with a message and no data.

    capture.read    {"capture": id, "offset": n, "size": n, "reply": channel}
                    -> {"ok": true, "capture", "offset", "data": bytes, "size": the file's size now}
    capture.backlog {"capture": id, "last": n, "reply": channel}
                    -> {"ok": true, "capture", "packets": [the last n packet summaries]}
    refused / file gone -> {"ok": false, "capture", "message", "gone": bool}
"""
from __future__ import annotations

import asyncio
import collections
import logging
import os
import stat
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from django.conf import settings

from netops import capture as netcapture
from webapp.consoles import conf
from webapp.consoles.models import Capture

log = logging.getLogger("topolab.agent")
CHUNK_MAX = 1024 * 1024  # the most one answer carries, whatever a request asks
BACKLOG_MAX = 5000
PARALLEL = 8  # reads served at once (each is one chunk; a download asks for at most a few ahead)


class Refused(Exception):
    def __init__(self, message: str, *, gone: bool = False) -> None:
        super().__init__(message)
        self.gone = gone


class PcapServer:
    """The pcap half of the agent (mixed into webapp.agent.service.Agent, whose layer it uses)."""

    layer: Any

    def _pcap_init(self) -> None:
        self.own_captures: set[int] = set()  # ids whose row names this host (a row's host never changes)
        self.reads = asyncio.Semaphore(PARALLEL)
        self.serving: set[asyncio.Task] = set()  # held, so a task in flight is not garbage-collected

    def serve_pcap(self, m: dict) -> None:
        """Answer a capture.read or capture.backlog in a task of its own: the loop goes on with consoles while the
        disk is read, and one slow download does not hold up another's."""
        task = asyncio.ensure_future(self._serve(m))
        self.serving.add(task)
        task.add_done_callback(self.serving.discard)

    async def _serve(self, m: dict) -> None:
        reply = m.get("reply")
        if not isinstance(reply, str) or not reply:
            return
        cap = m.get("capture")
        async with self.reads:
            try:
                cap_id = await self._own(cap)
                if m.get("type") == "capture.read":
                    answer = await asyncio.to_thread(_read, cap_id, m.get("offset"), m.get("size"))
                else:
                    answer = await asyncio.to_thread(_backlog, cap_id, m.get("last"))
            except Refused as exc:
                answer = {"ok": False, "message": str(exc), "gone": exc.gone}
            except (OSError, ValueError) as exc:
                answer = {"ok": False, "message": f"capture {cap}: cannot read its pcap file on host "
                                                  f"{settings.TOPOLAB_HOST}: {exc}", "gone": False}
        try:
            await self.layer.send(reply, {"type": "agent.reply", "capture": cap if isinstance(cap, int) else None,
                                          **answer})
        except ChannelFull:
            log.info("capture %s: the web tier's channel is full; answer dropped", cap)

    async def _own(self, cap: object) -> int:
        """The capture id if it is a capture of this host; else Refused."""
        if not isinstance(cap, int) or isinstance(cap, bool) or not 0 < cap < 2**63:
            raise Refused(f"capture {str(cap)[:40]!r}: not a capture id")
        if cap in self.own_captures:
            return cap
        host = await database_sync_to_async(_host_of)(cap)
        if host is None:
            raise Refused(f"capture {cap}: no such capture", gone=True)
        if host != settings.TOPOLAB_HOST:
            raise Refused(f"capture {cap}: it is not on host {settings.TOPOLAB_HOST} but on {host or 'no host'}")
        if len(self.own_captures) > 10000:
            self.own_captures.clear()
        self.own_captures.add(cap)
        return cap


def _host_of(cap: int) -> str | None:
    return Capture.objects.filter(pk=cap).values_list("host", flat=True).first()


def _open(cap: int) -> int:
    """An fd of the capture's file: a regular file in this host's capture dir, never through a symlink."""
    try:
        fd = os.open(conf.capture_path(cap), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise Refused(f"capture {cap}: its pcap file is gone from host {settings.TOPOLAB_HOST}", gone=True) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Refused(f"capture {cap}: its pcap file on host {settings.TOPOLAB_HOST} is not a regular file")
    return fd


def _read(cap: int, offset: object, size: object) -> dict:
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise Refused(f"capture {cap}: offset must be a whole number of bytes")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise Refused(f"capture {cap}: size must be a positive number of bytes")
    fd = _open(cap)
    try:
        total = os.fstat(fd).st_size
        data = os.pread(fd, min(size, CHUNK_MAX), offset)
    finally:
        os.close(fd)
    return {"ok": True, "offset": offset, "data": data, "size": total}


def _backlog(cap: int, last: object) -> dict:
    if not isinstance(last, int) or isinstance(last, bool) or not 0 < last <= BACKLOG_MAX:
        raise Refused(f"capture {cap}: last must be 1-{BACKLOG_MAX} packets")
    reader, packets = netcapture.PcapReader(), collections.deque(maxlen=last)
    try:
        with os.fdopen(_open(cap), "rb") as f:  # as netcapture.read_pcap, keeping only the last ones
            while chunk := f.read(65536):
                packets.extend(reader.feed(chunk))
    except ValueError as exc:
        raise Refused(f"capture {cap}: its pcap file is not readable: {exc}") from None
    return {"ok": True, "packets": [p.as_dict() for p in packets]}
