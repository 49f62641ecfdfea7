"""The stream agent's loop. Runs as root beside the Celery worker; the only place consoles and tcpdump start.

Where bytes flow::

    browser --WS--> daphne ConsoleConsumer --channel layer--> agent --pty / unix socket--> shell / qemu serial
    browser <--WS-- daphne ConsoleConsumer <--channel layer-- agent <--pty / unix socket-- shell / qemu serial

    REST start --ask--> agent --procs.spawn--> tcpdump -w var/captures/capture-<id>.pcap (tagged with the lab)
    agent tails the file -> summaries --group capture-<id>--> CaptureConsumer --WS--> browser's packet list

Requests arrive on the shared channel `conf.agent_channel()` (console.open, capture.start); everything that
belongs to an open console or a running capture is then sent to this agent's own channel (`self.channel`),
which it names in its replies. Nothing from a message reaches an argv before netops has checked it: node names
against NODE_NAME_RE and the deployed namespace's tag, capture endpoints against the deployed document.
"""
from __future__ import annotations

import asyncio
import grp
import logging
import os
import signal
import time
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from django.utils import timezone

from netops import capture as netcapture
from netops import cell as netcell
from netops import console as netconsole
from netops import naming
from netops.errors import ApplyError, NetopsError, TopologyError
from webapp.consoles import conf
from webapp.consoles.models import Capture, ConsoleSession

log = logging.getLogger("topolab.agent")
READ_SIZE = 64 * 1024
TAIL_INTERVAL = 0.25
LIVE_BATCH = 200  # packets per live message; more per interval are counted, not listed


@dataclass
class Console:
    session: int
    lab: str
    node: str
    reply: str  # the consumer's channel
    shell: netconsole.Shell | None = None
    vm: "VmLine | None" = None
    last_seen: float = field(default_factory=time.monotonic)
    task: asyncio.Task | None = None


@dataclass
class VmLine:
    """One connection to a VM's serial socket (qemu serves one client), shared by every console open on it."""

    key: tuple[str, str]
    sock: object
    consoles: set[int] = field(default_factory=set)
    task: asyncio.Task | None = None


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


