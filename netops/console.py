"""Consoles: an interactive shell on a pseudo-terminal inside a node's network namespace, or a VM's serial console.

`open_shell()` runs, on a new pty, the argv chain (each step execs the next, so one pid from start to end)::

    nsenter --net=/run/netns/tl-<lab>-<node> --    (engine.exec_argv: the namespace, after checking its tag)
    python -I -S netops/_console_ns.py <node> --    (own UTS namespace named after the node, own mount
                                                     namespace with /sys for the node, as `ip netns exec`)
    setsid --ctty                                   (own session, the pty as controlling terminal)
    setpriv --reuid U --regid G --clear-groups --inh-caps +net_admin,+net_raw --ambient-caps +... --
    bash --noprofile --norc -i                      (or busybox sh -i)

The shell is not host root: it runs as an unprivileged user (default `nobody`) keeping only CAP_NET_ADMIN and
CAP_NET_RAW, enough for `ip`, `ping`, `ss` and `tcpdump` inside the node but not to read the host's files or enter
another namespace. It carries the lab's process tag with role `console:<session>`, inherited by everything started
from it, so `close()` (and destroying the lab) stops the shell and every child it left.

`open_shell(..., kind="vtysh")` runs FRR's vtysh of that router's instance instead of bash, through the same chain:
`vtysh --vty_socket <lab's FRR socket base> -N <pathspace>` (netops.frr.vtysh_argv), as the console user with the
`frrvty` group (to reach the instance's vty sockets) and no capabilities, no history file and `cat` as its pager.

A VM's console is qemu's serial chardev, a unix socket (`qemu.console_path`); qemu serves one client at a time, so
callers share one connection per VM (see webapp.agent).
"""
from __future__ import annotations

import errno
import fcntl
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import engine, frr, naming, procs, qemu
from .errors import ApplyError

SESSION_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")  # fullmatch only
DEFAULT_USER = "nobody"
CONSOLE_NS = Path(__file__).with_name("_console_ns.py")  # run by path with `python -I -S`
CAPS = "+net_admin,+net_raw"
KINDS = ("shell", "vtysh")


def role(session: str) -> str:
    if not isinstance(session, str) or not SESSION_RE.fullmatch(session):
        raise ApplyError(f"console session id {session!r} is not valid")
    return f"console:{session}"


def shell_program() -> list[str]:
    """bash when installed, else busybox's sh."""
    if shutil.which("bash"):
        return [shutil.which("bash") or "bash", "--noprofile", "--norc", "-i"]
    if shutil.which("busybox"):
        return [shutil.which("busybox") or "busybox", "sh", "-i"]
    raise ApplyError("neither bash nor busybox is installed on the agent host")


def shell_argv(prefix: list[str], node: str, user: str = DEFAULT_USER) -> list[str]:
    """The whole argv after `prefix` (engine.exec_argv). Pure but for the user lookup."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError as exc:
        raise ApplyError(f"console user {user!r} does not exist on the agent host") from exc
    return [*prefix, sys.executable, "-I", "-S", str(CONSOLE_NS), node, "--", "setsid", "--ctty",
            "setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups",
            f"--inh-caps={CAPS}", f"--ambient-caps={CAPS}", "--",
            *shell_program()]


def vtysh_argv(prefix: list[str], lab: str, node: str, user: str = DEFAULT_USER) -> list[str]:
    """argv of a vtysh console on the node's FRR instance only (after `prefix`, engine.exec_argv)."""
    try:
        entry = pwd.getpwnam(user)
        import grp

        vty_gid = grp.getgrnam(frr.VTY_GROUP).gr_gid
    except KeyError as exc:
        raise ApplyError(f"console user {user!r} or group {frr.VTY_GROUP!r} does not exist on the agent host") from exc
    return [*prefix, sys.executable, "-I", "-S", str(CONSOLE_NS), node, "--", "setsid", "--ctty",
            "setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", f"--groups={vty_gid}",
            "--inh-caps=-all", "--", *frr.vtysh_argv(lab, node)]


def set_size(fd: int, rows: int, cols: int) -> None:
    """TIOCSWINSZ on the pty: the kernel sends SIGWINCH to the foreground process group."""
    rows = max(1, min(int(rows), 1000))
    cols = max(1, min(int(cols), 1000))
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


