"""WebSockets of consoles and captures. Thin: checks, the audit log, and relaying to and from the stream agent.

Console `/ws/labs/<pk>/console/<node>/`: binary frames are terminal bytes both ways; text frames are JSON
control messages: client -> {"type": "resize", "rows", "cols"}; server -> {"type": "status", "state":
"connecting"|"open"|"closed", "message"}.
Capture `/ws/labs/<pk>/captures/<id>/`: server -> {"type": "packets", "packets": [...]} (each with its number
`no`; the first message is the backlog, the file's last packets from the capture host's stream agent, with a
`message` when they cannot be had) and {"type": "state", "status", "size", "packets",
"message"}.

Close codes: 4403 not signed in or not allowed, 4404 no such lab, node or capture, 4409 the node is not running
(or the agent refused), 4429 too many open consoles, 4503 the stream agent does not answer.
"""
from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.generic.websocket import AsyncWebsocketConsumer

from netops import kinds

from . import conf, services
from .models import Capture

CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_NOT_RUNNING = 4409
CLOSE_TOO_MANY = 4429
CLOSE_NO_AGENT = 4503
KEEPALIVE = 20.0
BACKLOG = 1000  # packets sent to a newly opened live list
PENDING_MAX = 64 * 1024  # input typed before the console opened


class ConsoleConsumer(AsyncWebsocketConsumer):
    session_pk: int | None = None
    agent: str | None = None  # the agent's own channel, once the console is open
    keepalive: asyncio.Task | None = None
    bytes_in = 0
    bytes_out = 0
    ended = False

    async def connect(self) -> None:
        await self.accept()
        user = self.scope.get("user")
        kwargs = self.scope["url_route"]["kwargs"]
        node = kwargs["node"]
        if user is None or not user.is_authenticated:
            return await self.refuse(CLOSE_FORBIDDEN, "sign in first")
        query = parse_qs(self.scope.get("query_string", b"").decode(errors="replace"))
        self.console_kind = (query.get("kind") or ["shell"])[0]
        if self.console_kind not in services.CONSOLE_PROGRAMS:
            return await self.refuse(CLOSE_NOT_FOUND, "no such console kind")
        refusal, lab = await self._check(user, int(kwargs["pk"]), node)
        if refusal:
            return await self.refuse(*refusal)
        self.pending = bytearray()
        await self.status("connecting", f"connecting to {node}")
        await self.channel_layer.send(self.agent_request_channel, {
            "type": "console.open", "session": self.session_pk, "lab": lab.lab_id, "node": node,
            "vm": kinds.get(self.kind).console == "serial", "program": self.console_kind, "rows": 24, "cols": 80,
            "reply": self.channel_name})
        self.keepalive = asyncio.ensure_future(self._keepalive())

    @database_sync_to_async
    def _check(self, user, pk: int, node: str):
        lab = services.lab_for(user, pk)
        if lab is None:
            return (CLOSE_NOT_FOUND, "no such lab"), None
        kind, why = services.console_target(user, lab, node, self.console_kind)
        if why == "forbidden":
            return (CLOSE_FORBIDDEN, "you may not open consoles in this lab"), None
        if why:
            return (CLOSE_NOT_FOUND, "no such node with a console in this lab"), None
        label = node if self.console_kind == "shell" else f"{node} ({self.console_kind})"
        session = services.claim_console(user, lab, label)  # the limit checked and claimed atomically
        if session is None:
            return (CLOSE_TOO_MANY, f"at most {conf.console_max_open()} consoles may be open at once"), None
        self.kind = kind
        self.session_pk = session.pk
        self.agent_request_channel = services.agent_channel_for(lab, node)  # the host that runs the node
        return None, lab

    async def refuse(self, code: int, message: str) -> None:
        await self.status("closed", message)
        await self.close(code=code)

    async def status(self, state: str, message: str = "") -> None:
        await self.send(text_data=json.dumps({"type": "status", "state": state, "message": message}))

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE)
            if self.agent:
                await self._to_agent({"type": "console.ping"})

    async def _to_agent(self, message: dict) -> None:
        try:
            await self.channel_layer.send(self.agent, {**message, "session": self.session_pk})
        except ChannelFull:
            await asyncio.sleep(0.05)
            await self.channel_layer.send(self.agent, {**message, "session": self.session_pk})

    # -------------------------------------------------------------------------------------------- browser

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.session_pk is None or self.ended:
            return
        if bytes_data is not None:
            self.bytes_in += len(bytes_data)
            if self.agent:
                await self._to_agent({"type": "console.input", "data": bytes_data})
            elif len(self.pending) + len(bytes_data) <= PENDING_MAX:
                self.pending += bytes_data
            return
        try:
            msg = json.loads(text_data or "")
        except ValueError:
            return
        if isinstance(msg, dict) and msg.get("type") == "resize" and self.agent:
            rows, cols = msg.get("rows"), msg.get("cols")
            if isinstance(rows, int) and isinstance(cols, int) and 0 < rows <= 1000 and 0 < cols <= 1000:
                await self._to_agent({"type": "console.resize", "rows": rows, "cols": cols})
        elif isinstance(msg, dict) and msg.get("type") == "input" and isinstance(msg.get("data"), str):
            data = msg["data"].encode()  # text input, for clients that cannot send binary frames
            self.bytes_in += len(data)
            if self.agent:
                await self._to_agent({"type": "console.input", "data": data})

    async def disconnect(self, code: int) -> None:
        if self.keepalive:
            self.keepalive.cancel()
        if self.agent and not self.ended:
            await self._to_agent({"type": "console.close"})
        if self.session_pk is not None:
            await database_sync_to_async(services.end_session)(
                self.session_pk, reason=f"closed by the browser ({code})" if not self.ended else "",
                bytes_in=self.bytes_in, bytes_out=self.bytes_out)

    # -------------------------------------------------------------------------------------------- agent

    async def console_opened(self, message: dict) -> None:
        self.agent = message["agent"]
        await self.status("open", message.get("message", ""))
        if self.pending:
            await self._to_agent({"type": "console.input", "data": bytes(self.pending)})
            self.pending.clear()

    async def console_output(self, message: dict) -> None:
        data = message["data"]
        self.bytes_out += len(data)
        await self.send(bytes_data=data)

    async def console_error(self, message: dict) -> None:
        self.ended = True
        await self.refuse(CLOSE_NOT_RUNNING, message.get("message", "the console cannot be opened"))

    async def console_exit(self, message: dict) -> None:
        self.ended = True
        await self.status("closed", message.get("message", "the console ended"))
        await self.close(code=1000)


