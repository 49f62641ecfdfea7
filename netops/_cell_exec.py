"""Launcher run as a fresh, single-threaded interpreter by `netops.procs` (never imported by netops): it puts a
program into a lab's cell and execs it.

argv: SPEC   a JSON object:
  netns      path of the network namespace to enter ("" = stay)
  userns_fd  an inherited fd on the lab's user namespace
  cgroups    cgroup.procs files to join (the role's leaf in each hierarchy)
  caps       capability names the program keeps inside the lab's user namespace
  daemon     true: detach (new session, double fork) and print {"pid": N} once the exec succeeded
  isolate    null, or {"hostname", "tmp_size"}: own mount, UTS, IPC and PID namespaces: /sys for the node, private
             /tmp, /var/tmp, /dev/shm and /run/lock, /run/netns and /run/topolab hidden, System V IPC and POSIX
             message queues of its own, /proc of its own PID namespace in which
             a small init (this file) is pid 1 and the program is its only child
  node_init  true (with isolate and daemon): no program; the init itself is the daemon, pid 1 of the node's PID
             namespace, holding the node's mount, UTS and PID namespaces for the node's consoles and daemons to
             join, and reaping the orphans in it
  join       {"pid": fd, "mnt": fd, "uts": fd, "ipc": fd} (any of them): inherited fds on namespaces of the node's init,
             joined after the user namespace (so only namespaces the lab's user namespace owns can be joined);
             the PID namespace holds for the program, a child of this process
  ctty       true: the program's session gets stdin (a pty) as its controlling terminal
  uid_map    [0, host uid, count]: the lab's map; anything else is refused before the exec
  log, cwd   opened / entered AFTER the switch to the lab's uid (a path the lab's user cannot write into is refused
             by the kernel, never followed through a link by root)
  argv, env  the program

Order, all in this process: join the cgroups (still root), enter the network namespace, then the user namespace
(which needs a single-threaded caller), become uid/gid 0 of the lab (a host uid of the lab's own range), unshare
what `isolate` asks, drop every capability but `caps` from the bounding, permitted, effective and inheritable sets,
set no_new_privs, open the log, exec. It prints one line of JSON: {"pid": N} or {"error": "..."}.
Only the standard library, because it runs with `python -I -S`, by path.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import struct
import sys
from collections.abc import Iterable
from typing import Any, NoReturn

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
#: the host's world-writable directories: each node gets its own tmpfs on them (charged to its memory cgroup), so
#: no lab shares a file with the host or with another lab there, nor fills the host's disk through them
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
MS_REC = 0x4000
MS_SLAVE = 1 << 19
MNT_DETACH = 2
PR_SET_DUMPABLE = 4
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1
TIOCSCTTY = 0x540E
CAPS = {
    "chown": 0, "dac_override": 1, "dac_read_search": 2, "fowner": 3, "fsetid": 4, "kill": 5, "setgid": 6,
    "setuid": 7, "setpcap": 8, "net_bind_service": 10, "net_broadcast": 11, "net_admin": 12, "net_raw": 13,
    "ipc_lock": 14, "sys_chroot": 18, "sys_ptrace": 19, "sys_admin": 21, "sys_nice": 23, "sys_resource": 24,
    "audit_write": 29,
}

libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                      data.encode() if data else None), f"mount {fstype or source} on {target}")


def _keep_only(caps: Iterable[str]) -> None:
    """Bounding, permitted, effective and inheritable sets = `caps`; no_new_privs."""
    wanted = set()
    for name in caps:
        if name not in CAPS:
            raise ValueError(f"unknown capability {name!r}")
        wanted.add(CAPS[name])
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        if cap not in wanted and libc.prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1:
            _check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap} from the bounding set")
    mask = sum(1 << c for c in wanted)
    data = (_CapData * 2)()
    data[0].effective = data[0].permitted = data[0].inheritable = mask & 0xFFFFFFFF
    data[1].effective = data[1].permitted = data[1].inheritable = mask >> 32
    header = _CapHeader(0x20080522, 0)
    _check(libc.capset(ctypes.byref(header), data), "capset")
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _enter(spec: dict[str, Any]) -> None:
    """Everything up to the uid switch: cgroups, network namespace, user namespace, uid/gid 0 of the lab."""
    pid = str(os.getpid())
    for path in spec["cgroups"]:
        with open(path, "w") as f:
            f.write(pid)
    if spec.get("netns"):
        fd = os.open(spec["netns"], os.O_RDONLY | os.O_CLOEXEC)
        _check(libc.setns(fd, CLONE_NEWNET), f"setns {spec['netns']}")
        os.close(fd)
    _check(libc.setns(spec["userns_fd"], CLONE_NEWUSER), "setns(user namespace)")
    os.close(spec["userns_fd"])
    with open("/proc/self/uid_map") as f:
        have = [int(x) for x in f.read().split()]
    if have != spec["uid_map"]:
        raise OSError(1, f"the namespace's user namespace maps {have}, not the lab's {spec['uid_map']}")
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    for kind, flag in (("mnt", CLONE_NEWNS), ("uts", CLONE_NEWUTS), ("ipc", CLONE_NEWIPC), ("pid", CLONE_NEWPID)):
        joined = (spec.get("join") or {}).get(kind)
        if joined is not None:
            _check(libc.setns(joined, flag), f"setns(the node's {kind} namespace)")
            os.close(joined)


def _isolate(spec: dict[str, Any]) -> None:
    iso = spec["isolate"]
    _check(libc.unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID), "unshare(mount, uts, ipc, pid)")
    _mount("none", "/", None, MS_REC | MS_SLAVE)
    if libc.umount2(b"/sys", MNT_DETACH) != 0 and ctypes.get_errno() != 22:  # EINVAL: /sys was not mounted
        _check(-1, "umount /sys")
    _mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    size = iso.get("tmp_size", "64m")
    for where in PRIVATE_DIRS:
        if os.path.isdir(where):
            _mount("tmpfs", where, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=1777")
    for hidden in ("/run/netns", "/run/topolab"):
        if os.path.isdir(hidden):
            _mount("tmpfs", hidden, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=16k,mode=755")
    socket.sethostname(iso["hostname"])


def _exec(spec: dict[str, Any], errw: int) -> NoReturn:
    """In the process that becomes the program: drop capabilities, open the log, exec."""
    if spec.get("ctty"):
        os.setsid()
        _check(libc.ioctl(0, TIOCSCTTY, 0), "TIOCSCTTY")
    _keep_only(spec["caps"])
    null = os.open(os.devnull, os.O_RDWR)
    if spec.get("daemon"):
        os.dup2(null, 0)
    if spec.get("log"):
        out = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.dup2(out, 1)
        os.dup2(out, 2)
    elif spec.get("daemon"):
        os.dup2(null, 1)
        os.dup2(null, 2)
    os.chdir(spec.get("cwd") or "/")
    os.umask(0o077)
    argv = spec["argv"]
    os.execvpe(argv[0], argv, spec["env"])


def _fail(errw: int, exc: BaseException) -> NoReturn:
    os.write(errw, f"{type(exc).__name__}: {exc}".encode()[:4000])
    os._exit(127)


def _init(spec: dict[str, Any], errw: int) -> NoReturn:
    """pid 1 of the console's PID namespace: mount its /proc, start the program, reap until it ends."""
    try:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        _keep_only(spec["caps"])
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # the program (same uid and caps) may not ptrace its init
        child = os.fork()
        if child == 0:
            try:
                _exec(spec, errw)
            except BaseException as exc:  # noqa: BLE001 - reported to the caller, never swallowed
                _fail(errw, exc)
    except BaseException as exc:  # noqa: BLE001 - reported to the caller, never swallowed
        _fail(errw, exc)
    os.close(errw)
    for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: os.kill(child, s))
    status = 1
    while True:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child:
            status = os.waitstatus_to_exitcode(code)
            break
    os._exit(status if status >= 0 else 128 - status)


