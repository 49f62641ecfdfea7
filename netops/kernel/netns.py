"""Network namespaces without forking: create, delete, list, enter.

What `ip netns add` does, in-process: make /run/netns a shared mount point, create the file, `unshare(CLONE_NEWNET)`
in a worker thread and bind-mount that thread's /proc/thread-self/ns/net onto the file. Entering a namespace is
`setns` in a worker thread (never the caller's thread, which must stay in the host namespace), followed by
`setns` back. Netlink sockets and /proc/sys/net files opened while inside stay bound to that namespace.
"""
from __future__ import annotations

import errno
import os
import queue
import threading
from concurrent.futures import Future
from typing import Callable, TypeVar

from . import libc
from .netlink import NetlinkSocket

NETNS_DIR = "/run/netns"
T = TypeVar("T")


def path(name: str) -> str:
    return f"{NETNS_DIR}/{name}"


def exists(name: str) -> bool:
    return os.path.exists(path(name))


def list_names() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def open_fd(name: str) -> int:
    """An O_RDONLY fd on the namespace (for setns or IFLA_NET_NS_FD). The caller closes it."""
    return os.open(path(name), os.O_RDONLY | os.O_CLOEXEC)


def delete(name: str) -> bool:
    """Detach and remove the namespace's mount point (as `ip netns del`); False if it was not there. The kernel
    frees the namespace and every link in it once nothing else holds it."""
    p = path(name)
    try:
        libc.umount2(p, libc.MNT_DETACH)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):  # EINVAL: not a mount point (half-created)
            raise
    try:
        os.unlink(p)
    except FileNotFoundError:
        return False
    return True


class _Worker(threading.Thread):
    """A thread that runs jobs inside namespaces and always returns to the host namespace between jobs."""

    def __init__(self) -> None:
        super().__init__(name="netops-netns", daemon=True)
        self.jobs: queue.Queue[tuple[Callable[[], object], Future, str | None, bool] | None] = queue.Queue()
        self.home_fd = -1
        self.ready = threading.Event()
        self.broken = False

    def run(self) -> None:
        self.home_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.ready.set()
        while (job := self.jobs.get()) is not None:
            fn, fut, ns, create = job
            moved = False
            try:
                if create:
                    assert ns is not None
                    moved = True  # unshare moves us even if the mount below fails
                    _create_here(ns)
                elif ns is not None:
                    fd = open_fd(ns)
                    try:
                        libc.setns(fd)
                        moved = True
                    finally:
                        os.close(fd)
                fut.set_result(fn())
            except BaseException as exc:  # handed to the caller through the future
                fut.set_exception(exc)
            finally:
                if moved:
                    try:
                        libc.setns(self.home_fd)
                    except OSError:
                        self.broken = True  # never run another job in a foreign namespace
                        return


_ensured_shared = False


def _ensure_netns_dir() -> None:
    """Like iproute2: /run/netns exists and is a shared mount, so bind mounts there propagate to other mount
    namespaces."""
    global _ensured_shared
    if _ensured_shared:
        return
    os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    try:
        libc.mount("", NETNS_DIR, "none", libc.MS_SHARED | libc.MS_REC)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        libc.mount(NETNS_DIR, NETNS_DIR, "none", libc.MS_BIND | libc.MS_REC)
        libc.mount("", NETNS_DIR, "none", libc.MS_SHARED | libc.MS_REC)
    _ensured_shared = True


def _create_here(name: str) -> None:
    """In the worker: create the mount point, unshare a new namespace, pin it by bind-mounting. Stays inside."""
    _ensure_netns_dir()
    p = path(name)
    fd = os.open(p, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0)
    os.close(fd)
    try:
        libc.unshare(libc.CLONE_NEWNET)
        libc.mount("/proc/thread-self/ns/net", p, "none", libc.MS_BIND)
    except OSError:
        os.unlink(p)
        raise


class Namespaces:
    """Runs jobs inside namespaces on a private worker thread. One per operation; close() when done."""

    def __init__(self) -> None:
        self._worker: _Worker | None = None

    def _get(self) -> _Worker:
        if self._worker is None or self._worker.broken or not self._worker.is_alive():
            self._worker = _Worker()
            self._worker.start()
            self._worker.ready.wait()
        return self._worker

    def _submit(self, ns: str | None, fn: Callable[[], T], create: bool = False) -> T:
        fut: Future = Future()
        self._get().jobs.put((fn, fut, ns, create))
        return fut.result()

    def run_in(self, ns: str, fn: Callable[[], T]) -> T:
        """Run fn inside namespace `ns` and return its result."""
        return self._submit(ns, fn)

    def create(self, ns: str, then: Callable[[], T]) -> T:
        """Create namespace `ns` (FileExistsError if the name is taken) and run `then` inside it."""
        return self._submit(ns, then, create=True)

    def netlink(self, ns: str | None) -> NetlinkSocket:
        """A netlink socket bound to namespace `ns` (None: the host namespace)."""
        if ns is None:
            return NetlinkSocket("host")
        return self.run_in(ns, lambda: NetlinkSocket(ns))

    def write_sysctl(self, ns: str, key: str, value: str) -> None:
        """Write /proc/sys/<key with dots as slashes> as seen from inside `ns` (/proc/sys/net is per namespace)."""
        def write() -> None:
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)
        self.run_in(ns, write)

    def read_sysctl(self, ns: str, key: str) -> str:
        def read() -> str:
            with open("/proc/sys/" + key.replace(".", "/")) as f:
                return f.read().strip()
        return self.run_in(ns, read)

    def close(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            self._worker.jobs.put(None)
            self._worker.join()
        if self._worker is not None and self._worker.home_fd >= 0:
            os.close(self._worker.home_fd)
        self._worker = None

    def __enter__(self) -> Namespaces:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
