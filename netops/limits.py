"""A node's `limits:` (memory, pids, cpu): parsing and validation (pure), and the operator's defaults they may only
lower (environment: TOPOLAB_NODE_MEMORY, TOPOLAB_NODE_PIDS, TOPOLAB_NODE_CPU). The cgroups that carry them are
netops.cell's."""
from __future__ import annotations

import os
import re
from typing import Any

from .model import NodeLimits

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*\Z", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
KEYS = ("memory", "pids", "cpu")
MIN_MEMORY = 16 << 20
MIN_PIDS = 8
MIN_CPU = 0.05
VM_OVERHEAD = 64 << 20  # qemu itself, beyond the guest's memory


def parse_size(text: object) -> int | None:
    """`256M`, `1G`, `1.5G`, `1048576` -> bytes; None when it is not a positive size."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        return text if text > 0 else None
    if not isinstance(text, str) or len(text) > 32:
        return None
    m = _SIZE_RE.match(text)
    if not m:
        return None
    value = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    return value if value > 0 else None


def _env_size(name: str, default: str) -> int:
    value = parse_size(os.environ.get(name, default))
    if value is None:
        raise ValueError(f"{name}={os.environ.get(name)!r} is not a size")
    return value


def defaults() -> NodeLimits:
    """The operator's per-node limits."""
    return NodeLimits(memory=_env_size("TOPOLAB_NODE_MEMORY", "512M"),
                      pids=int(os.environ.get("TOPOLAB_NODE_PIDS", "512")),
                      cpu=float(os.environ.get("TOPOLAB_NODE_CPU", "1.0")))


def _mib(n: int) -> str:
    return f"{n >> 20}M"


def check_limits(data: Any, path: str, *, vm_memory_mib: int | None = None
                 ) -> tuple[NodeLimits | None, list[tuple[str, str]]]:
    """The node's limits, and problems as (path, message)."""
    problems: list[tuple[str, str]] = []
    if not isinstance(data, dict):
        return None, [(path, f"{data!r} must be a mapping with memory, pids and/or cpu")]
    for key in data:
        if key not in KEYS:
            problems.append((f"{path}.{key}", f"unknown key {key!r} (limits are {', '.join(KEYS)})"))
    most = defaults()
    extra = ((vm_memory_mib or 0) << 20) + (VM_OVERHEAD if vm_memory_mib else 0)
    memory = pids = cpu = None
    if data.get("memory") is not None:
        memory = parse_size(data["memory"])
        ceiling = (most.memory or 0) + extra
        if memory is None:
            problems.append((f"{path}.memory", f"{data['memory']!r} is not a size like 256M or 1G"))
        elif memory < max(MIN_MEMORY, extra):
            floor = max(MIN_MEMORY, extra)
            why = " (the VM's memory and qemu's own)" if extra else ""
            problems.append((f"{path}.memory", f"{data['memory']!r} is below the least a node needs, {_mib(floor)}{why}"))
        elif memory > ceiling:
            problems.append((f"{path}.memory", f"{data['memory']!r} is above this server's limit of {_mib(ceiling)}"))
    if data.get("pids") is not None:
        pids = data["pids"]
        if not isinstance(pids, int) or isinstance(pids, bool):
            problems.append((f"{path}.pids", f"{pids!r} must be a whole number of processes"))
        elif not MIN_PIDS <= pids <= (most.pids or pids):
            problems.append((f"{path}.pids", f"{pids} must be from {MIN_PIDS} to this server's limit of {most.pids}"))
    if data.get("cpu") is not None:
        cpu = data["cpu"]
        if not isinstance(cpu, (int, float)) or isinstance(cpu, bool):
            problems.append((f"{path}.cpu", f"{cpu!r} must be a number of CPUs (0.5 = half of one)"))
        elif not MIN_CPU <= cpu <= (most.cpu or cpu):
            problems.append((f"{path}.cpu", f"{cpu} must be from {MIN_CPU} to this server's limit of {most.cpu} CPUs"))
    if problems:
        return None, problems
    return NodeLimits(memory=memory, pids=pids, cpu=float(cpu) if cpu is not None else None), []


def limits_document(limits: NodeLimits) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if limits.memory is not None:
        doc["memory"] = _mib(limits.memory) if limits.memory % (1 << 20) == 0 else limits.memory
    if limits.pids is not None:
        doc["pids"] = limits.pids
    if limits.cpu is not None:
        doc["cpu"] = limits.cpu
    return doc