def _node_init(errw: int) -> NoReturn:
    """pid 1 of a node's PID namespace: mount its /proc, keep no capability, then reap orphans until SIGTERM from
    outside the namespace (the kernel then ends every process in it)."""
    try:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        _keep_only(())
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # the node's processes (same uid) may not ptrace it
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.chdir("/")
    except BaseException as exc:  # noqa: BLE001 - reported to the caller, never swallowed
        _fail(errw, exc)
    os.close(errw)
    stop = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    for sig in stop:  # a handler, not SIG_DFL: the kernel drops default-action signals sent to a namespace's init
        signal.signal(sig, lambda _s, _f: os._exit(0))
    signal.pthread_sigmask(signal.SIG_BLOCK, stop | {signal.SIGCHLD})
    while True:
        info = signal.sigtimedwait(stop | {signal.SIGCHLD}, 60)
        if info is not None and info.si_signo in stop and info.si_pid == 0:
            os._exit(0)  # from outside the namespace (the agent); the node's own processes cannot end it
        while True:  # reap every orphan that ended
            try:
                pid, _code = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break


def _report_or_wait(errr: int, child: int) -> int:
    chunks = []
    while True:
        chunk = os.read(errr, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    if chunks:
        os.waitpid(child, 0)
        print(json.dumps({"error": b"".join(chunks).decode(errors="replace")}), flush=True)
        return 1
    # foreground (a console): wait for the PID namespace's init and pass its status on
    for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: os.kill(child, s))
    while True:
        try:
            _pid, code = os.waitpid(child, 0)
            return os.waitstatus_to_exitcode(code) % 256
        except InterruptedError:
            continue


def _own_pid_over(sock: socket.socket) -> None:
    """Send our pid as SCM_CREDENTIALS: the kernel translates it into the receiver's PID namespace (the host's)."""
    sock.sendmsg([b"p"], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS,
                           struct.pack("3i", os.getpid(), os.getuid(), os.getgid()))])
    sock.close()


def _pid_from(sock: socket.socket) -> int | None:
    """The pid (in our PID namespace) a process sent with `_own_pid_over`, or None when it ended before."""
    _msg, ancillary, _flags, _addr = sock.recvmsg(16, socket.CMSG_SPACE(struct.calcsize("3i")))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            return int(struct.unpack("3i", data[:struct.calcsize("3i")])[0])
    return None


def _daemon(spec: dict[str, Any]) -> int:
    """Detach: a first child enters the cell (and unshares what `isolate` asks) and forks the daemon, so that it
    is in any PID namespace joined or made; the daemon sends its pid (SCM_CREDENTIALS, so it arrives as a host
    pid), the first child passes it on and exits, and the daemon is reparented away from us.

    A daemon that joins a node's PID namespace is forked by a middle process inside that namespace, which exits
    at once: the daemon's reaper is then the node's init, not the host's PID 1 (which may never reap it, and the
    node's init waits at its end for every zombie of its namespace to be reaped)."""
    os.setsid()
    errr, errw = os.pipe()  # O_CLOEXEC: reads EOF once the exec succeeded (or the init is ready) and the first
    pidr, pidw = os.pipe()  # child exited
    first = os.fork()
    if first == 0:
        os.close(errr)
        os.close(pidr)
        try:
            joins_pid = "pid" in (spec.get("join") or {})
            _enter(spec)
            if spec.get("isolate"):
                _isolate(spec)
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            ours.settimeout(30)
            middle = os.fork()
            if middle == 0:
                os.close(pidw)
                ours.close()
                if joins_pid and os.fork() != 0:
                    os._exit(0)
                _own_pid_over(theirs)
                if spec.get("node_init"):
                    _node_init(errw)
                if spec.get("isolate"):
                    _init(spec, errw)
                _exec(spec, errw)
            theirs.close()
            daemon_pid = _pid_from(ours)
            if joins_pid:
                os.waitpid(middle, 0)  # it forked the daemon and exited; otherwise it is the daemon
            if daemon_pid is not None:
                os.write(pidw, str(daemon_pid).encode())
        except BaseException as exc:  # noqa: BLE001 - reported to the caller, never swallowed
            _fail(errw, exc)
        os._exit(0)
    os.close(errw)
    os.close(pidw)
    chunks = []
    while chunk := os.read(errr, 4096):
        chunks.append(chunk)
    pid = b""
    while chunk := os.read(pidr, 64):
        pid += chunk
    os.waitpid(first, 0)
    if chunks or not pid:
        error = b"".join(chunks).decode(errors="replace") or "the launcher's child ended before the start"
        print(json.dumps({"error": error}), flush=True)
        return 1
    print(json.dumps({"pid": int(pid)}), flush=True)
    return 0


def main() -> int:
    spec = json.loads(sys.argv[1])
    if spec.get("daemon"):
        return _daemon(spec)
    errr, errw = os.pipe()  # O_CLOEXEC: reads EOF as soon as the exec succeeds
    try:
        _enter(spec)
        if spec.get("isolate"):
            _isolate(spec)
    except BaseException as exc:  # noqa: BLE001 - reported to the caller, never swallowed
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    child = os.fork()
    if child == 0:
        os.close(errr)
        try:
            if spec.get("isolate"):
                _init(spec, errw)
            _exec(spec, errw)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller, never swallowed
            _fail(errw, exc)
    os.close(errw)
    return _report_or_wait(errr, child)


if __name__ == "__main__":
    sys.exit(main())
