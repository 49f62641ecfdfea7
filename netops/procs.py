"""Safe process management for lab cells: everything Topolab starts for a lab runs in that lab's cell (its user
namespace, its uid range, the cgroup of its node and role, no capability in the host's initial user namespace:
`netops/_cell_exec.py`), and is found again through the lab's cgroups, which its users can neither leave nor forge
(DESIGN.md, "What a lab can and cannot do"). A process is only ever signalled after its cgroup and start time were
re-checked, so a stale record or a reused pid can never make Topolab kill someone else's process.

- `spawn()` starts a long-running daemon detached (new session, double fork through the launcher, a fresh
  single-threaded interpreter, so forking is safe even from a threaded Celery worker) inside a lab's namespace.
- `cell_command()` is the argv and fds that run a program in the cell in the foreground (consoles).
- `find()` lists a lab's processes from its cgroups; `stop()` terminates one; `run()` runs a short command of the
  agent's own (nft, tc, ip; root, not in a cell) inside a namespace and raises `ApplyError` with its stderr.

Machine note (FACTS): PID 1 of the CI VM does not reap orphans, so a detached daemon that died stays a zombie.
A zombie has released everything but its pid and cannot be signalled; `stop()` therefore treats a zombie that is
not our child as dead (and reaps one that is).
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cell as cells
from . import naming
from .errors import ApplyError
from .kernel import cgroups, userns

NETNS_DIR = Path("/run/netns")
#: the environment every Topolab process gets, besides its tags
BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
ROLE_RE = re.compile(r"^[A-Za-z0-9_.:@+-]{1,128}\Z")
_LAUNCHER = Path(__file__).with_name("_cell_exec.py")
#: the node init's namespaces a console shell joins: one PID namespace, one /tmp and one hostname per node
CONSOLE_JOIN = ("pid", "mnt", "uts", "ipc")
#: each of a node's private /tmp, /var/tmp and /dev/shm (tmpfs, charged to the node's memory limit)
NODE_TMP_SIZE = "64m"


@dataclass(frozen=True)
class TaggedProcess:
    """A process found in a lab's cgroup. `start_time` (clock ticks after boot) detects pid reuse."""

    pid: int
    lab: str
    role: str
    argv: tuple[str, ...]
    start_time: int
    node: str = ""  # the node level of its cgroup (cell.FABRIC_CGROUP for the fabric)


# ---------------------------------------------------------------------------------------------- validation


def check_argv(argv: list[str] | tuple[str, ...]) -> list[str]:
    if not isinstance(argv, (list, tuple)) or not argv:
        raise ApplyError(f"argv must be a non-empty list of str, got {argv!r}")
    for item in argv:
        if not isinstance(item, str) or "\0" in item:
            raise ApplyError(f"argv element {item!r} is not a str without NUL")
    return list(argv)


def check_namespace(namespace: str) -> Path:
    """The /run/netns path of a Topolab namespace that exists; ApplyError otherwise."""
    parsed = naming.parse_namespace(namespace) if isinstance(namespace, str) else None
    if parsed is None or parsed[1] == naming.TUNNEL_NODE:
        raise ApplyError(f"{namespace!r} is not a Topolab namespace name")
    path = NETNS_DIR / namespace
    if not path.exists():
        raise ApplyError(f"network namespace {namespace} does not exist", permanent=False)
    return path


def check_role(role: str) -> str:
    if not isinstance(role, str) or not ROLE_RE.match(role):
        raise ApplyError(f"process role {role!r} must match {ROLE_RE.pattern}")
    return role


# ---------------------------------------------------------------------------------------------- spawn


def _lab_userns(lab: str, namespace: str | None, cell: cells.Cell) -> int:
    """An fd on the lab's user namespace, found from the namespace the program runs in (or the lab's fabric)."""
    ns = namespace or naming.fabric_namespace(lab)
    path = check_namespace(ns)
    parsed = naming.parse_namespace(ns)
    if parsed is None or parsed[0] != lab:
        raise ApplyError(f"namespace {ns} is not lab {lab}'s")
    fd = userns.owner_fd(path)
    if os.fstat(fd).st_ino == userns.initial_inode():
        os.close(fd)
        raise ApplyError(f"namespace {ns} is not in a lab cell (deployed by an older Topolab?): destroy the lab "
                         "and deploy it again", element="lab")
    return fd


