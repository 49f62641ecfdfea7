"""The stream agent's loop. Runs as root beside the Celery worker; the only place consoles and tcpdump start.

Where bytes flow::

    browser --WS--> daphne ConsoleConsumer --channel layer--> agent --pty / unix socket--> shell / qemu serial
    browser <--WS-- daphne ConsoleConsumer <--channel layer-- agent <--pty / unix socket-- shell / qemu serial

    REST start --ask--> agent --procs.spawn--> tcpdump -w var/captures/capture-<id>.pcap (tagged with the lab)
    agent tails the file -> summaries --group capture-<id>--> CaptureConsumer --WS--> browser's packet list
    REST download / live backlog --capture.read / capture.backlog--> the capture host's agent --chunks--> browser
    check part on host a --lab.read--> host b's agent --addresses / leases of b's node--> the check (webapp.agent.reads)

The loop and the routing of messages are here; consoles are webapp.agent.consoles', captures
webapp.agent.captures'.

Requests arrive on the shared channel `conf.agent_channel()` (console.open, capture.start); everything that
belongs to an open console or a running capture is then sent to this agent's own channel (`self.channel`),
which it names in its replies. Nothing from a message reaches an argv before netops has checked it: node names
against NODE_NAME_RE and the deployed namespace's tag, capture endpoints against the deployed document.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from django.conf import settings

from webapp.consoles import conf

from . import reads
from .captures import CaptureStreams, Running, forget_orphans
from .consoles import Console, ConsoleStreams, VmLine
from .pcaps import PcapServer

log = logging.getLogger("topolab.agent")


class Agent(ConsoleStreams, CaptureStreams, PcapServer):
    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.channel = ""
        self.consoles: dict[int, Console] = {}
        self.lines: dict[tuple[str, str], VmLine] = {}
        self.captures: dict[int, Running] = {}
        self._pcap_init()

    # -------------------------------------------------------------------------------------------- loop

    async def run(self) -> None:
        self.channel = await self.layer.new_channel()
        await database_sync_to_async(forget_orphans)()
        log.info("stream agent of host %s listening on %s and %s", settings.TOPOLAB_HOST, conf.agent_channel(),
                 self.channel)
        loops = [asyncio.ensure_future(self._listen(conf.agent_channel())),
                 asyncio.ensure_future(self._listen(conf.agent_channel(settings.TOPOLAB_HOST))),
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
            except Exception:
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
        elif kind in ("capture.read", "capture.backlog"):
            self.serve_pcap(m)
        elif kind == "lab.read":
            self.serve_read(m)
        elif kind == "agent.ping":
            await self.reply(m, {"ok": True, "agent": self.channel, "host": settings.TOPOLAB_HOST,
                                 "consoles": len(self.consoles), "captures": len(self.captures)})

    def serve_read(self, m: dict) -> None:
        """Answer another host's check part (webapp.agent.reads) in a task of its own, off the loop."""
        async def serve() -> None:
            await self.reply(m, await database_sync_to_async(reads.answer)(m))

        task = asyncio.ensure_future(serve())
        self.serving.add(task)
        task.add_done_callback(self.serving.discard)

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
