"""/proc/sys of the calling thread's network namespace (net.* is per namespace; a thread that entered one sees
that namespace's values). Keys in dotted form (`net.ipv4.ip_forward`) or as a path under /proc/sys."""
from __future__ import annotations

ROOT = "/proc/sys/"


def path(key: str) -> str:
    return ROOT + (key.replace(".", "/") if "/" not in key else key)


def read(key: str) -> str:
    with open(path(key)) as f:
        return f.read().strip()


def write(key: str, value: str) -> None:
    with open(path(key), "w") as f:
        f.write(value)
