"""Destroy from KERNEL state: the lab's tagged processes, namespaces, root links, nft tables and run dir.

Works with no state files at all. An object is removed only when it carries the lab's tag as well as a name of
the lab's shape; a namespace called tl-<lab>-x that lacks the tag survives. Processes are the lab's cgroups'
members; the cgroups and the lab's uid range go last.
"""
from __future__ import annotations

import errno
import shutil
from pathlib import Path

from . import cell as cells
from . import naming, nft, procs, qemu
from .errors import ApplyError
from .events import Event, EventSink, emit
from .kernel import cgroups, netns
from .kernel import netlink as nl
from .observe import Found, find_tagged


def destroy_found(spaces: netns.Namespaces, labs: list[str], found: Found, on_event: EventSink = None) -> list[str]:
    removed: list[str] = []
    total = 0
    for lab in labs:
        # VMs first (graceful power-down), then every other tagged process of the lab
        for proc in procs.find(lab=lab):
            if proc.role.startswith("qemu:"):
                node = proc.role.split(":")[1]
                try:
                    qemu.stop_vm(lab, node)
                except Exception as exc:  # noqa: BLE001 - the process is killed below anyway; say why it was not graceful
                    emit(on_event, Event("run.warning", f"{node}: graceful VM stop failed: {exc}", node=node))
        for proc in procs.find(lab=lab):
            procs.stop(proc)
            removed.append(f"process {proc.pid} ({proc.role})")
            total += 1
            emit(on_event, Event("run.step", f"stop {proc.role} (pid {proc.pid})", step=total))
    with nl.NetlinkSocket() as root:
        for name, lab in sorted(found.root_links.items()):
            if lab not in labs:
                continue
            try:
                root.call(nl.link_del(name=name))
            except OSError as exc:
                raise ApplyError(f"cannot delete host link {name}: {exc}", element=f"lab {lab}") from exc
            removed.append(f"host link {name}")
            total += 1
            emit(on_event, Event("run.step", f"delete host link {name}", step=total))
    for lab in labs:
        for table in nft.delete_lab_tables(lab) or []:
            removed.append(f"nft table {table}")
    for name, (owner, ns_node) in sorted(found.namespaces.items()):
        if owner not in labs:
            continue
        try:
            if netns.delete(name):
                removed.append(f"namespace {name}")
                total += 1
                emit(on_event, Event("run.step", f"delete namespace {name}", node=ns_node, step=total))
        except OSError as exc:
            raise ApplyError(f"cannot delete namespace {name}: {exc}", element=f"nodes.{ns_node}" if ns_node else "fabric") from exc
    for lab in labs:
        host_forwarding_release(lab)
        left = procs.find(lab=lab)  # anything forked while the others were being stopped
        procs.kill_all(lab)
        removed += [f"process {proc.pid} ({proc.role})" for proc in left]
        for path in cgroups.remove(lab):
            removed.append(f"cgroup {path}")
        d = naming.run_dir(lab)
        if d.exists():
            shutil.rmtree(d)
            removed.append(f"run dir {d}")
        # last: the uid range is free again only once nothing of the lab runs or exists
        if cells.release(lab):
            removed.append(f"uid range of lab {lab}")
    return removed


def destroy_lab(lab: str, on_event: EventSink = None) -> list[str]:
    with netns.Namespaces() as spaces:
        found = find_tagged(spaces, lab)
        return destroy_found(spaces, [lab], found, on_event)


def destroy_all(on_event: EventSink = None) -> list[str]:
    with netns.Namespaces() as spaces:
        found = find_tagged(spaces, None)
        labs = {lab for lab, _ in found.namespaces.values()} | set(found.root_links.values())
        labs |= {p.lab for p in procs.find()}
        labs |= set(cgroups.labs()) | set(cells.allocated())
        root = naming.run_root()
        if root.exists():
            labs |= {p.name for p in root.iterdir() if p.is_dir() and naming.LAB_ID_RE.match(p.name)}
        return destroy_found(spaces, sorted(labs), found, on_event)


# --------------------------------------------------------------------------- host ip_forward bookkeeping

_FORWARD = "/proc/sys/net/ipv4/ip_forward"


def _forward_record() -> Path:
    return naming.run_root() / "host-ip-forward"


def host_forwarding_labs() -> set[str]:
    """Labs that hold the host's ip_forward (acquired and not yet released)."""
    try:
        lines = _forward_record().read_text().split()
    except FileNotFoundError:
        return set()
    return {line for line in lines if "=" not in line}


def host_forwarding_acquire(lab: str) -> None:
    """Turn on the host's ip_forward for an external with nat, remembering the previous value and the lab."""
    rec = _forward_record()
    rec.parent.mkdir(parents=True, exist_ok=True)
    lines = rec.read_text().split() if rec.exists() else []
    if not lines:
        with open(_FORWARD) as f:
            lines = [f"previous={f.read().strip()}"]
    if lab not in lines:
        lines.append(lab)
    rec.write_text("\n".join(lines) + "\n")
    with open(_FORWARD, "w") as f:
        f.write("1")


def host_forwarding_release(lab: str) -> None:
    """Forget the lab; when no lab needs it any more, restore the host's ip_forward as it was."""
    rec = _forward_record()
    try:
        lines = rec.read_text().split()
    except FileNotFoundError:
        return
    if lab not in lines:
        return
    lines.remove(lab)
    if len(lines) <= 1:
        previous = lines[0].partition("=")[2] if lines else ""
        if previous in ("0", "1"):
            with open(_FORWARD, "w") as f:
                f.write(previous)
        try:
            rec.unlink()
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
    else:
        rec.write_text("\n".join(lines) + "\n")
