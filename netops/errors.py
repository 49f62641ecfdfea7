"""The exceptions netops raises.

One exception per meaning, as in STYLE.md: `TopologyError` for bad input (a document, or an operation on one, that
cannot be; never worth retrying; it carries every problem found, each with the path of the element it concerns),
`ApplyError` for failures while touching the kernel or starting processes (`permanent` False says retrying may help:
the agent's run executor, webapp.runs.agent, retries a deploy or destroy a few times on those), and `LabBusyError`
when another operation holds the lab. The web tier raises the same ones and renders each as
`{"errors": [{"path", "message"}]}` (webapp.core.errors).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document, located by a dotted path such as `nodes.r1.interfaces.eth0.address`."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class NetopsError(Exception):
    """Base of every error netops raises on purpose."""


class TopologyError(NetopsError):
    """The topology document (or a name given with it) is invalid. Carries all problems, not only the first."""

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem("", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ApplyError(NetopsError):
    """A kernel or process operation failed. `element` names the node/link/interface concerned (a document path)."""

    def __init__(self, message: str, *, element: str = "", step: str = "", permanent: bool = True):
        self.message = message
        self.element = element
        self.step = step
        self.permanent = permanent
        where = f"{element}: " if element else ""
        super().__init__(f"{where}{message}")


class LabBusyError(NetopsError):
    """Another operation holds the lab: its lock (netops.lock), or (web tier) another queued or running run,
    which `run` then names."""

    def __init__(self, message: str, *, run: object | None = None):
        self.run = run
        super().__init__(message)