class Agent:
    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.channel = ""
        self.consoles: dict[int, Console] = {}
        self.lines: dict[tuple[str, str], VmLine] = {}
        self.captures: dict[int, Running] = {}

    # -------------------------------------------------------------------------------------------- loop

    async def run(self) -> None:
        self.channel = await self.layer.new_channel()
        await database_sync_to_async(_forget_orphans)()
        log.info("stream agent listening on %s and %s", conf.agent_channel(), self.channel)
        loops = [asyncio.ensure_future(self._listen(conf.agent_channel())),
                 asyncio.ensure_future(self._listen(self.channel)),
                 asyncio.ensure_future(self._watchdog())]
        try:
            await asyncio.gather(*loops)
        finally:
            for task in loops:
                task.cancel()
            await self.shutdown()

    async def _listen(self, channel: str) -> None:
        while True:
            message = await self.layer.receive(channel)
            try:
                await self.dispatch(message)
            except Exception:  # noqa: BLE001 - one bad message must not stop the agent; it is logged with its cause
                log.exception("message %s failed", message.get("type"))

    async def dispatch(self, m: dict) -> None:
        kind = m.get("type")
        if kind == "console.open":
            await self.console_open(m)
        elif kind in ("console.input", "console.resize", "console.close", "console.ping"):
            c = self.consoles.get(m.get("session"))
            if c is None:
                return
            c.last_seen = time.monotonic()
            if kind == "console.input" and isinstance(m.get("data"), bytes):
                await self.console_input(c, m["data"])
            elif kind == "console.resize" and c.shell is not None:
                c.shell.resize(int(m["rows"]), int(m["cols"]))
            elif kind == "console.close":
                await self.console_end(c, "closed by the browser", notify=False)
        elif kind == "capture.start":
            await self.reply(m, await self.capture_start(m))
        elif kind == "capture.stop":
            running = self.captures.get(m.get("capture"))
            if running is not None:
                await self.capture_end(running, "stopped by the user")
            await self.reply(m, {"ok": True})
        elif kind == "agent.ping":
            await self.reply(m, {"ok": True, "agent": self.channel, "consoles": len(self.consoles),
                                 "captures": len(self.captures)})

    async def reply(self, m: dict, answer: dict) -> None:
        if isinstance(m.get("reply"), str):
            await self.layer.send(m["reply"], {"type": "agent.reply", **answer})

    async def send(self, channel: str, message: dict) -> None:
        """Send, waiting while the receiver's channel is full: back-pressure reaches the shell through the pty."""
        deadline = time.monotonic() + 30
        while True:
            try:
                return await self.layer.send(channel, message)
            except ChannelFull:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def _watchdog(self) -> None:
        """End consoles whose web side went silent (daphne died without closing them)."""
        while True:
            await asyncio.sleep(5)
            limit = conf.console_idle_seconds()
            for c in list(self.consoles.values()):
                if time.monotonic() - c.last_seen > limit:
                    await self.console_end(c, f"no keepalive from the web tier for {limit} s")

    async def shutdown(self) -> None:
        for c in list(self.consoles.values()):
            await self.console_end(c, "the agent stopped")
        for r in list(self.captures.values()):
            await self.capture_end(r, "the agent stopped")

    # -------------------------------------------------------------------------------------------- consoles

    async def console_open(self, m: dict) -> None:
        session, lab, node, reply = m.get("session"), m.get("lab"), m.get("node"), m.get("reply")
        if not isinstance(session, int) or not isinstance(reply, str) or session in self.consoles:
            return
        c = Console(session, str(lab), str(node), reply)
        try:
            naming.check_lab_id(c.lab)
            if m.get("vm"):
                await self._attach_vm(c)
            else:
                program = m.get("program", "shell")
                if program not in netconsole.KINDS:
                    raise NetopsError(f"no such console kind {program!r}")
                c.shell = await asyncio.to_thread(
                    netconsole.open_shell, c.lab, c.node, f"s{session}",
                    rows=int(m.get("rows", 24)), cols=int(m.get("cols", 80)), kind=program)
                c.task = asyncio.ensure_future(self._pump_shell(c))
        except NetopsError as exc:
            await database_sync_to_async(_end_session)(session, f"refused: {exc}")
            await self.send(reply, {"type": "console.error", "message": str(exc)})
            return
        self.consoles[session] = c
        log.info("console %s open on %s/%s", session, c.lab, c.node)
        hint = "press Enter for a prompt" if c.vm else ""
        await self.send(reply, {"type": "console.opened", "agent": self.channel, "message": hint})

    async def console_input(self, c: Console, data: bytes) -> None:
        if c.shell is not None:
            await asyncio.to_thread(c.shell.write, data)
        elif c.vm is not None:
            await asyncio.get_running_loop().sock_sendall(c.vm.sock, data)

    async def _pump_shell(self, c: Console) -> None:
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        fd = c.shell.fd
        loop.add_reader(fd, readable.set)
        reason = "the shell exited"
        try:
            while True:
                await readable.wait()
                readable.clear()
                data = c.shell.read(READ_SIZE)
                if data is None:
                    break
                if data:
                    loop.remove_reader(fd)  # while the browser's channel is full, the pty fills and the shell waits
                    try:
                        await self.send(c.reply, {"type": "console.output", "data": data})
                    finally:
                        loop.add_reader(fd, readable.set)
        except ChannelFull:
            reason = "the browser stopped reading"
        finally:
            try:
                loop.remove_reader(fd)
            except (ValueError, OSError):
                pass
        if c.session in self.consoles:
            await self.console_end(c, reason)

    async def console_end(self, c: Console, reason: str, *, notify: bool = True) -> None:
        if self.consoles.pop(c.session, None) is None:
            return
        if c.task is not None and c.task is not asyncio.current_task():
            c.task.cancel()
        if c.shell is not None:
            try:
                asyncio.get_running_loop().remove_reader(c.shell.fd)
            except (ValueError, OSError):
                pass
            try:
                await asyncio.to_thread(c.shell.close)
            except NetopsError as exc:
                log.error("console %s: %s", c.session, exc)
        if c.vm is not None:
            self._detach_vm(c)
        await database_sync_to_async(_end_session)(c.session, reason)
        log.info("console %s ended: %s", c.session, reason)
        if notify:
            try:
                await self.layer.send(c.reply, {"type": "console.exit", "message": reason})
            except ChannelFull:
                pass

    async def _attach_vm(self, c: Console) -> None:
        key = (c.lab, c.node)
        line = self.lines.get(key)
        if line is None:
            sock = await asyncio.to_thread(netconsole.vm_console_socket, c.lab, c.node)
            line = self.lines[key] = VmLine(key, sock)
            line.task = asyncio.ensure_future(self._pump_vm(line))
        line.consoles.add(c.session)
        c.vm = line

    def _detach_vm(self, c: Console) -> None:
        line = c.vm
        line.consoles.discard(c.session)
        if not line.consoles:
            self.lines.pop(line.key, None)
            if line.task is not None and line.task is not asyncio.current_task():
                line.task.cancel()
            line.sock.close()

    async def _pump_vm(self, line: VmLine) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(line.sock, READ_SIZE)
                if not data:
                    break
                for session in list(line.consoles):
                    c = self.consoles.get(session)
                    if c is not None:
                        await self.send(c.reply, {"type": "console.output", "data": data})
        except (OSError, ChannelFull) as exc:
            log.info("VM console %s/%s: %s", *line.key, exc)
        for session in list(line.consoles):
            c = self.consoles.get(session)
            if c is not None:
                await self.console_end(c, "the VM's console closed (the VM stopped)")

    # -------------------------------------------------------------------------------------------- captures

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
        return {"ok": True, "label": point.label, "agent": self.channel}

    def _prepare_capture(self, cap_id: int, lab: str, m: dict) -> netcapture.CapturePoint:
        """Blocking part of a start: resolve the point from the DEPLOYED document, compile the filter, make the
        file tcpdump (dropped to its user) may write and the web tier's group may read, start tcpdump."""
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
        path = conf.capture_path(cap_id)
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
        cell = netcell.get(lab)
        if cell is None:
            raise ApplyError(f"lab {lab} is not deployed on this host", element="lab")
        try:  # tcpdump writes it as the lab's uid; the web tier reads it through the group
            os.fchown(fd, cell.uid, _group_id(conf.capture_group()))
            os.fchmod(fd, 0o640)
        finally:
            os.close(fd)
        log_path = netcell.cell_dir(lab) / f"capture-{cap_id}.log"
        netcapture.start(lab, cap_id, point, path, bpf, log_path=log_path)
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
                    elif not alive:
                        reason = "tcpdump ended (the lab was destroyed?)"
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


