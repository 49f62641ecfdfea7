"""Network namespaces without forking: create, delete, list, enter.

What `ip netns add` does, in-process: make /run/netns a shared mount point, create the file, `unshare(CLONE_NEWNET)`
in a worker thread and bind-mount that thread's /proc/thread-self/ns/net onto the file. Entering a namespace is
`setns` in a worker thread (never the caller's thread, which must stay in the host namespace), followed by
`setns` back. Netlink sockets and /proc/sys/net files opened while inside stay bound to that namespace.
Many namespaces at once (`Namespaces.create_many`): mount points made ahead on one thread, namespaces created by
two workers.

In a lab cell (`Namespaces(cell=...)`) a namespace is not unshared by the worker itself but made by a
`userns.Maker` helper inside the lab's user namespace, one per worker (so the two still make namespaces in
parallel), which owns it; the worker enters it by fd, mounts it and goes on exactly as before.
"""
from __future__ import annotations

import errno
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, TypeVar

from . import libc, sysctl, userns
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

    def __init__(self, cell: CellNamespaces | None = None) -> None:
        super().__init__(name="netops-netns", daemon=True)
        self.cell = cell
        self.maker: userns.Maker | None = None
        # (job, its future, namespace to run in, create: False | True | the Future of its mount point being made)
        self.jobs: queue.Queue[tuple[Callable[[], object], Future[Any], str | None, bool | Future[bool]] | None] = \
            queue.Queue()
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
                if create is not False:
                    assert ns is not None
                    prepared = isinstance(create, Future)
                    if isinstance(create, Future):
                        create.result()  # its mount point, made by _MountPoints (raises what making it raised)
                    moved = True  # unshare moves us even if the mount below fails
                    _create_here(ns, prepared=prepared, maker=self._maker(),
                                 ids=self.cell.ids if self.cell is not None else None)
                elif ns is not None:
                    fd = open_fd(ns)
                    try:
                        libc.setns(fd)
                        moved = True
                    finally:
                        os.close(fd)
                fut.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
                fut.set_exception(exc)
            finally:
                if moved:
                    try:
                        libc.setns(self.home_fd)
                    except OSError:
                        self.broken = True  # never run another job in a foreign namespace
                        self._refuse_queued()
                        return

    def _maker(self) -> userns.Maker | None:
        if self.cell is None:
            return None
        if self.maker is None:
            self.maker = self.cell.maker()
        return self.maker

    def close_maker(self) -> None:
        if self.maker is not None:
            self.maker.close()
            self.maker = None

    def _refuse_queued(self) -> None:
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job[1].set_exception(OSError(errno.EIO, "namespace worker could not return to the host namespace"))


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


def _make_mount_point(name: str, ids: userns.IdMap | None = None) -> None:
    """The empty file a namespace is bind-mounted on; FileExistsError if the name is taken (a namespace is mounted
    there that is not the lab's). A file that nothing is mounted on names no namespace: a creator killed between
    making it and mounting left it (the agent SIGKILLed while `create_many` made mount points ahead,
    tests/chaos/test_kill_every_step.py), and it is made again. A namespace mounted there whose owner is the lab's
    own user namespace (`ids`: only the agent makes one with that map, and only the agent mounts under /run/netns)
    is the lab's, left by a creator killed before it was tagged (or whose tag a console changed), which the
    redeploy's plan therefore made fresh: it is unmounted and made again. The caller holds the lab's operation
    lock, so no other creator of this name is at work."""
    _ensure_netns_dir()
    flags = os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        os.close(os.open(path(name), flags, 0))
    except FileExistsError:
        if os.path.ismount(path(name)):
            fd = -1 if ids is None else _cell_owner_fd(name, ids)
            if fd < 0:
                raise
            os.close(fd)
            libc.umount2(path(name), libc.MNT_DETACH)
        os.unlink(path(name))
        os.close(os.open(path(name), flags, 0))


def _cell_owner_fd(name: str, ids: userns.IdMap) -> int:
    """An fd on the user namespace owning namespace `name` when that is a lab's cell with map `ids`; else -1."""
    fd = userns.owner_fd(path(name))
    if os.fstat(fd).st_ino != userns.initial_inode():
        probe = userns.Maker(userns_fd=fd)
        try:
            if probe.uid_map() == [(ids.inside, ids.outside, ids.count)]:
                return fd
        finally:
            probe.close()
    os.close(fd)
    return -1


