"""The stream agent's consoles: a shell in a node's namespace over a pty, or a VM's serial socket shared by every
console open on it (webapp.agent.service routes the messages here)."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from django.utils import timezone

from netops import console as netconsole
from netops import naming
from netops.errors import NetopsError
from webapp.consoles.models import ConsoleSession

log = logging.getLogger("topolab.agent")
READ_SIZE = 64 * 1024


@dataclass
class Console:
    session: int
    lab: str
    node: str
    reply: str  # the consumer's channel
    shell: netconsole.Shell | None = None
    vm: VmLine | None = None
    last_seen: float = field(default_factory=time.monotonic)
    task: asyncio.Task | None = None


@dataclass
class VmLine:
    """One connection to a VM's serial socket (qemu serves one client), shared by every console open on it."""

    key: tuple[str, str]
    sock: object
    consoles: set[int] = field(default_factory=set)
    task: asyncio.Task | None = None


class ConsoleStreams:
    """The console half of the agent (mixed into webapp.agent.service.Agent, whose layer and channels it uses)."""

    layer: Any
    channel: str
    consoles: dict[int, Console]
    lines: dict[tuple[str, str], VmLine]

    if TYPE_CHECKING:
        async def send(self, channel: str, message: dict) -> None: ...


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


def _end_session(pk: int, reason: str) -> None:
    ConsoleSession.objects.filter(pk=pk, ended__isnull=True).update(ended=timezone.now(), reason=reason[:200])
