"""Progress events that netops emits while it deploys, observes and destroys.

netops knows nothing of runs, sequence numbers or sockets: it calls `on_event(Event)`. The CLI prints events; the
web app's worker stamps them with lab, run, sequence number and time, stores them and streams them (DESIGN.md,
"Events on the wire").
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

NODE_STATES = ("absent", "starting", "running", "degraded", "stopped", "failed")


@dataclass(frozen=True)
class Event:
    type: str  # "run.step" | "node.state" | "run.warning"
    message: str = ""
    node: str | None = None
    state: str | None = None  # for node.state: one of NODE_STATES
    step: int | None = None  # 1-based index of the step in the plan
    total: int | None = None  # number of steps in the plan
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, {}, "")}


EventSink = Callable[[Event], None] | None


def emit(sink: EventSink, event: Event) -> None:
    if sink is not None:
        sink(event)
