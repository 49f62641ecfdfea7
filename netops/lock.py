"""One operation per lab at a time: a non-blocking fcntl.flock on run_root()/<lab>.lock."""
from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from . import naming
from .errors import LabBusyError


@contextmanager
def lab_lock(lab: str) -> Iterator[None]:
    """Hold the lab's lock for the duration of the block; LabBusyError if another operation holds it."""
    path = naming.run_dir(lab).parent / f"{lab}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabBusyError(f"lab {lab} is busy: another deploy or destroy of it is running") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock
