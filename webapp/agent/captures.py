"""The stream agent's captures: tcpdump started through netops.capture, its file tailed into live packet summaries
for the capture's group, and its record closed when it ends (webapp.agent.service routes the messages here)."""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from django.conf import settings
from django.utils import timezone

from netops import capture as netcapture
from netops import cell as netcell
from netops import naming
from netops.errors import ApplyError, NetopsError, TopologyError
from webapp.consoles import conf
from webapp.consoles.models import Capture, ConsoleSession

log = logging.getLogger("topolab.agent")
TAIL_INTERVAL = 0.25
MIN_FREE_BYTES = 64 * 1024  # below this the capture's file system counts as full: the capture ends, saying so
LIVE_BATCH = 200  # packets per live message; more per interval are counted, not listed


@dataclass
class Running:
    capture: int
    lab: str
    group: str
    session: int | None
    max_bytes: int
    max_seconds: int
    started: float = field(default_factory=time.monotonic)
    task: asyncio.Task | None = None
    reason: str = ""


class CaptureStreams:
    """The capture half of the agent (mixed into webapp.agent.service.Agent, whose layer and channels it uses)."""

    layer: Any
    channel: str
    captures: dict[int, Running]

    if TYPE_CHECKING:
        async def send(self, channel: str, message: dict) -> None: ...


    async def capture_start(self, m: dict) -> dict:
        try:
            cap_id = int(m["capture"])
            lab = naming.check_lab_id(str(m["lab"]))
            if cap_id in self.captures:
                return {"ok": False, "message": "this capture already runs"}
            point = await asyncio.to_thread(self._prepare_capture, cap_id, lab, m)
        except TopologyError as exc:
            first = exc.problems[0]
            return {"ok": False, "message": first.message, "path": first.path}
        except (NetopsError, OSError, KeyError, ValueError) as exc:
            return {"ok": False, "message": str(exc)}
        running = Running(cap_id, lab, str(m.get("group") or f"capture-{cap_id}"), m.get("session"),
                          int(m.get("max_bytes") or conf.capture_max_bytes()),
                          int(m.get("max_seconds") or conf.capture_max_seconds()))
        self.captures[cap_id] = running
        running.task = asyncio.ensure_future(self._tail(running))
        log.info("capture %s on %s (%s %s)", cap_id, point.label, point.namespace, point.ifname)
        return {"ok": True, "label": point.label, "agent": self.channel, "host": settings.TOPOLAB_HOST}

    def _prepare_capture(self, cap_id: int, lab: str, m: dict) -> netcapture.CapturePoint:
        """Blocking part of a start: resolve the point from the DEPLOYED document, compile the filter, make the
        file tcpdump (dropped to its user) may write and nobody else but root may read, start tcpdump."""
        topology = netcapture.deployed_topology(lab)
        link = m.get("link")
        point = netcapture.capture_point(topology, lab, link=link if isinstance(link, int) else None,
                                         node=m.get("node") if link is None else None,
                                         interface=m.get("interface") if link is None else None)
        bpf = netcapture.check_filter(m.get("filter") or "")
        netcapture.compile_filter(point, bpf)
        directory = conf.capture_dir()
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o711)  # enter, not list: tcpdump's user and the web tier open known names only
        max_bytes = int(m.get("max_bytes") or conf.capture_max_bytes())
        free = shutil.disk_usage(directory).free
        if free < max_bytes:  # refused now, not a tcpdump that dies at its first packet
            raise ApplyError(f"no space for the capture: its file system has {free} bytes free, less than the "
                             f"capture's limit of {max_bytes} bytes")
        path = conf.capture_path(cap_id)
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        cell = netcell.get(lab)
        if cell is None:
            raise ApplyError(f"lab {lab} is not deployed on this host", element="lab")
        try:  # tcpdump writes it as the lab's uid; only this agent reads it (it serves downloads, capture_read)
            os.fchown(fd, cell.uid, 0)
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        log_path = netcell.cell_dir(lab) / f"capture-{cap_id}.log"
        netcapture.start(lab, cap_id, point, path, bpf, log_path=log_path, max_bytes=max_bytes)
        return point

    async def _tail(self, r: Running) -> None:
        """Follow the growing pcap: packets to the live list, limits enforced, end noticed (lab destroyed)."""
        path = conf.capture_path(r.capture)
        reader = netcapture.PcapReader()
        offset = 0
        reason = ""
        try:
            with open(path, "rb") as f:
                while not reason:
                    await asyncio.sleep(TAIL_INTERVAL)
                    alive = bool(await asyncio.to_thread(netcapture.running, r.lab, r.capture))
                    f.seek(offset)
                    # never past the limit: the live list shows what the (truncated) file keeps
                    data = f.read(r.max_bytes - offset) if offset < r.max_bytes else b""
                    offset += len(data)
                    packets = reader.feed(data) if data else []
                    if packets:
                        await self._publish(r, packets, reader.count, offset)
                    if offset >= r.max_bytes:
                        reason = f"size limit reached ({r.max_bytes} bytes)"
                    elif time.monotonic() - r.started >= r.max_seconds:
                        reason = f"time limit reached ({r.max_seconds} s)"
                    elif await asyncio.to_thread(_full, path):  # tcpdump would go on, dropping every packet
                        reason = "no space left on the capture's file system (it is full)"
                    elif not alive:
                        reason = await asyncio.to_thread(_ended, r)
        except asyncio.CancelledError:
            raise
        except (OSError, ValueError) as exc:
            reason = f"cannot read the capture: {exc}"
        if r.capture in self.captures:
            await self.capture_end(r, reason)

    async def _publish(self, r: Running, packets: list, total: int, size: int) -> None:
        shown = [p.as_dict() for p in packets[-LIVE_BATCH:]]
        try:
            await self.layer.group_send(r.group, {"type": "capture.packets", "packets": shown})
            await self.layer.group_send(r.group, {"type": "capture.state", "status": "running", "size": size,
                                                  "packets": total})
        except ChannelFull:
            pass  # a slow viewer misses live rows; the file has them all
        await database_sync_to_async(_progress)(r.capture, size, total)

    async def capture_end(self, r: Running, reason: str) -> None:
        if self.captures.pop(r.capture, None) is None:
            return
        if r.task is not None and r.task is not asyncio.current_task():
            r.task.cancel()
        await asyncio.to_thread(netcapture.stop, r.lab, r.capture)
        path = conf.capture_path(r.capture)
        try:
            size = await asyncio.to_thread(netcapture.truncate_pcap, path, r.max_bytes)
            count = len(await asyncio.to_thread(netcapture.read_pcap, path))
        except (OSError, ValueError):
            size, count = 0, 0
        await database_sync_to_async(_finish)(r.capture, r.session, reason, size, count)
        await self.layer.group_send(r.group, {"type": "capture.state", "status": "stopped", "size": size,
                                              "packets": count, "message": reason})
        log.info("capture %s ended: %s", r.capture, reason)


def _full(path: os.PathLike[str] | str) -> bool:
    """Whether the capture file's file system has (next to) no space left for it."""
    st = os.statvfs(os.path.dirname(path))
    return st.f_bavail * st.f_frsize < MIN_FREE_BYTES


def _ended(r: Running) -> str:
    """Why tcpdump ended by itself: its own last complaint (`No space left on device`), else the lab is gone."""
    try:
        text = netcell.read_text(r.lab, netcell.cell_dir(r.lab) / f"capture-{r.capture}.log", limit=64 << 10) or ""
    except (OSError, NetopsError):  # the lab's cell is gone with the lab
        text = ""
    said = [line.strip() for line in text.splitlines() if line.startswith("tcpdump:")]
    return f"tcpdump ended: {said[-1][len('tcpdump:'):].strip()}"[:300] if said else \
        "tcpdump ended (the lab was destroyed?)"


def _progress(capture: int, size: int, packets: int) -> None:
    Capture.objects.filter(pk=capture).update(size=size, packets=packets)


def _finish(capture: int, session: int | None, reason: str, size: int, packets: int) -> None:
    Capture.objects.filter(pk=capture, status__in=Capture.ACTIVE).update(
        status=Capture.Status.STOPPED, message=reason[:500], size=size, packets=packets, ended=timezone.now())
    if session:
        ConsoleSession.objects.filter(pk=session, ended__isnull=True).update(
            ended=timezone.now(), reason=reason[:200], bytes_out=size)


def forget_orphans() -> None:
    """A previous agent's tcpdumps outlived it: stop them and close their records (nothing follows them now). Only
    this host's: another host's captures run on under their own agent (a row with no host yet is still starting,
    and before hosts were recorded every capture was this host's)."""
    mine = Capture.objects.filter(status__in=Capture.ACTIVE, host__in=(settings.TOPOLAB_HOST, ""))
    for cap in mine.select_related("lab"):
        try:
            netcapture.stop(cap.lab.lab_id, cap.pk)
        except NetopsError as exc:
            log.error("capture %s: %s", cap.pk, exc)
        _finish(cap.pk, cap.session_id, "the agent restarted", cap.size, cap.packets)