def node_limits(lab: str, node: str) -> cgroups.Limits:
    """The limits a node's cgroup gets when it is made: the document's (`limits.json`, the agent's), else the
    operator's defaults."""
    try:
        stored = json.loads((naming.run_dir(lab) / "limits.json").read_text()).get(node)
    except (FileNotFoundError, ValueError):
        stored = None
    if not stored:
        return cells.node_limits(None)
    return cgroups.Limits(memory=stored.get("memory"), pids=stored.get("pids"), cpu=stored.get("cpu"))


def cell_command(argv: list[str], *, lab: str, role: str, namespace: str | None, node: str | None = None,
                 caps: tuple[str, ...] | list[str] = (), log_path: Path | None = None, cwd: Path | str | None = None,
                 env: dict[str, str] | None = None, daemon: bool = False, isolate: dict[str, Any] | None = None,
                 ctty: bool = False, join: tuple[str, ...] = (), node_init: bool = False) -> tuple[list[str], list[int]]:
    """The launcher's argv that runs `argv` in the lab's cell, and the fds it must inherit (the caller passes them
    with `pass_fds` and closes them after the start: `close_fds`).

    `join`: namespaces of the node's init ("pid", "mnt", "uts", "ipc"; `node_namespaces`) the program joins, so that the
    node's consoles share one PID namespace and one /tmp, and its daemons are in the PID namespace its consoles see.
    """
    argv = check_argv(argv)
    naming.check_lab_id(lab)
    check_role(role)
    cell = cells.get(lab)
    if cell is None:
        raise ApplyError(f"lab {lab} has no cell on this host (is it deployed?)", element="lab")
    netns = str(check_namespace(namespace)) if namespace is not None else ""
    group = cells.cgroup_node(namespace) if node is None else node
    if group != cells.FABRIC_CGROUP and not naming.NODE_NAME_RE.match(group):
        raise ApplyError(f"{group!r} names no node")
    procs_files = cgroups.ensure(lab, group, role, lab_limits=cells.lab_limits(),
                                 node_limits=node_limits(lab, group))
    for value in (str(log_path or ""), str(cwd or "")):
        if "\0" in value:
            raise ApplyError(f"path {value!r} contains NUL")
    joined = node_namespaces(lab, group, namespace, join) if join else {}
    try:
        fd = _lab_userns(lab, namespace, cell)
    except BaseException:
        close_fds(list(joined.values()))
        raise
    spec = {"netns": netns, "userns_fd": fd, "cgroups": [str(p) for p in procs_files], "caps": list(caps),
            "daemon": daemon, "isolate": isolate, "ctty": ctty, "log": str(log_path) if log_path else "",
            "cwd": str(cwd) if cwd else "", "argv": argv, "env": dict(BASE_ENV, **(env or {})),
            "uid_map": [0, cell.uid, cells.SIZE], "join": joined, "node_init": node_init}
    return [sys.executable, "-I", "-S", str(_LAUNCHER), json.dumps(spec)], [fd, *joined.values()]


