"""A lab is a cell (DESIGN.md, "What a lab can and cannot do"): its own user namespace and uid range, cgroups with
limits, and run directories only the agent and that lab can read.

- **uid ranges.** Each deployed lab holds one slot of `SLOTS` ranges of `SIZE` host uids (and gids) from `UID_BASE`;
  uid 0..SIZE-1 inside the lab's user namespace are host uids `uid`..`uid`+SIZE-1. Slots are allocated under a
  machine-wide lock in `cells_dir()` (files `slot-<n>` holding the lab id, and `lab-<lab>` holding the slot), never
  shared by two labs, and released on destroy. The directory is machine-wide on purpose (not under the run dir):
  two Topolab installs on one machine, or a test run beside `make run`, must never hand out one range twice.
- **limits.** Operator defaults come from the environment (`TOPOLAB_NODE_MEMORY`, `TOPOLAB_NODE_PIDS`,
  `TOPOLAB_NODE_CPU`, `TOPOLAB_LAB_MEMORY`, `TOPOLAB_LAB_PIDS`, `TOPOLAB_LAB_CPU_WEIGHT`); a node may lower them in the
  document (`limits:`), never raise them (`node_limits`).
- **directories.** `naming.run_dir(lab)` is the agent's (root, 0711: a lab process may pass through to its own
  `cell_dir` but list or read nothing else there); `cell_dir(lab)` belongs to the lab's uid (0700): what the lab's
  processes write (leases, sockets, logs, overlays). The agent never trusts what is in it.
"""
from __future__ import annotations

import fcntl
import os
import socket
import stat as stat_module
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import limits, naming
from .errors import ApplyError, TopologyError
from .kernel import cgroups
from .kernel.userns import IdMap
from .limits import parse_size
from .model import NodeLimits

SIZE = 65536
UID_BASE = int(os.environ.get("TOPOLAB_CELL_UID_BASE", str(0x40000000)), 0)
SLOTS = int(os.environ.get("TOPOLAB_CELL_SLOTS", "4096"))
FABRIC_CGROUP = "_fabric"  # the cgroup of processes in the fabric namespace (node names start with a letter)



def cells_dir() -> Path:
    return Path(os.environ.get("TOPOLAB_CELLS_DIR", "/run/topolab-cells"))


@dataclass(frozen=True)
class Cell:
    lab: str
    slot: int

    @property
    def uid(self) -> int:
        """The host uid that is uid 0 inside the lab's user namespace."""
        return UID_BASE + self.slot * SIZE

    @property
    def gid(self) -> int:
        return self.uid

    def ids(self) -> IdMap:
        return IdMap(0, self.uid, SIZE)

    def owns_host_uid(self, uid: int) -> bool:
        return self.uid <= uid < self.uid + SIZE


@contextmanager
def _locked() -> Iterator[Path]:
    d = cells_dir()
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield d
    finally:
        os.close(fd)


def _read_slot(d: Path, lab: str) -> int | None:
    key = naming.lab_key(lab)  # the lab id, or <tag>.<lab> on a simulated host (the directory is machine-wide)
    try:
        slot = int((d / f"lab-{key}").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        if (d / f"slot-{slot}").read_text().strip() == key:
            return slot
    except FileNotFoundError:
        pass
    return None


def get(lab: str) -> Cell | None:
    """The lab's cell, if it holds one."""
    naming.check_lab_id(lab)
    d = cells_dir()
    slot = _read_slot(d, lab) if d.exists() else None
    return Cell(lab, slot) if slot is not None else None


def allocate(lab: str) -> Cell:
    """The lab's cell, allocating a free uid range when it holds none. Atomic across processes."""
    naming.check_lab_id(lab)
    with _locked() as d:
        slot = _read_slot(d, lab)
        if slot is None:
            taken = {int(p.name[5:]) for p in d.glob("slot-*") if p.name[5:].isdigit()}
            free = next((n for n in range(SLOTS) if n not in taken), None)
            if free is None:
                raise ApplyError(f"all {SLOTS} lab uid ranges are in use on this host", element="lab",
                                 permanent=False)
            (d / f"slot-{free}").write_text(naming.lab_key(lab) + "\n")
            (d / f"lab-{naming.lab_key(lab)}").write_text(f"{free}\n")
            slot = free
    return Cell(lab, slot)


def release(lab: str) -> bool:
    """Give the lab's uid range back (destroy, once nothing of the lab runs)."""
    naming.check_lab_id(lab)
    if not cells_dir().exists():
        return False
    with _locked() as d:
        slot = _read_slot(d, lab)
        (d / f"lab-{naming.lab_key(lab)}").unlink(missing_ok=True)
        if slot is not None:
            (d / f"slot-{slot}").unlink(missing_ok=True)
    return slot is not None


def allocated() -> dict[str, int]:
    """lab -> slot of every cell of this host's (a simulated host's own only)."""
    out = {}
    for key, slot in allocated_keys().items():
        lab = naming.lab_of_key(key)
        if lab is not None:
            out[lab] = slot
    return out


def allocated_keys() -> dict[str, int]:
    """key -> slot of every cell on this machine, simulated hosts' too (naming.lab_key)."""
    d = cells_dir()
    if not d.exists():
        return {}
    out = {}
    for p in d.glob("slot-*"):
        try:
            out[p.read_text().strip()] = int(p.name[5:])
        except (FileNotFoundError, ValueError):
            continue
    return out


# ---------------------------------------------------------------------------------------------- directories


def cell_dir(lab: str) -> Path:
    """Where the lab's own processes write: owned by the lab's uid, 0700."""
    return naming.run_dir(lab) / "cell"


def prepare_dirs(cell: Cell) -> Path:
    """Make the run dir (root, 0711) and the cell dir (the lab's uid, 0700); returns the cell dir. Refuses a cell
    dir that is a symlink or owned by anyone but the lab (never chowns what it did not make)."""
    for root in dict.fromkeys((naming.run_root(), naming.labs_root())):
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o711)
    run = naming.run_dir(cell.lab)
    run.mkdir(exist_ok=True)
    os.chown(run, 0, 0)
    os.chmod(run, 0o711)
    d = cell_dir(cell.lab)
    try:
        os.mkdir(d, 0o700)
        os.chown(d, cell.uid, cell.gid)
    except FileExistsError:
        pass
    st = os.lstat(d)
    if not os.path.isdir(d) or os.path.islink(d) or st.st_uid != cell.uid:
        raise ApplyError(f"{d} is not the lab's cell directory", element="lab")
    os.chmod(d, 0o700)
    return d


