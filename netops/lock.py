"""One operation per lab at a time: a non-blocking fcntl.flock on run_root()/<lab>.lock.

The lock file lives only while the lab does: the holder removes it on leaving when the lab has no run dir any more
(destroyed, or never made), so destroyed labs leave no file behind. Whoever opened the file before it was removed
and gets its lock after finds the path gone or another file there, and starts again on the path's file: a lock is
only ever held on the file the path names.
"""
from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from . import naming
from .errors import LabBusyError


def _acquire(path: str, lab: str) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LabBusyError(f"lab {lab} is busy: another deploy or destroy of it is running") from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # removed by the holder before us: take the new one


@contextmanager
def lab_lock(lab: str) -> Iterator[None]:
    """Hold the lab's lock for the duration of the block; LabBusyError if another operation holds it."""
    run_dir = naming.run_dir(lab)
    path = run_dir.parent / f"{lab}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(str(path), lab)
    try:
        yield
    finally:
        if not run_dir.exists():  # nothing of the lab is left: neither is its lock file (removed while held)
            path.unlink(missing_ok=True)
        os.close(fd)  # closing releases the lock