def close_fds(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------- node init


def init_role(node: str) -> str:
    return f"init:{node}"


def _init_matches(proc: TaggedProcess, netns: Path) -> bool:
    try:
        return os.stat(f"/proc/{proc.pid}/ns/net").st_ino == os.stat(netns).st_ino
    except OSError:
        return False


def node_init(lab: str, node: str, namespace: str) -> TaggedProcess:
    """The node's init (started when first needed): pid 1 of the node's PID namespace, in its network namespace,
    holding the mount namespace with the node's private /tmp, /var/tmp and /dev/shm and its hostname. One per
    node, also across the agent's processes (a flock in the root-owned run dir); one whose network namespace is
    not the node's current one (the node was rebuilt) is replaced."""
    netns = check_namespace(namespace)
    role = init_role(node)
    with open(naming.run_dir(lab) / f".init-{node}.lock", "a") as lock:  # run_dir: root's 0711, names checked
        fcntl.flock(lock, fcntl.LOCK_EX)
        for proc in find(lab, role):
            if _init_matches(proc, netns):
                return proc
            stop(proc, timeout=1.0)
        launcher, fds = cell_command(["init"], lab=lab, role=role, namespace=namespace, node=node, daemon=True,
                                     isolate={"hostname": node, "tmp_size": NODE_TMP_SIZE}, node_init=True)
        pid = _launch(launcher, fds, "the node's init")
    found = inspect(pid)
    if found is None or found.role != role:
        raise ApplyError(f"the init of {node} ended at its start", element=f"nodes.{node}", permanent=False)
    return found


def node_namespaces(lab: str, node: str, namespace: str | None, kinds: tuple[str, ...]) -> dict[str, int]:
    """fds on the node init's namespaces `kinds`, opened while its pidfd proves it is still that process in the
    node's init cgroup and network namespace (so a recycled pid can never lend its namespaces)."""
    if namespace is None or node == cells.FABRIC_CGROUP:
        raise ApplyError("only a node's processes can join its namespaces")
    for _attempt in range(3):
        proc = node_init(lab, node, namespace)
        try:
            pidfd = os.pidfd_open(proc.pid)
        except ProcessLookupError:
            continue
        fds: dict[str, int] = {}
        try:
            for kind in kinds:
                fds[kind] = os.open(f"/proc/{proc.pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
            signal.pidfd_send_signal(pidfd, 0)  # still alive: the fds are its namespaces
            if inspect(proc.pid) == proc and _init_matches(proc, check_namespace(namespace)):
                return fds
        except (ProcessLookupError, FileNotFoundError):
            pass
        finally:
            os.close(pidfd)
        close_fds(list(fds.values()))
    raise ApplyError(f"the init of {node} keeps ending", element=f"nodes.{node}", permanent=False)


def spawn(
    argv: list[str],
    *,
    lab: str,
    role: str,
    namespace: str | None,
    log_path: Path | None = None,
    cwd: Path | str | None = None,
    caps: tuple[str, ...] | list[str] = (),
    node: str | None = None,
    env: dict[str, str] | None = None,
    in_node: bool = False,
) -> int:
    """Start `argv` as a detached daemon in the lab's cell, inside `namespace` (None: the lab's fabric user
    namespace without entering a network namespace), and return its pid. It runs as uid 0 of the lab's user
    namespace with only `caps` there, in the cgroup `<lab>/<node>/<role>`.

    The program must stay in the foreground (`--keep-in-foreground`, `-f`, ...): the returned pid is the process
    that was exec'd; a program that forks again stays in the cgroup, so its children are found and stopped too.
    `in_node`: in the PID namespace of the node's init (a node's own daemons: its consoles' `ps` shows them).
    """
    launcher, fds = cell_command(argv, lab=lab, role=role, namespace=namespace, node=node, caps=caps,
                                 log_path=log_path, cwd=cwd, env=env, daemon=True, join=("pid",) if in_node else ())
    return _launch(launcher, fds, argv[0])


def _launch(launcher: list[str], fds: list[int], what: str) -> int:
    """Run the launcher of a daemon and return the daemon's pid; closes `fds`."""
    try:
        done = subprocess.run(launcher, env=dict(BASE_ENV), stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=30, pass_fds=fds)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ApplyError(f"cannot start {what}: {exc}", permanent=False) from exc
    finally:
        close_fds(fds)
    try:
        answer = json.loads(done.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise ApplyError(f"cannot start {what}: {done.stderr.decode(errors='replace').strip()}") from exc
    if "pid" not in answer:
        raise ApplyError(f"cannot start {what}: {answer.get('error')}")
    return int(answer["pid"])


class OutputOverflow(ApplyError):
    """A program run by `run_in_cell(..., kill_on_overflow=True)` wrote more than it may: it was stopped.
    `stdout`/`stderr` hold what was read (at most the limit each)."""

    def __init__(self, message: str, stdout: bytes, stderr: bytes):
        super().__init__(message, permanent=True)
        self.stdout, self.stderr = stdout, stderr


def _bounded_communicate(proc: subprocess.Popen[bytes], input: bytes | None, timeout: float, limit: int,
                         kill_on_overflow: bool, on_exit: Callable[[], object]) -> tuple[bytes, bytes, bool]:
    """(stdout, stderr, overflowed): read both pipes until EOF, keeping at most `limit` bytes of each (the rest is
    read and dropped, or, with `kill_on_overflow`, the first byte past the limit ends the reading). Memory stays
    bounded whatever the program writes; TimeoutExpired after `timeout` seconds. Once the program itself ended,
    `on_exit` stops what it left running (in the node's shared PID namespace a background child outlives it and
    would hold the pipes open)."""

    if input is not None and proc.stdin is not None:
        try:
            proc.stdin.write(input)
        except BrokenPipeError:
            pass
        proc.stdin.close()
    deadline = time.monotonic() + timeout
    kept: dict[int, bytearray] = {}
    with selectors.DefaultSelector() as sel:
        for pipe in (proc.stdout, proc.stderr):
            assert pipe is not None
            kept[pipe.fileno()] = bytearray()
            sel.register(pipe.fileno(), selectors.EVENT_READ)
        exited = False
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(proc.args, timeout)
            if not exited and proc.poll() is not None:
                exited = True
                on_exit()
            for key, _ in sel.select(min(left, 0.05 if not exited else 1.0)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fd)
                    continue
                buf = kept[key.fd]
                room = limit - len(buf)
                if len(chunk) > room and kill_on_overflow:
                    buf += chunk[:max(room, 0)]
                    assert proc.stdout is not None and proc.stderr is not None
                    return bytes(kept[proc.stdout.fileno()]), bytes(kept[proc.stderr.fileno()]), True
                if room > 0:
                    buf += chunk[:room]
    try:
        proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        raise subprocess.TimeoutExpired(proc.args, timeout) from None
    assert proc.stdout is not None and proc.stderr is not None
    return bytes(kept[proc.stdout.fileno()]), bytes(kept[proc.stderr.fileno()]), False


def run_in_cell(argv: list[str], *, lab: str, role: str, namespace: str, caps: tuple[str, ...] | list[str] = (),
                timeout: float = 30.0, input: bytes | None = None, max_output: int = 1 << 20,
                isolate: dict[str, Any] | None = None, as_console: bool = False,
                kill_on_overflow: bool = False) -> subprocess.CompletedProcess[bytes]:
    """Run a short program to completion in the lab's cell, in `namespace`, as its processes run (uid 0 of the
    lab's user namespace, only `caps` there, the node's cgroup): for checks and tests of what a lab may do.
    Output is captured up to `max_output` bytes each (never more is held in memory); with `kill_on_overflow`, a
    program writing more is stopped (OutputOverflow). The program and everything it forked are stopped after
    `timeout` (ApplyError). `as_console`: in the node's PID, mount and UTS namespaces, as its console shells."""
    launcher, fds = cell_command(argv, lab=lab, role=role, namespace=namespace, caps=caps, isolate=isolate,
                                 join=CONSOLE_JOIN if as_console else ())
    try:
        proc = subprocess.Popen(launcher, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(BASE_ENV),
                                pass_fds=fds)
    finally:
        close_fds(fds)
    try:
        out, err, overflowed = _bounded_communicate(proc, input, timeout, max_output, kill_on_overflow,
                                                    lambda: stop_all(lab, role, timeout=2.0))
        if overflowed:
            proc.kill()
            stop_all(lab, role, timeout=2.0)
            proc.wait()
            raise OutputOverflow(f"{argv[0]} wrote more than {max_output} bytes: stopped", out, err)
    except subprocess.TimeoutExpired:
        proc.kill()
        stop_all(lab, role, timeout=2.0)
        proc.wait()
        raise ApplyError(f"{argv[0]} did not finish within {timeout:g} s", permanent=False) from None
    finally:
        stop_all(lab, role, timeout=2.0)  # whatever it left running
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


# ---------------------------------------------------------------------------------------------- find


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None  # the process vanished (or is a kernel thread we cannot read): not ours


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start_time) from /proc/<pid>/stat, or None when the pid does not exist."""
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = raw[raw.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[1]), int(fields[19])


def inspect(pid: int) -> TaggedProcess | None:
    """The lab process currently holding `pid`, or None (gone, zombie, or in no lab's cgroup)."""
    before = _stat(pid)
    if before is None or before[0] in ("Z", "X"):
        return None
    member = cgroups.membership(pid)
    cmdline = _read(f"/proc/{pid}/cmdline")
    after = _stat(pid)
    # the pid must be the same process before and after reading its cgroup
    if member is None or cmdline is None or after is None or after[2] != before[2]:
        return None
    argv = tuple(part.decode(errors="replace") for part in cmdline.split(b"\0")[:-1])
    return TaggedProcess(pid=pid, lab=member[0], role=member[2], argv=argv, start_time=before[2], node=member[1])


def ns_pid(pid: int) -> int | None:
    """`pid` as the process sees itself (in its innermost PID namespace: what it writes into a pid file), or
    None when it is gone."""
    status = _read(f"/proc/{pid}/status")
    for line in (status or b"").splitlines():
        if line.startswith(b"NSpid:"):
            return int(line.split()[-1])
    return None


def find(lab: str | None = None, role: str | None = None) -> list[TaggedProcess]:
    """Every live process in the cgroups of `lab` (any lab when None) with `role` (any when None), by pid."""
    found = []
    for member_lab, node, member_role, pid in cgroups.members(lab):
        if role is not None and member_role != role:
            continue
        stat = _stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            continue
        cmdline = _read(f"/proc/{pid}/cmdline") or b""
        argv = tuple(part.decode(errors="replace") for part in cmdline.split(b"\0")[:-1])
        found.append(TaggedProcess(pid, member_lab, member_role, argv, stat[2], node))
    return sorted(found, key=lambda p: p.pid)


# ---------------------------------------------------------------------------------------------- stop


def _same(proc: TaggedProcess) -> bool:
    """True when `proc.pid` still is that process; False when it is gone (or dead); raises when the pid now
    belongs to a process outside that cgroup although its start time matches (a forged or corrupted record)."""
    stat = _stat(proc.pid)
    if stat is None or stat[2] != proc.start_time or stat[0] in ("Z", "X"):
        return False
    now = inspect(proc.pid)
    if now is None or now.lab != proc.lab or now.role != proc.role:
        again = _stat(proc.pid)
        if again is None or again[0] in ("Z", "X") or again[2] != proc.start_time:
            return False  # it ended meanwhile (a node's init ending takes its PID namespace with it)
        raise ApplyError(
            f"refusing to signal pid {proc.pid}: it is not in the cgroup of lab={proc.lab} role={proc.role}",
            permanent=True,
        )
    return True


def _reap_if_child(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: its parent (or init) reaps it


def _wait_dead(proc: TaggedProcess, deadline: float) -> bool:
    while time.monotonic() < deadline:
        _reap_if_child(proc.pid)
        stat = _stat(proc.pid)
        if stat is None or stat[2] != proc.start_time:
            return True
        if stat[0] in ("Z", "X") and stat[1] != os.getpid():
            return True  # dead; an orphan zombie waits for init, which may never reap it (see module doc)
        time.sleep(0.02)
    return False


def stop(proc: TaggedProcess, *, timeout: float = 5.0) -> None:
    """SIGTERM, wait up to `timeout`, SIGKILL, wait until dead. Cgroup and start time are re-verified right before
    each signal; a process that no longer matches is never signalled."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _same(proc):
            _reap_if_child(proc.pid)
            return
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            return
        if _wait_dead(proc, time.monotonic() + timeout):
            return
    raise ApplyError(f"pid {proc.pid} ({proc.role}) survived SIGKILL for {timeout:.0f} s", permanent=False)


def stop_all(lab: str, role: str | None = None, *, timeout: float = 5.0) -> list[TaggedProcess]:
    """Stop every process of `lab` (with `role`, when given): SIGTERM to each, then SIGKILL to whatever is left
    in those cgroups, again until none is (a fork bomb cannot outrun it: a killed process forks no more).
    Returns what was found at first."""
    procs = find(lab, role)
    for proc in procs:
        try:
            if _same(proc):
                os.kill(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, ApplyError):
            pass
    deadline = time.monotonic() + timeout
    while find(lab, role) and time.monotonic() < deadline:
        time.sleep(0.02)
        _reap_children(procs)
    kill_all(lab, role, timeout=timeout)
    return procs


def _reap_children(procs: list[TaggedProcess]) -> None:
    for proc in procs:
        _reap_if_child(proc.pid)


def kill_all(lab: str, role: str | None = None, *, timeout: float = 5.0) -> None:
    """SIGKILL every member of the lab's (role's) cgroups until none is left; ApplyError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        left = find(lab, role)
        if not left:
            return
        for proc in left:
            try:
                if _same(proc):
                    os.kill(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, ApplyError):
                pass
        _reap_children(left)
        if time.monotonic() > deadline:
            raise ApplyError(f"{len(left)} processes of lab {lab} ({role or 'all roles'}) survived SIGKILL",
                             permanent=False)
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------- run


def run(
    argv: list[str],
    *,
    namespace: str | None = None,
    input: bytes | None = None,
    timeout: float = 30.0,
    check: bool = True,
    element: str = "",
) -> subprocess.CompletedProcess[bytes]:
    """Run a short command (nft, tc, ip, sysctl) to completion inside `namespace`, output captured.

    With `check`, a non-zero exit raises `ApplyError(element=element)` carrying the command's stderr.
    """
    argv = check_argv(argv)
    if namespace is not None:
        check_namespace(namespace)
        # nsenter without --fork execs the command after setns: no extra process, net namespace only
        argv = ["nsenter", f"--net={NETNS_DIR / namespace}", "--", *argv]
    try:
        done = subprocess.run(
            argv, input=input, capture_output=True, timeout=timeout, env=dict(BASE_ENV),
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise ApplyError(f"{' '.join(argv)}: timed out after {timeout} s", element=element, permanent=False) from exc
    except OSError as exc:
        raise ApplyError(f"{argv[0]}: {exc}", element=element) from exc
    if check and done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip() or done.stdout.decode(errors="replace").strip()
        raise ApplyError(f"{' '.join(argv)} exited {done.returncode}: {err}", element=element)
    return done
