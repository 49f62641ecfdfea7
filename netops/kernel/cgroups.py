"""cgroups of lab cells: `topolab/<lab>/<node>/<role>`, with limits on the lab and node levels.

Every process Topolab starts for a lab is put (by the launcher, while still root) into the leaf of its role. Its
users cannot leave it or forge another: the cgroup files are the host root's, and a lab's processes hold no
capability in the initial user namespace. So membership, not an environment variable, says which lab, node and role
a process belongs to (`members()`), and limits on the node level (memory, number of processes, CPU) bound
everything under it: a fork bomb in a console stops at the node's pids limit, a memory hog is killed inside its node.

Two layouts, chosen once per host by what is mounted:
- cgroup v2 (a stock Debian 12): one tree under /sys/fs/cgroup with the memory, pids and cpu controllers enabled
  down to the node level (`cgroup.subtree_control`); processes live only in role leaves (v2's no-internal-process
  rule). Limits: memory.max, pids.max, cpu.max (quota), cpu.weight.
- cgroup v1 (these CI machines: a v1 hierarchy per controller, and a v2 mount at /sys/fs/cgroup/unified with no
  controllers): the same tree in each of the memory, pids and cpu hierarchies. Limits: memory.limit_in_bytes,
  pids.max, cpu.cfs_quota_us, cpu.shares. Membership is read from the pids hierarchy.
"""
from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(os.environ.get("TOPOLAB_CGROUP_FS", "/sys/fs/cgroup"))
TOP = os.environ.get("TOPOLAB_CGROUP_NAME", "topolab")


def top() -> str:
    """The name of Topolab's tree: TOP, or `TOP-<tag>` for a simulated host (netops.naming.host_tag)."""
    from .. import naming

    tag = naming.host_tag()
    return f"{TOP}-{tag}" if tag else TOP
CONTROLLERS = ("pids", "memory", "cpu")
CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class Limits:
    """memory in bytes, pids a count, cpu in CPUs (0.5 = half of one); None = not limited on this level.
    `weight` is the CPU share relative to the host's own processes (100 = equal)."""

    memory: int | None = None
    pids: int | None = None
    cpu: float | None = None
    weight: int | None = None


def _is_v2() -> bool:
    return (ROOT / "cgroup.controllers").exists()


def _bases() -> dict[str, Path]:
    """controller -> the directory of TOP in its hierarchy (v2: one for all)."""
    if _is_v2():
        return {c: ROOT / top() for c in CONTROLLERS}
    found = {}
    for c in CONTROLLERS:
        if (ROOT / c / "cgroup.procs").exists():
            found[c] = ROOT / c / top()
    if "pids" not in found:
        raise OSError(errno.ENOTSUP, f"no pids cgroup controller under {ROOT}")
    return found


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _check_part(part: str) -> str:
    if not part or "/" in part or part in (".", "..") or "\0" in part or "\n" in part:
        raise ValueError(f"{part!r} is not a cgroup name")
    return part


def _enable_controllers(directory: Path) -> None:
    """v2: let the children of `directory` use memory, pids and cpu."""
    available = set((directory / "cgroup.controllers").read_text().split())
    wanted = [c for c in CONTROLLERS if c in available]
    enabled = set((directory / "cgroup.subtree_control").read_text().split())
    missing = [c for c in wanted if c not in enabled]
    if missing:
        _write(directory / "cgroup.subtree_control", " ".join("+" + c for c in missing))


