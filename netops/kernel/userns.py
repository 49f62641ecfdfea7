"""User namespaces of lab cells: make one with its uid/gid map, find it again from a network namespace it owns, and
make network namespaces owned by it.

A multithreaded process can neither make nor enter a user namespace (unshare/setns answer EINVAL), so a `Maker` is a
small single-threaded helper process (`_nsmaker.py`) inside the lab's user namespace that makes network
namespaces on request and hands each one back as a file descriptor over a socket (SCM_RIGHTS); the agent's worker
thread then enters it, bind-mounts it in /run/netns as before and builds in it. A namespace made there belongs to the
lab's user namespace: a process of the lab holds capabilities over it, and over nothing the host or another lab owns
(shared/FACTS.md, "Kernel features").

A user namespace has no name. It lives as long as something holds it (a process in it, or a network namespace it
owns), and `owner_fd()` finds it again from any of the lab's network namespaces (ioctl NS_GET_USERNS), so nothing
needs to be pinned or cleaned up for it.
"""
from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

NS_GET_USERNS = 0xB701
_HELPER = Path(__file__).with_name("_nsmaker.py")


@dataclass(frozen=True)
class IdMap:
    """uid and gid `inside` .. inside+count-1 of the namespace are host ids `outside` .. outside+count-1."""

    inside: int
    outside: int
    count: int

    def line(self) -> str:
        return f"{self.inside} {self.outside} {self.count}\n"


def owner_fd(netns_path: str | os.PathLike[str]) -> int:
    """An fd on the user namespace that owns the network namespace at `netns_path` (the caller closes it)."""
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return fcntl.ioctl(fd, NS_GET_USERNS)
    finally:
        os.close(fd)


def initial_inode() -> int:
    """The inode of this process's user namespace (the host's initial one, for the agent)."""
    return os.stat("/proc/self/ns/user").st_ino


def read_map(pid: int) -> list[tuple[int, int, int]]:
    """The uid map of process `pid` as the kernel has it: (inside, outside, count) lines."""
    lines = Path(f"/proc/{pid}/uid_map").read_text().split("\n")
    return [tuple(int(x) for x in line.split()) for line in lines if line.strip()]  # type: ignore[misc]


class MakerError(OSError):
    pass


class Maker:
    """A helper process inside a lab's user namespace that makes network namespaces owned by it.

    `Maker(ids=...)` makes a new user namespace with that map; `Maker(userns_fd=...)` joins an existing one.
    `take()` returns an fd on a new network namespace (the caller closes it); `prefetch(n)` asks for n ahead so the
    helper makes them while the caller is busy with the previous ones. Thread-safe; close() when done."""

    def __init__(self, *, ids: IdMap | None = None, userns_fd: int | None = None, timeout: float = 10.0) -> None:
        if (ids is None) == (userns_fd is None):
            raise ValueError("give exactly one of ids and userns_fd")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        ours.settimeout(timeout)
        self._sock = ours
        self._lock = threading.Lock()
        self._outstanding = 0
        mode = "new" if ids is not None else "join"
        argv = [sys.executable, "-I", "-S", str(_HELPER), mode, str(theirs.fileno())]
        fds: tuple[int, ...] = (theirs.fileno(),)
        if userns_fd is not None:
            argv.append(str(userns_fd))
            fds += (userns_fd,)
        try:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, pass_fds=fds,
                                            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        finally:
            theirs.close()
        try:
            self._expect(b"ready")
            if ids is not None:
                Path(f"/proc/{self.process.pid}/setgroups").write_text("allow\n")
                Path(f"/proc/{self.process.pid}/uid_map").write_text(ids.line())
                Path(f"/proc/{self.process.pid}/gid_map").write_text(ids.line())
                self._sock.send(b"mapped")
        except BaseException:
            self.close()
            raise

    def _expect(self, what: bytes) -> None:
        try:
            answer = self._sock.recv(4096)
        except TimeoutError as exc:
            raise MakerError(0, "the user-namespace helper did not answer") from exc
        if answer != what:
            text = answer[1:].decode(errors="replace") if answer[:1] == b"E" else repr(answer)
            raise MakerError(0, f"user-namespace helper: {text or 'exited'}")

    def userns_fd(self) -> int:
        """A new fd on the helper's user namespace (the caller closes it)."""
        return os.open(f"/proc/{self.process.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)

    def uid_map(self) -> list[tuple[int, int, int]]:
        return read_map(self.process.pid)

    def prefetch(self, count: int) -> None:
        if count > 0:
            with self._lock:
                self._sock.send(b"N%d" % count)
                self._outstanding += count

    def take(self) -> int:
        with self._lock:
            if self._outstanding == 0:
                self._sock.send(b"N1")
                self._outstanding = 1
            try:
                msg, fds, _flags, _addr = socket.recv_fds(self._sock, 4096, 1)
            except TimeoutError as exc:
                raise MakerError(0, "the user-namespace helper did not make a namespace in time") from exc
            if msg != b"ns" or not fds:
                for fd in fds:
                    os.close(fd)
                self._outstanding = 0
                text = msg[1:].decode(errors="replace") if msg[:1] == b"E" else "exited"
                raise MakerError(0, f"user-namespace helper: {text}")
            self._outstanding -= 1
            return fds[0]

    def close(self) -> None:
        """End the helper. Namespaces it made and that were not taken die with it (nothing pins them)."""
        try:
            self._sock.close()
        finally:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Maker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