# ---------------------------------------------------------------------------------------------- limits


def _env_size(name: str, default: str) -> int:
    value = parse_size(os.environ.get(name, default))
    if value is None:
        raise TopologyError(f"{name}={os.environ.get(name)!r} is not a size")
    return value


def default_node_limits() -> cgroups.Limits:
    d = limits.defaults()
    return cgroups.Limits(memory=d.memory, pids=d.pids, cpu=d.cpu)


def lab_limits() -> cgroups.Limits:
    """The whole lab: memory and processes, and a CPU weight below the host's own processes (the agent and the web
    tier win when a lab spins)."""
    return cgroups.Limits(memory=_env_size("TOPOLAB_LAB_MEMORY", "8G"),
                          pids=int(os.environ.get("TOPOLAB_LAB_PIDS", "4096")),
                          weight=int(os.environ.get("TOPOLAB_LAB_CPU_WEIGHT", "25")))


def node_limits(requested: NodeLimits | None, *, extra_memory: int = 0) -> cgroups.Limits:
    """The operator's node defaults, lowered by what the document asks (`requested`); `extra_memory` is added to
    the default only (a VM's own memory)."""
    base = default_node_limits()
    memory = (base.memory or 0) + extra_memory
    pids, cpu = base.pids, base.cpu
    if requested is not None:
        if requested.memory is not None:
            memory = min(memory, requested.memory)
        if requested.pids is not None:
            pids = min(pids or requested.pids, requested.pids)
        if requested.cpu is not None:
            cpu = min(cpu or requested.cpu, requested.cpu)
    return cgroups.Limits(memory=memory, pids=pids, cpu=cpu)


def cgroup_node(namespace_or_node: str | None) -> str:
    """The node level cgroup name for a process in `namespace_or_node` (a namespace name, or a node name)."""
    if namespace_or_node is None:
        return FABRIC_CGROUP
    parsed = naming.parse_namespace(namespace_or_node)
    if parsed is not None:
        return parsed[1] or FABRIC_CGROUP
    if naming.NODE_NAME_RE.match(namespace_or_node):
        return namespace_or_node
    raise ApplyError(f"{namespace_or_node!r} names no node")


def read_bytes(lab: str, path: Path, limit: int = 1 << 20) -> bytes | None:
    """Read a file the lab's processes wrote (in its cell dir) as the agent may: never through a link, only a
    regular file owned by the lab's uid range, at most `limit` bytes (the tail is dropped). None when missing."""
    cell = get(lab)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ApplyError(f"{path.name}: {exc.strerror} (not a file of the lab's)") from exc
    try:
        st = os.fstat(fd)
        if not stat_module.S_ISREG(st.st_mode) or cell is None or not cell.owns_host_uid(st.st_uid):
            raise ApplyError(f"{path.name} is not a file of lab {lab}'s")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit)
    finally:
        os.close(fd)


def read_text(lab: str, path: Path, limit: int = 1 << 20) -> str | None:
    data = read_bytes(lab, path, limit)
    return None if data is None else data.decode(errors="replace")


def connect_unix(lab: str, path: Path, *, timeout: float = 5.0) -> socket.socket:
    """A connected unix socket to a listener the lab's processes made in its cell dir (a VM's console or QMP),
    reached through an O_PATH fd: never through a link the lab planted there (it could point at another lab's
    socket), only a socket owned by the lab's uid range."""
    cell = get(lab)
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ApplyError(f"{path.name}: {exc.strerror} (not a socket of the lab's)") from exc
    try:
        st = os.fstat(fd)
        if not stat_module.S_ISSOCK(st.st_mode) or cell is None or not cell.owns_host_uid(st.st_uid):
            raise ApplyError(f"{path.name} is not a socket of lab {lab}'s")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        try:
            sock.connect(f"/proc/self/fd/{fd}")
        except BaseException:
            sock.close()
            raise
        return sock
    finally:
        os.close(fd)
