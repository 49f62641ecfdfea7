"""Consoles: an interactive shell on a pseudo-terminal inside a node's network namespace, or a VM's serial console.

`open_shell()` runs the shell in the lab's cell (`procs.cell_command`, `netops/_cell_exec.py`): in the node's
network namespace and the lab's user namespace, as uid 0 there (a host uid of the lab's own range), with only
CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE, CAP_SETUID, CAP_SETGID and CAP_KILL there (so `ip`, `nft`, `ping`,
`tcpdump -i eth0` (which drops to its own user: a uid of the lab's range), `sysctl -w
net.ipv4.ip_forward=1` and a server on port 80 work inside the node) and none in the host's initial user
namespace; no_new_privs; in the namespaces of the node's init (`procs.node_init`), shared by every console and
daemon of the node: its PID namespace (`ps` shows the node's shells and daemons only, `kill -1` reaches nothing
else), its UTS namespace named after the node, and its mount namespace with /sys for the node and the node's
private /tmp, /var/tmp and /dev/shm (two consoles of a node see the same files); in the node's cgroup under role `console:<session>`, so `close()` (and destroying the lab) stops the
shell and everything it left, and the node's limits bound it.

`open_shell(..., kind="vtysh")` runs FRR's vtysh of that router's instance instead of bash, in the same cell and
namespaces, as FRR's user and vty group of the lab's range with no capability left (setpriv): `vtysh --vty_socket <the lab's FRR sockets> -N <pathspace>`
(netops.frr.vtysh_argv), no history file, `cat` as its pager.

A VM's console is qemu's serial chardev, a unix socket (`qemu.console_path`); qemu serves one client at a time, so
callers share one connection per VM (see webapp.agent).
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import termios
import time
from dataclasses import dataclass, field

from . import cell as cells
from . import engine, frr, naming, procs, qemu
from .errors import ApplyError

SESSION_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")  # fullmatch only
#: a console's capabilities in the lab's user namespace: `ip`, `nft`, `ping`, `tcpdump` (which drops to its own
#: user, hence setuid/setgid: among the lab's own uids only), servers on low ports, `kill` of the node's daemons
#: (they drop to other uids of the lab; the shell can name no process outside the node's PID namespace, and the
#: capability counts for the lab's user namespace only)
CAPS = ("net_admin", "net_raw", "net_bind_service", "setuid", "setgid", "kill")
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
    process: subprocess.Popen[bytes]
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
                    raise ApplyError("the console does not take input (its buffer is full)", permanent=False) from None
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
            try:  # the launcher hands it on to the PID namespace's init, which hands it to the shell
                os.kill(self.process.pid, signal.SIGHUP)
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


def open_shell(lab: str, node: str, session: str, *, rows: int = 24, cols: int = 80, kind: str = "shell") -> Shell:
    """Start a shell (`kind="vtysh"`: the router's FRR shell, its instance only) on a new pty inside the node's
    namespace (host or router of a running lab), in its cell."""
    lab = naming.check_lab_id(lab)
    role(session)
    if not isinstance(node, str) or not naming.NODE_NAME_RE.fullmatch(node):
        raise ApplyError(f"node name {node!r} is not valid", element="nodes")
    if kind not in KINDS:
        raise ApplyError(f"console kind {kind!r} is not one of {', '.join(KINDS)}")
    engine.exec_argv(lab, node)  # checks the node name, the namespace and its tag
    env = {"TERM": "xterm-256color", "HOME": "/tmp", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
           "PS1": f"{node}:\\w$ ", "HISTFILE": "/dev/null"}  # "$": root of the lab only, not of the host
    program: list[str] = shell_program()
    caps: tuple[str, ...] = CAPS
    join: tuple[str, ...] = procs.CONSOLE_JOIN  # the node's one PID namespace, /tmp, hostname and IPC
    if kind == "vtysh":
        if "zebra" not in frr.running(lab, node):
            raise ApplyError(f"FRR is not running on {node}", element=f"nodes.{node}.routing")
        # setpriv's caps, to FRR's user of the lab's range: none after. Not in the node's mount namespace: it
        # hides the run dir, where the instance's sockets are; vtysh starts no program and reaches no other lab
        # (their socket dirs belong to their own uids)
        program, caps, join = frr.vtysh_argv(lab, node), frr.VTYSH_CAPS, ("pid", "uts")
        env.update(frr.VTYSH_ENV)
    launcher, fds = procs.cell_command(
        program, lab=lab, role=role(session), namespace=naming.node_namespace(lab, node), node=node, caps=caps,
        env=env, cwd="/", join=join, ctty=True)
    master, slave = os.openpty()
    try:
        set_size(master, rows, cols)
        os.set_blocking(master, False)
        process = subprocess.Popen(launcher, stdin=slave, stdout=slave, stderr=slave, env=dict(procs.BASE_ENV),
                                   cwd="/", close_fds=True, pass_fds=fds)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
        procs.close_fds(fds)
    return Shell(lab, node, session, master, process, kind=kind)


def vm_console_socket(lab: str, node: str, *, timeout: float = 5.0) -> socket.socket:
    """A connected, non-blocking unix socket to the running VM's serial console."""
    lab = naming.check_lab_id(lab)
    if not isinstance(node, str) or not naming.NODE_NAME_RE.fullmatch(node):
        raise ApplyError(f"node name {node!r} is not valid")
    if not procs.find(lab, qemu.role(node)):
        raise ApplyError(f"VM {node} of lab {lab} is not running", element=f"nodes.{node}")
    try:
        sock = cells.connect_unix(lab, qemu.console_path(lab, node), timeout=timeout)
    except FileNotFoundError as exc:
        raise ApplyError(f"VM {node} has no console socket", element=f"nodes.{node}") from exc
    except ApplyError as exc:
        raise ApplyError(exc.message, element=f"nodes.{node}") from exc
    except OSError as exc:
        raise ApplyError(f"cannot connect to the console of {node}: {exc}", element=f"nodes.{node}",
                         permanent=False) from exc
    sock.setblocking(False)
    return sock