class CaptureConsumer(AsyncWebsocketConsumer):
    """The live packet list of one capture (read-only)."""

    group: str | None = None

    async def connect(self) -> None:
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return await self._refuse(CLOSE_FORBIDDEN, "sign in first")
        kwargs = self.scope["url_route"]["kwargs"]
        cap, code = await self._capture(user, int(kwargs["pk"]), int(kwargs["capture"]))
        if cap is None:
            return await self._refuse(code, "no such capture" if code == CLOSE_NOT_FOUND else "not allowed")
        self.group = cap.group
        await self.channel_layer.group_add(self.group, self.channel_name)
        # After joining: a packet is in the backlog or arrives live (the browser drops repeated numbers). The
        # backlog comes from the stream agent of the capture's host, which holds the file.
        backlog: dict = {"type": "packets", "packets": [], "backlog": True}
        try:
            backlog["packets"] = await services.pcap_backlog(cap, BACKLOG)
        except services.PcapUnavailable as exc:
            backlog["message"] = f"no earlier packets: {exc}"
        await self._send(backlog)
        await self._send(_state(cap))

    @database_sync_to_async
    def _capture(self, user, pk: int, capture_pk: int):
        lab = services.lab_for(user, pk)
        if lab is None:
            return None, CLOSE_NOT_FOUND
        if not services.can_console(user, lab):
            return None, CLOSE_FORBIDDEN
        cap = Capture.objects.filter(pk=capture_pk, lab=lab).first()
        return (cap, 0) if cap else (None, CLOSE_NOT_FOUND)

    async def _refuse(self, code: int, message: str) -> None:
        await self._send({"type": "state", "status": "refused", "message": message})
        await self.close(code=code)

    async def _send(self, content: dict) -> None:
        await self.send(text_data=json.dumps(content))

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        return  # nothing to say to a packet list

    async def capture_packets(self, message: dict) -> None:
        await self._send({"type": "packets", "packets": message["packets"]})

    async def capture_state(self, message: dict) -> None:
        await self._send({"type": "state", **{k: v for k, v in message.items() if k != "type"}})


def _state(cap: Capture) -> dict:
    return {"type": "state", "status": cap.status, "size": cap.size, "packets": cap.packets,
            "message": cap.message, "label": cap.label}