def _apply(controller: str, directory: Path, limits: Limits, v2: bool) -> None:
    if v2:
        if controller == "memory" and limits.memory is not None:
            _write(directory / "memory.max", str(limits.memory))
            if (directory / "memory.swap.max").exists():
                _write(directory / "memory.swap.max", "0")
        elif controller == "pids" and limits.pids is not None:
            _write(directory / "pids.max", str(limits.pids))
        elif controller == "cpu":
            if limits.cpu is not None:
                _write(directory / "cpu.max", f"{int(limits.cpu * CPU_PERIOD_US)} {CPU_PERIOD_US}")
            if limits.weight is not None:
                _write(directory / "cpu.weight", str(max(1, min(10000, limits.weight))))
        return
    if controller == "memory" and limits.memory is not None:
        _write(directory / "memory.limit_in_bytes", str(limits.memory))
    elif controller == "pids" and limits.pids is not None:
        _write(directory / "pids.max", str(limits.pids))
    elif controller == "cpu":
        if limits.cpu is not None:
            _write(directory / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(directory / "cpu.cfs_quota_us", str(int(limits.cpu * CPU_PERIOD_US)))
        if limits.weight is not None:
            _write(directory / "cpu.shares", str(max(2, limits.weight * 1024 // 100)))


def _mkdir(directory: Path) -> bool:
    try:
        directory.mkdir(mode=0o755)
        return True
    except FileExistsError:
        return False


def ensure(lab: str, node: str, role: str, *, lab_limits: Limits, node_limits: Limits) -> list[Path]:
    """Make the role's cgroup (and the lab's and node's, with their limits, when new); the cgroup.procs files to
    write a pid into to put it there."""
    try:
        return _ensure(lab, node, role, lab_limits, node_limits)
    except FileNotFoundError:  # another lab's destroy removed the empty top directory meanwhile
        return _ensure(lab, node, role, lab_limits, node_limits)


def _ensure(lab: str, node: str, role: str, lab_limits: Limits, node_limits: Limits) -> list[Path]:
    for part in (lab, node, role):
        _check_part(part)
    v2 = _is_v2()
    procs_files = []
    for controller, base in _bases().items():
        if _mkdir(base) and v2:
            _enable_controllers(base.parent)
        if v2:
            _enable_controllers(base)
        lab_dir, node_dir, role_dir = base / lab, base / lab / node, base / lab / node / role
        controllers = CONTROLLERS if v2 else (controller,)
        if _mkdir(lab_dir):
            if v2:
                _enable_controllers(lab_dir)
            for c in controllers:
                _apply(c, lab_dir, lab_limits, v2)
        if _mkdir(node_dir):
            if v2:
                _enable_controllers(node_dir)
            for c in controllers:
                _apply(c, node_dir, node_limits, v2)
        if v2:
            _enable_controllers(node_dir)
        _mkdir(role_dir)
        procs_files.append(role_dir / "cgroup.procs")
        if v2:
            break  # one tree for all controllers
    return procs_files


def set_node_limits(lab: str, node: str, limits: Limits) -> None:
    """Apply `limits` to an existing node cgroup (a redeploy that changed the node's limits)."""
    v2 = _is_v2()
    for controller, base in _bases().items():
        node_dir = base / _check_part(lab) / _check_part(node)
        if node_dir.is_dir():
            for c in (CONTROLLERS if v2 else (controller,)):
                _apply(c, node_dir, limits, v2)
        if v2:
            break


def _read_pids(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def _membership_base() -> Path:
    return _bases()["pids"]


def members(lab: str | None = None) -> Iterator[tuple[str, str, str, int]]:
    """(lab, node, role, pid) of every process in a role leaf of `lab` (every lab when None)."""
    base = _membership_base()
    try:
        labs = [lab] if lab is not None else sorted(os.listdir(base))
    except FileNotFoundError:
        return
    for lab_name in labs:
        lab_dir = base / lab_name
        try:
            nodes = sorted(e.name for e in os.scandir(lab_dir) if e.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            continue
        for node in nodes:
            try:
                roles = sorted(e.name for e in os.scandir(lab_dir / node) if e.is_dir())
            except FileNotFoundError:
                continue
            for role in roles:
                for pid in _read_pids(lab_dir / node / role / "cgroup.procs"):
                    yield lab_name, node, role, pid


def labs() -> list[str]:
    """Every lab that has a cgroup here."""
    names: set[str] = set()
    for base in _bases().values():
        try:
            names |= {e.name for e in os.scandir(base) if e.is_dir()}
        except FileNotFoundError:
            pass
    return sorted(names)


def membership(pid: int) -> tuple[str, str, str] | None:
    """(lab, node, role) of process `pid` from /proc/<pid>/cgroup, or None when it is in no lab's role leaf."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    v2 = _is_v2()
    for line in text.splitlines():
        _hid, controllers, path = line.split(":", 2)
        if v2 and controllers != "":
            continue
        if not v2 and "pids" not in controllers.split(","):
            continue
        parts = path.strip("/").split("/")
        # v1 paths are relative to the hierarchy's root; v2 to the root of the unified tree
        if len(parts) == 4 and parts[0] == top():
            return parts[1], parts[2], parts[3]
        return None
    return None


def node_usage(lab: str, node: str) -> dict[str, int]:
    """Current memory (bytes) and process count of a node's cgroup; {} when it has none."""
    v2 = _is_v2()
    bases = _bases()
    usage: dict[str, int] = {}
    files = {"memory": ("memory", "memory.current" if v2 else "memory.usage_in_bytes"),
             "pids": ("pids", "pids.current")}
    for key, (controller, name) in files.items():
        base = bases.get(controller)
        if base is None:
            continue
        try:
            usage[key] = int((base / lab / node / name).read_text().strip())
        except (FileNotFoundError, ValueError):
            pass
    return usage


def remove(lab: str) -> list[str]:
    """Remove the lab's cgroups, deepest first (its processes must be gone); what was removed."""
    _check_part(lab)
    removed = []
    for base in dict.fromkeys(_bases().values()):
        lab_dir = base / lab
        if not lab_dir.is_dir():
            continue
        _rmtree(lab_dir)
        removed.append(str(lab_dir))
        try:
            os.rmdir(base)  # the last lab gone: leave no empty `topolab` behind (ensure() makes it again)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EBUSY, errno.ENOENT):
                raise
    return removed


def _rmtree(directory: Path) -> None:
    """rmdir a cgroup and its children, deepest first (a cgroup directory holds only kernel files)."""
    try:
        children = [Path(e.path) for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    for child in children:
        _rmtree(child)
    _rmdir(directory)


def _rmdir(path: Path) -> None:
    for _attempt in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            # a process just killed may take a moment to leave (its exit is still being torn down)
            time.sleep(0.02)
    os.rmdir(path)