def _group_id(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return -1  # no such group here: keep root's group (the web tier then runs as root too, e.g. in tests)


def _end_session(pk: int, reason: str) -> None:
    ConsoleSession.objects.filter(pk=pk, ended__isnull=True).update(ended=timezone.now(), reason=reason[:200])


def _progress(capture: int, size: int, packets: int) -> None:
    Capture.objects.filter(pk=capture).update(size=size, packets=packets)


def _finish(capture: int, session: int | None, reason: str, size: int, packets: int) -> None:
    Capture.objects.filter(pk=capture, status__in=Capture.ACTIVE).update(
        status=Capture.Status.STOPPED, message=reason[:500], size=size, packets=packets, ended=timezone.now())
    if session:
        ConsoleSession.objects.filter(pk=session, ended__isnull=True).update(
            ended=timezone.now(), reason=reason[:200], bytes_out=size)


def _forget_orphans() -> None:
    """A previous agent's tcpdumps outlived it: stop them and close their records (nothing follows them now)."""
    for cap in Capture.objects.filter(status__in=Capture.ACTIVE).select_related("lab"):
        try:
            netcapture.stop(cap.lab.lab_id, cap.pk)
        except NetopsError as exc:
            log.error("capture %s: %s", cap.pk, exc)
        _finish(cap.pk, cap.session_id, "the agent restarted", cap.size, cap.packets)


def run() -> int:
    logging.basicConfig(level=os.environ.get("TOPOLAB_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        log.warning("not running as root: consoles and captures will fail")
    agent = Agent()
    loop = asyncio.new_event_loop()
    main = loop.create_task(agent.run())
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, main.cancel)
    try:
        loop.run_until_complete(main)
    except asyncio.CancelledError:
        pass
    finally:
        loop.run_until_complete(agent.shutdown())
        loop.close()
    return 0
