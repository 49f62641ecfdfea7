"""Destroy from KERNEL state: the lab's tagged processes, namespaces, root links, nft tables and run dir.

Works with no state files at all. An object is removed only when it carries the lab's tag as well as a name of
the lab's shape; a namespace called tl-<lab>-x that lacks the tag survives. Processes are the lab's cgroups'
members; the cgroups and the lab's uid range go last.
"""
from __future__ import annotations

from pathlib import Path

from . import naming, nft
from .errors import ApplyError
from .events import Event, EventSink, emit
from .kernel import netlink as nl
from .kernel import netns
from .kernel.host import HOST, Kernel
from .observe import Found, find_tagged, kernel_of


def destroy_found(spaces: netns.Namespaces | None, labs: list[str], found: Found, on_event: EventSink = None, *,
                  kernel: Kernel | None = None) -> list[str]:
    k = kernel_of(spaces, kernel)
    removed: list[str] = []
    total = 0
    for lab in labs:
        # VMs first (graceful power-down), then every other tagged process of the lab
        for proc in k.processes(lab):
            if proc.role.startswith("qemu:"):
                node = proc.role.split(":")[1]
                try:
                    k.stop_vm(lab, node)
                except Exception as exc:  # noqa: BLE001 - the process is killed below anyway; say why it was not graceful
                    emit(on_event, Event("run.warning", f"{node}: graceful VM stop failed: {exc}", node=node))
        for proc in k.processes(lab):
            k.stop_process(proc)
            removed.append(f"process {proc.pid} ({proc.role})")
            total += 1
            emit(on_event, Event("run.step", f"stop {proc.role} (pid {proc.pid})", step=total))
    with k.netlink(None) as root:
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
        for table in nft.delete_lab_tables(lab, kernel=k) or []:
            removed.append(f"nft table {table}")
    for name, (owner, ns_node) in sorted(found.namespaces.items()):
        if owner not in labs:
            continue
        try:
            if k.delete_namespace(name):
                removed.append(f"namespace {name}")
                total += 1
                emit(on_event, Event("run.step", f"delete namespace {name}", step=total,
                                     node=None if ns_node == naming.TUNNEL_NODE else ns_node))
        except OSError as exc:
            raise ApplyError(f"cannot delete namespace {name}: {exc}", element=f"nodes.{ns_node}" if ns_node else "fabric") from exc
    for lab in labs:
        host_forwarding_release(lab, kernel=k)
        left = k.processes(lab)  # anything forked while the others were being stopped
        k.kill_processes(lab)
        removed += [f"process {proc.pid} ({proc.role})" for proc in left]
        for path in k.remove_cgroups(lab):
            removed.append(f"cgroup {path}")
        d = naming.run_dir(lab)
        if k.remove(d):
            removed.append(f"run dir {d}")
        # last: the uid range is free again only once nothing of the lab runs or exists
        if k.release_cell(lab):
            removed.append(f"uid range of lab {lab}")
    return removed


def destroy_lab(lab: str, on_event: EventSink = None, *, kernel: Kernel | None = None) -> list[str]:
    with netns.Namespaces() as spaces:
        k = kernel_of(spaces, kernel)
        found = find_tagged(spaces, lab, kernel=k)
        return destroy_found(spaces, [lab], found, on_event, kernel=k)


def destroy_all(on_event: EventSink = None, *, kernel: Kernel | None = None) -> list[str]:
    with netns.Namespaces() as spaces:
        k = kernel_of(spaces, kernel)
        found = find_tagged(spaces, None, kernel=k)
        labs = {lab for lab, _ in found.namespaces.values()} | set(found.root_links.values())
        labs |= {p.lab for p in k.processes()}
        labs |= set(k.cgroup_labs()) | set(k.cell_labs())
        labs |= {name for name in k.subdirectories(naming.labs_root()) if naming.LAB_ID_RE.match(name)}
        return destroy_found(spaces, sorted(labs), found, on_event, kernel=k)


# --------------------------------------------------------------------------- host ip_forward bookkeeping

_FORWARD = "net.ipv4.ip_forward"


def _forward_record() -> Path:
    return naming.run_root() / "host-ip-forward"


def host_forwarding_labs(*, kernel: Kernel = HOST) -> set[str]:
    """Labs that hold the host's ip_forward (acquired and not yet released)."""
    text = kernel.read_text(_forward_record())
    if text is None:
        return set()
    return {lab for lab in (naming.lab_of_key(line) for line in text.split() if "=" not in line) if lab}


def host_forwarding_acquire(lab: str, *, kernel: Kernel = HOST) -> None:
    """Turn on the host's ip_forward for an external with nat, remembering the previous value and the lab."""
    rec = _forward_record()
    lines = (kernel.read_text(rec) or "").split()
    if not lines:
        lines = [f"previous={kernel.read_sysctl(None, _FORWARD)}"]
    key = naming.lab_key(lab)  # the record is the machine's: simulated hosts share the host's ip_forward
    if key not in lines:
        lines.append(key)
    kernel.write_text(rec, "\n".join(lines) + "\n")
    kernel.write_sysctl(None, _FORWARD, "1")


def host_forwarding_release(lab: str, *, kernel: Kernel = HOST) -> None:
    """Forget the lab; when no lab needs it any more, restore the host's ip_forward as it was."""
    rec = _forward_record()
    text = kernel.read_text(rec)
    if text is None:
        return
    lines = text.split()
    key = naming.lab_key(lab)
    if key not in lines:
        return
    lines.remove(key)
    if len(lines) <= 1:
        previous = lines[0].partition("=")[2] if lines else ""
        if previous in ("0", "1"):
            kernel.write_sysctl(None, _FORWARD, previous)
        kernel.remove(rec)
    else:
        kernel.write_text(rec, "\n".join(lines) + "\n")