def _create_here(name: str, prepared: bool = False, maker: userns.Maker | None = None,
                 ids: userns.IdMap | None = None) -> None:
    """In the worker: create the mount point (unless `prepared`), make a new namespace (unshare, or through the
    cell's maker and setns), pin it by bind-mounting. Stays inside."""
    p = path(name)
    if not prepared:
        _make_mount_point(name, ids)
    try:
        if maker is None:
            libc.unshare(libc.CLONE_NEWNET)
        else:
            fd = maker.take()
            try:
                libc.setns(fd)
            finally:
                os.close(fd)
        libc.mount("/proc/thread-self/ns/net", p, "none", libc.MS_BIND)
    except OSError:
        os.unlink(p)
        raise


class CellNamespaces:
    """Where a lab's namespaces are made: its user namespace, made with `ids` when the lab has none yet (found
    again from its existing namespaces otherwise). One per operation; makers are handed to the workers."""

    def __init__(self, ids: userns.IdMap, existing: list[str]) -> None:
        self.ids = ids
        self.existing = existing  # namespaces of the lab that exist already (the first found is asked its owner)
        self._userns_fd = -1
        self._lock = threading.Lock()
        self._first: userns.Maker | None = None

    def maker(self) -> userns.Maker:
        with self._lock:
            if self._userns_fd < 0:
                self._userns_fd = self._find_existing()
            if self._userns_fd < 0:
                first = userns.Maker(ids=self.ids)
                self._userns_fd = first.userns_fd()
                return first
            return userns.Maker(userns_fd=self._userns_fd)

    def _find_existing(self) -> int:
        """An fd on the user namespace of the lab's existing namespaces: the first whose owner maps the lab's ids.
        A namespace with the lab's name that is not in the lab's cell (a foreign one, or one made before cells) is
        passed over, never adopted: it keeps its owner and nothing of the lab runs in it."""
        for name in self.existing:
            if not exists(name):
                continue
            fd = _cell_owner_fd(name, self.ids)
            if fd >= 0:
                return fd
        return -1

    def close(self) -> None:
        if self._userns_fd >= 0:
            os.close(self._userns_fd)
            self._userns_fd = -1


class _MountPoints(threading.Thread):
    """Creates the mount-point files of namespaces about to be created, ahead of them, on another core.

    Creating a file is pure file-system work (no rtnl_lock, no pernet lock), and where /run is not a tmpfs it can
    cost more than the namespace: on the CI VM's ext4 (no journal) 0.1-0.3 ms per file, and up to 0.8 ms within
    30 s of many namespaces being deleted, because ext4 then scans past every recently freed inode (perf:
    recently_deleted). Making them while the workers unshare and mount takes that off the critical path."""

    def __init__(self, names: list[str], ids: userns.IdMap | None = None) -> None:
        super().__init__(name="netops-mountpoints", daemon=True)
        self.ids = ids  # the lab's cell (_make_mount_point)
        self.results: dict[str, Future[bool]] = {n: Future() for n in names}
        self.stop = False

    def run(self) -> None:
        for name, fut in self.results.items():
            if self.stop:
                fut.set_exception(RuntimeError("mount point preparation stopped"))
                continue
            try:
                _make_mount_point(name, self.ids)
                fut.set_result(True)
            except BaseException as exc:  # noqa: BLE001 - handed to create() through the future
                fut.set_exception(exc)

    def close(self) -> None:
        """Stop, and remove the files made for namespaces that were never created on them."""
        self.stop = True
        self.join()
        for name, fut in self.results.items():
            if fut.exception() is None and not os.path.ismount(path(name)):
                try:
                    os.unlink(path(name))
                except FileNotFoundError:
                    pass
        self.results.clear()