@dataclass
class Shell:
    """A running console shell: `fd` is the pty master (non-blocking) to read output from and write input to."""

    lab: str
    node: str
    session: str
    fd: int
    process: subprocess.Popen
    closed: bool = field(default=False)
    kind: str = "shell"  # one of KINDS

    @property
    def pid(self) -> int:
        return self.process.pid

    def resize(self, rows: int, cols: int) -> None:
        if not self.closed:
            set_size(self.fd, rows, cols)

    def write(self, data: bytes) -> None:
        """Write all of `data`, waiting briefly when the pty's input buffer is full."""
        view = memoryview(data)
        deadline = time.monotonic() + 5
        while view and not self.closed:
            try:
                n = os.write(self.fd, view)
                view = view[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ApplyError("the console does not take input (its buffer is full)", permanent=False)
                time.sleep(0.01)

    def read(self, size: int = 65536) -> bytes | None:
        """Available output; b"" when there is none right now; None once the shell is gone (EIO on the pty)."""
        try:
            return os.read(self.fd, size)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:
                return None
            raise

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self, timeout: float = 2.0) -> None:
        """Hang up (SIGHUP to the shell's session), close the pty, then stop whatever still carries the session's
        tag (background jobs, `nohup`ed children). Idempotent."""
        if not self.closed:
            self.closed = True
            try:
                os.killpg(self.process.pid, signal.SIGHUP)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                os.close(self.fd)
            except OSError:
                pass
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        procs.stop_all(self.lab, role(self.session), timeout=timeout)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ApplyError(f"console shell {self.process.pid} did not exit", permanent=False) from None


def open_shell(lab: str, node: str, session: str, *, rows: int = 24, cols: int = 80,
               user: str = DEFAULT_USER, kind: str = "shell") -> Shell:
    """Start a shell (`kind="vtysh"`: the router's FRR shell) on a new pty inside the node's namespace (host or
    router of a running lab)."""
    lab = naming.check_lab_id(lab)
    role(session)
    if not isinstance(node, str) or not naming.NODE_NAME_RE.fullmatch(node):
        raise ApplyError(f"node name {node!r} is not valid", element="nodes")
    if kind not in KINDS:
        raise ApplyError(f"console kind {kind!r} is not one of {', '.join(KINDS)}")
    prefix = engine.exec_argv(lab, node)  # checks the node name, the namespace and its tag
    if kind == "vtysh":
        if "zebra" not in frr.running(lab, node):
            raise ApplyError(f"FRR is not running on {node}", element=f"nodes.{node}.routing")
        argv = procs.check_argv(vtysh_argv(prefix, lab, node, user))
    else:
        argv = procs.check_argv(shell_argv(prefix, node, user))
    env = dict(procs.BASE_ENV, TERM="xterm-256color", HOME="/tmp", LANG="C.UTF-8", LC_ALL="C.UTF-8",
               PS1=f"{node}:\\w\\$ ", HISTFILE="/dev/null",
               **(frr.VTYSH_ENV if kind == "vtysh" else {}),
               **{naming.PROCESS_TAG_ENV: lab, naming.PROCESS_ROLE_ENV: role(session)})
    master, slave = os.openpty()
    try:
        set_size(master, rows, cols)
        os.set_blocking(master, False)
        process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd="/tmp",
                                   close_fds=True)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    return Shell(lab, node, session, master, process, kind=kind)


def vm_console_socket(lab: str, node: str, *, timeout: float = 5.0) -> socket.socket:
    """A connected, non-blocking unix socket to the running VM's serial console."""
    lab = naming.check_lab_id(lab)
    if not isinstance(node, str) or not naming.NODE_NAME_RE.fullmatch(node):
        raise ApplyError(f"node name {node!r} is not valid")
    if not procs.find(lab, qemu.role(node)):
        raise ApplyError(f"VM {node} of lab {lab} is not running", element=f"nodes.{node}")
    path = qemu.console_path(lab, node)
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ApplyError(f"{path} is not a socket", element=f"nodes.{node}")
    except FileNotFoundError as exc:
        raise ApplyError(f"VM {node} has no console socket", element=f"nodes.{node}") from exc
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError as exc:
        sock.close()
        raise ApplyError(f"cannot connect to the console of {node}: {exc}", element=f"nodes.{node}",
                         permanent=False) from exc
    sock.setblocking(False)
    return sock
