"""Live events of one lab over a WebSocket: /ws/labs/<pk>/.

Protocol (server -> client JSON unless noted):
1. On connect the server sends {"type": "snapshot", "seq", "nodes", "deployed", "run"}.
2. The client sends {"type": "resume", "after": SEQ} (its last seen seq, or the snapshot's). The server then
   sends every stored event with seq > SEQ in order, and afterwards live events, each exactly once:
   a `cursor` (last seq sent) drops duplicates, and a gap (an event that overtook another) is filled from the
   database, where every event is stored before it is broadcast.
Close codes: 4403 not signed in, 4404 no such lab or not allowed to see it.
"""
from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from webapp.labs.models import Lab
from webapp.labs.permissions import can_view

from . import services

CLOSE_NOT_SIGNED_IN = 4403
CLOSE_NOT_FOUND = 4404


class LabEventsConsumer(AsyncJsonWebsocketConsumer):
    lab_pk: int
    group: str
    cursor: int | None = None  # last seq sent; None until the client resumes

    async def connect(self) -> None:
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_NOT_SIGNED_IN)
            return
        lab = await self._visible_lab(user, int(self.scope["url_route"]["kwargs"]["pk"]))
        if lab is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.lab_pk = lab.pk
        self.group = services.lab_group(lab.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        # Snapshot after joining the group: whatever happens from here on is either in it or arrives live.
        await self.send_json(await database_sync_to_async(services.snapshot)(lab))

    @database_sync_to_async
    def _visible_lab(self, user, pk: int) -> Lab | None:
        lab = Lab.objects.filter(pk=pk).first()
        return lab if lab is not None and can_view(user, lab) else None

    async def disconnect(self, code: int) -> None:
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        if not getattr(self, "group", None) or not isinstance(content, dict):
            return
        if content.get("type") == "resume":
            after = content.get("after")
            if not isinstance(after, int) or after < 0:
                await self.send_json({"type": "error", "message": "resume needs an integer 'after' >= 0"})
                return
            self.cursor = after
            await self._catch_up()
        elif content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def lab_events(self, message: dict) -> None:
        """Live events from the agent, in order (group_send type "lab.events", one batch of services.record_events)."""
        if self.cursor is None:
            return  # not resumed yet: the resume replays them from the database
        for event in message["events"]:
            seq = event["seq"]
            if seq <= self.cursor:
                continue
            if seq == self.cursor + 1:
                await self.send_json(event)
                self.cursor = seq
            else:
                await self._catch_up()  # sends this one and the rest of the batch too

    async def _catch_up(self) -> None:
        while True:
            events = await database_sync_to_async(services.events_after)(self.lab_pk, self.cursor)
            for event in events:
                await self.send_json(event)
                self.cursor = event["seq"]
            if len(events) < services.REPLAY_BATCH:
                return