class Namespaces:
    """Runs jobs inside namespaces on a private worker thread. One per operation; close() when done."""

    def __init__(self, cell: CellNamespaces | None = None) -> None:
        self.cell = cell
        self._worker: _Worker | None = None
        self._helpers: list[_Worker] = []  # more workers for create_many, kept until close()
        self._mount_points: list[_MountPoints] = []

    def _get(self) -> _Worker:
        if self._worker is None or self._worker.broken or not self._worker.is_alive():
            self._worker = _Worker(self.cell)
            self._worker.start()
            self._worker.ready.wait()
        return self._worker

    def _put(self, worker: _Worker, ns: str | None, fn: Callable[[], T],
             create: bool | Future[bool] = False) -> Future[T]:
        fut: Future[T] = Future()
        worker.jobs.put((fn, fut, ns, create))
        return fut

    def _submit(self, ns: str | None, fn: Callable[[], T], create: bool = False) -> T:
        return self._put(self._get(), ns, fn, create).result()

    def run_in(self, ns: str, fn: Callable[[], T]) -> T:
        """Run fn inside namespace `ns` and return its result."""
        return self._submit(ns, fn)

    def create(self, ns: str, then: Callable[[], T]) -> T:
        """Create namespace `ns` (FileExistsError if the name is taken) and run `then` inside it."""
        return self._submit(ns, then, create=True)

    def create_many(self, jobs: list[tuple[str, Callable[[], T]]], workers: int = 2) -> list[Future[T]]:
        """Start creating many namespaces, each followed by its job inside it; a Future per (ns, job), in order.

        Their mount points are made ahead on a thread of their own (pure filesystem work: no rtnl_lock, no pernet
        lock; where /run is not a tmpfs a file costs more than the namespace, 0.35-0.8 ms on ext4 against 0.33 ms
        for the unshare), and the namespaces are created by `workers` threads in turn (the pernet set-up runs in
        parallel under a shared lock). Every Future is resolved even when some fail."""
        if not jobs:
            return []
        mount_points = _MountPoints([ns for ns, _ in jobs], self.cell.ids if self.cell is not None else None)
        self._mount_points.append(mount_points)
        mount_points.start()
        while len(self._helpers) < workers - 1:
            helper = _Worker(self.cell)
            helper.start()
            helper.ready.wait()
            self._helpers.append(helper)
        pool = [self._get(), *self._helpers[:workers - 1]]
        if self.cell is not None:  # the makers start making namespaces while the workers mount the first ones
            for w, worker in enumerate(pool):
                maker = worker.maker or self._put(worker, None, worker._maker).result()
                if maker is not None:
                    maker.prefetch(len(range(w, len(jobs), len(pool))))
        return [self._put(pool[i % len(pool)], ns, then, mount_points.results[ns])
                for i, (ns, then) in enumerate(jobs)]

    def netlink(self, ns: str | None) -> NetlinkSocket:
        """A netlink socket bound to namespace `ns` (None: the host namespace)."""
        if ns is None:
            return NetlinkSocket("host")
        return self.run_in(ns, lambda: NetlinkSocket(ns))

    def write_sysctl(self, ns: str, key: str, value: str) -> None:
        """Write /proc/sys/<key with dots as slashes> as seen from inside `ns` (/proc/sys/net is per namespace)."""
        self.run_in(ns, lambda: sysctl.write(key, value))

    def read_sysctl(self, ns: str, key: str) -> str:
        return self.run_in(ns, lambda: sysctl.read(key))

    def close(self) -> None:
        for worker in [self._worker, *self._helpers]:
            if worker is not None and worker.is_alive():
                worker.jobs.put(None)
                worker.join()
            if worker is not None and worker.home_fd >= 0:
                os.close(worker.home_fd)
            if worker is not None:
                worker.close_maker()
        self._worker, self._helpers = None, []
        for mount_points in self._mount_points:  # after the workers: no namespace is being made on one now
            mount_points.close()
        self._mount_points = []
        if self.cell is not None:
            self.cell.close()

    def __enter__(self) -> Namespaces:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def netlink_in(ns: str) -> Iterator[NetlinkSocket]:
    """A netlink socket bound to namespace `ns` for one short job (a fresh worker thread opens it), closed after."""
    with Namespaces() as spaces, spaces.netlink(ns) as sock:
        yield sock


def in_throwaway(fn: Callable[[], T]) -> T:
    """Run fn on a thread of its own inside a new anonymous namespace, which the kernel frees when the thread ends
    (for probes of what the kernel supports)."""
    fut: Future[T] = Future()

    def run() -> None:
        try:
            libc.unshare(libc.CLONE_NEWNET)
            fut.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            fut.set_exception(exc)

    thread = threading.Thread(target=run, name="netops-probe", daemon=True)
    thread.start()
    thread.join()
    return fut.result()
