"""Tagged, safe process management: every daemon Topolab starts carries `TOPOLAB_LAB`/`TOPOLAB_ROLE` in its
environment, and is only ever signalled after its tag and start time were re-checked (DESIGN.md, "Isolation and
naming": a stale pidfile or a reused pid can never make Topolab kill someone else's process).

- `spawn()` starts a long-running daemon detached (new session, double fork through `_daemonize.py`, a fresh
  single-threaded interpreter, so forking is safe even from a threaded Celery worker) inside a network namespace.
- `find()` scans /proc for tagged processes; `stop()` terminates one; `run()` runs a short command (nft, tc, ip)
  inside a namespace and raises `ApplyError` with its stderr on failure.

Machine note (FACTS): PID 1 of the CI VM does not reap orphans, so a detached daemon that died stays a zombie.
A zombie has released everything but its pid and cannot be signalled; `stop()` therefore treats a zombie that is
not our child as dead (and reaps one that is).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import naming
from .errors import ApplyError

NETNS_DIR = Path("/run/netns")
#: the environment every Topolab process gets, besides its tags
BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
ROLE_RE = re.compile(r"^[A-Za-z0-9_.:@+-]{1,128}\Z")
_HELPER = Path(__file__).with_name("_daemonize.py")


@dataclass(frozen=True)
class TaggedProcess:
    """A process found carrying Topolab's tag. `start_time` (clock ticks after boot) detects pid reuse."""

    pid: int
    lab: str
    role: str
    argv: tuple[str, ...]
    start_time: int


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
    if not isinstance(namespace, str) or naming.parse_namespace(namespace) is None:
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


def spawn(
    argv: list[str],
    *,
    lab: str,
    role: str,
    namespace: str | None,
    log_path: Path | None = None,
    cwd: Path | str | None = None,
) -> int:
    """Start `argv` as a detached daemon inside `namespace` (None: the root namespace) and return its pid.

    The program must stay in the foreground (`--keep-in-foreground`, `-f`, ...): the returned pid is the process
    that was exec'd, and a program that forks again would escape tracking (its child keeps the tag, though).
    """
    argv = check_argv(argv)
    naming.check_lab_id(lab)
    check_role(role)
    netns = str(check_namespace(namespace)) if namespace is not None else ""
    log = str(Path(log_path)) if log_path is not None else ""
    workdir = str(Path(cwd)) if cwd is not None else ""
    for value in (log, workdir):
        if "\0" in value:
            raise ApplyError(f"path {value!r} contains NUL")
    env = dict(BASE_ENV, **{naming.PROCESS_TAG_ENV: lab, naming.PROCESS_ROLE_ENV: role})
    helper = [sys.executable, "-I", "-S", str(_HELPER), netns, log, workdir, "--", *argv]
    try:
        done = subprocess.run(helper, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ApplyError(f"cannot start {argv[0]}: {exc}", permanent=False) from exc
    try:
        answer = json.loads(done.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise ApplyError(f"cannot start {argv[0]}: {done.stderr.decode(errors='replace').strip()}") from exc
    if "pid" not in answer:
        raise ApplyError(f"cannot start {argv[0]}: {answer.get('error')}")
    return int(answer["pid"])


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


def _tags(pid: int) -> tuple[str, str] | None:
    raw = _read(f"/proc/{pid}/environ")
    if not raw:
        return None
    lab = role = None
    tag_key = naming.PROCESS_TAG_ENV.encode() + b"="
    role_key = naming.PROCESS_ROLE_ENV.encode() + b"="
    for item in raw.split(b"\0"):
        if item.startswith(tag_key):
            lab = item[len(tag_key):].decode(errors="replace")
        elif item.startswith(role_key):
            role = item[len(role_key):].decode(errors="replace")
    if lab is None or not naming.LAB_ID_RE.match(lab):
        return None
    return lab, role or ""


def inspect(pid: int) -> TaggedProcess | None:
    """The tagged process currently holding `pid`, or None (gone, zombie, or not Topolab's)."""
    before = _stat(pid)
    if before is None or before[0] in ("Z", "X"):
        return None
    tags = _tags(pid)
    cmdline = _read(f"/proc/{pid}/cmdline")
    after = _stat(pid)
    # the pid must be the same process before and after reading its environment
    if tags is None or cmdline is None or after is None or after[2] != before[2]:
        return None
    argv = tuple(part.decode(errors="replace") for part in cmdline.split(b"\0")[:-1])
    return TaggedProcess(pid=pid, lab=tags[0], role=tags[1], argv=argv, start_time=before[2])


def find(lab: str | None = None, role: str | None = None) -> list[TaggedProcess]:
    """Every live process tagged for `lab` (any lab when None) with `role` (any when None), by pid."""
    own = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == own:
            continue
        proc = inspect(int(entry))
        if proc is None or (lab is not None and proc.lab != lab) or (role is not None and proc.role != role):
            continue
        found.append(proc)
    return sorted(found, key=lambda p: p.pid)


# ---------------------------------------------------------------------------------------------- stop


def _same(proc: TaggedProcess) -> bool:
    """True when `proc.pid` still is that process; False when it is gone (or dead); raises when the pid now
    belongs to a process that lacks the tag although its start time matches (a forged or corrupted record)."""
    stat = _stat(proc.pid)
    if stat is None or stat[2] != proc.start_time or stat[0] in ("Z", "X"):
        return False
    now = inspect(proc.pid)
    if now is None or now.lab != proc.lab or now.role != proc.role:
        if _stat(proc.pid) is None:
            return False
        raise ApplyError(
            f"refusing to signal pid {proc.pid}: it does not carry the tag lab={proc.lab} role={proc.role}",
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
    """SIGTERM, wait up to `timeout`, SIGKILL, wait until dead. Tag and start time are re-verified right before
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
    """Stop every process of `lab` (with `role`, when given); returns what was stopped."""
    procs = find(lab, role)
    for proc in procs:
        stop(proc, timeout=timeout)
    return procs


# ---------------------------------------------------------------------------------------------- run


def run(
    argv: list[str],
    *,
    namespace: str | None = None,
    input: bytes | None = None,
    timeout: float = 30.0,
    check: bool = True,
    element: str = "",
) -> subprocess.CompletedProcess:
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
