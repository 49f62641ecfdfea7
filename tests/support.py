"""Helpers shared by test modules (pytest puts tests/ on sys.path: `pythonpath` in pyproject.toml).

Fixtures live in the conftest files; plain functions and the kernel-test lock live here, once.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

KERNEL_LOCK_PATH = "/run/topolab-kernel-tests.lock"


class KernelLock:
    """The machine-wide lock every test that makes kernel objects holds, so test runs of engineers sharing a
    machine never meet (and the inventory guard of tests/kernel sees only its own objects).

    Re-entrant within this process: a kernel test session holds it for its whole length, and a webapp or e2e test
    of the same run that deploys takes it again without deadlocking on its own flock."""

    def __init__(self, path: str = KERNEL_LOCK_PATH) -> None:
        self.path = path
        self._fd: int | None = None
        self._depth = 0
        self._mutex = threading.Lock()

    def acquire(self) -> None:
        with self._mutex:
            if self._depth == 0:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._fd = fd
            self._depth += 1

    def release(self) -> None:
        with self._mutex:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None

    @contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


KERNEL_LOCK = KernelLock()


def lab_namespaces(lab_id: str) -> list[str]:
    """The namespaces of lab `lab_id` as the kernel lists them (`ip netns list`), not as netops believes."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n == f"tl-{lab_id}" or n.startswith(f"tl-{lab_id}-")]


def wait_run(run_id: int, timeout: float = 120) -> Any:
    """The Run `run_id` once it is no longer queued or running (a real agent works on it); fails after `timeout`."""
    from webapp.runs.models import Run

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if not run.active:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {Run.objects.get(pk=run_id).status} after {timeout} s")
