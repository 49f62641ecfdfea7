"""The kernel seam as one object: what observe, destroy, nft and linkcond may ask of the kernel and the host.

`Kernel` is the interface those layers receive (a keyword argument, `HOST` by default); `Host` is the real thing,
delegating to the modules that do the work (`netns`, `netlink`, `sysctl`, `netops.procs`, `netops.cell`,
`netops.kernel.cgroups`, `netops.qemu`, `netops.frr`). Unit tests pass a fake that records the calls and answers
what the test set up (tests/netops/fakekernel.py), the way healthchecks sends all its HTTP through `hc.lib.curl`;
the real behaviour stays covered by the kernel tests. Nothing here decides anything: which objects are a lab's,
in which order they go and what an error means stay in the callers, where the unit tests see them.

Methods are at the grain the callers think in: a netlink socket per namespace, one sysctl, one program run, a
lab's processes, a file under /run. The applier (netops.engine, netops.linkops) keeps its own batched sockets and
namespace workers for speed and is covered by the kernel tests only.
"""
from __future__ import annotations

import errno
import functools
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from .. import cell, procs
from ..procs import TaggedProcess
from . import cgroups, netns, sysctl
from . import netlink as nl


class Netlink(Protocol):
    """What callers use of an rtnetlink socket (netops.kernel.netlink.NetlinkSocket)."""

    def links(self) -> list[nl.LinkInfo]: ...
    def addresses(self) -> list[nl.AddrInfo]: ...
    def routes(self) -> list[nl.RouteInfo]: ...
    def qdiscs(self) -> list[nl.QdiscInfo]: ...
    def link(self, index: int = 0, name: str | None = None) -> nl.LinkInfo | None: ...
    def call(self, request: nl.Request) -> None: ...
    def batch(self, requests: Iterable[nl.Request]) -> list[nl.NetlinkError | None]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Netlink: ...
    def __exit__(self, *exc: object) -> None: ...


class Kernel(Protocol):
    """The kernel and host state as the pure layers see it. Namespaces are named (None: the host's own)."""

    # ---- network namespaces and rtnetlink
    def namespace_names(self) -> list[str]:
        """Names in /run/netns (sorted)."""
        ...

    def netlink(self, namespace: str | None) -> Netlink:
        """An rtnetlink socket bound to `namespace`; the caller closes it. OSError (ENOENT, EINVAL) when the
        namespace is gone or is no namespace."""
        ...

    def delete_namespace(self, name: str) -> bool:
        """Remove the namespace's mount point (`ip netns del`); False if it was not there."""
        ...

    def supports_netem(self) -> bool:
        """Whether the kernel has sch_netem."""
        ...

    # ---- /proc/sys, as seen from a namespace
    def read_sysctl(self, namespace: str | None, key: str) -> str:
        """`key` in dotted form (net.ipv4.ip_forward), stripped."""
        ...

    def write_sysctl(self, namespace: str | None, key: str, value: str) -> None: ...

    # ---- host programs (nft, tc): argv, never a shell
    def run(self, argv: list[str], *, namespace: str | None = None, input: bytes | None = None,
            timeout: float = 30.0, check: bool = True, element: str = "") -> subprocess.CompletedProcess[bytes]:
        """Run to completion inside `namespace`; with `check`, a non-zero exit is an ApplyError(element)."""
        ...

    # ---- a lab's processes, cgroups and cell
    def processes(self, lab: str | None = None) -> list[TaggedProcess]: ...
    def stop_process(self, proc: TaggedProcess) -> None: ...
    def kill_processes(self, lab: str) -> None: ...
    def stop_vm(self, lab: str, node: str) -> bool: ...
    def cgroup_labs(self) -> list[str]: ...
    def remove_cgroups(self, lab: str) -> list[str]: ...
    def node_usage(self, lab: str, node: str) -> dict[str, int]: ...
    def cell_labs(self) -> list[str]: ...
    def release_cell(self, lab: str) -> bool: ...
    def frr_applied(self, lab: str) -> dict[str, str]: ...

    # ---- files under /run
    def read_text(self, path: Path) -> str | None:
        """The file's text, None when it does not exist."""
        ...

    def write_text(self, path: Path, text: str) -> None:
        """Write the file (its directory made first)."""
        ...

    def remove(self, path: Path) -> bool:
        """Remove a file or a directory tree; False when there was none."""
        ...

    def subdirectories(self, path: Path) -> list[str]:
        """Names of the directories in `path` ([] when it does not exist)."""
        ...


class Host:
    """The real kernel. With `spaces`, namespaces are entered by its worker (one per operation); without, by a
    short-lived one per socket, as `netns.netlink_in` does."""

    def __init__(self, spaces: netns.Namespaces | None = None) -> None:
        self.spaces = spaces

    def namespace_names(self) -> list[str]:
        return netns.list_names()

    def netlink(self, namespace: str | None) -> nl.NetlinkSocket:
        if namespace is None:
            return nl.NetlinkSocket()
        if self.spaces is not None:
            return self.spaces.netlink(namespace)
        with netns.Namespaces() as spaces:
            return spaces.netlink(namespace)

    def delete_namespace(self, name: str) -> bool:
        return netns.delete(name)

    def supports_netem(self) -> bool:
        return _supports_netem()

    def read_sysctl(self, namespace: str | None, key: str) -> str:
        if namespace is None:
            return sysctl.read(key)
        if self.spaces is not None:
            return self.spaces.read_sysctl(namespace, key)
        with netns.Namespaces() as spaces:
            return spaces.read_sysctl(namespace, key)

    def write_sysctl(self, namespace: str | None, key: str, value: str) -> None:
        if namespace is None:
            sysctl.write(key, value)
        elif self.spaces is not None:
            self.spaces.write_sysctl(namespace, key, value)
        else:
            with netns.Namespaces() as spaces:
                spaces.write_sysctl(namespace, key, value)

    def run(self, argv: list[str], *, namespace: str | None = None, input: bytes | None = None,
            timeout: float = 30.0, check: bool = True, element: str = "") -> subprocess.CompletedProcess[bytes]:
        return procs.run(argv, namespace=namespace, input=input, timeout=timeout, check=check, element=element)

    def processes(self, lab: str | None = None) -> list[TaggedProcess]:
        return procs.find(lab=lab)

    def stop_process(self, proc: TaggedProcess) -> None:
        procs.stop(proc)

    def kill_processes(self, lab: str) -> None:
        procs.kill_all(lab)

    def stop_vm(self, lab: str, node: str) -> bool:
        from .. import qemu  # qemu runs its programs through HOST

        return qemu.stop_vm(lab, node)

    def cgroup_labs(self) -> list[str]:
        return cgroups.labs()

    def remove_cgroups(self, lab: str) -> list[str]:
        return cgroups.remove(lab)

    def node_usage(self, lab: str, node: str) -> dict[str, int]:
        return cgroups.node_usage(lab, node)

    def cell_labs(self) -> list[str]:
        return list(cell.allocated())

    def release_cell(self, lab: str) -> bool:
        return cell.release(lab)

    def frr_applied(self, lab: str) -> dict[str, str]:
        from .. import frr

        return frr.applied_hashes(lab)

    def read_text(self, path: Path) -> str | None:
        try:
            return path.read_text()
        except FileNotFoundError:
            return None

    def write_text(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def remove(self, path: Path) -> bool:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
            return True
        try:
            path.unlink()
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
            return False
        return True

    def subdirectories(self, path: Path) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(path) if e.is_dir())
        except FileNotFoundError:
            return []


@functools.cache
def _supports_netem() -> bool:
    """Probed once on `lo` of an anonymous namespace that dies with the probe."""
    def probe() -> bool:
        with nl.NetlinkSocket("probe") as sock:
            return sock.batch([nl.qdisc_replace_netem(1, delay_ms=1, handle=nl.tc_handle(1))])[0] is None
    return netns.in_throwaway(probe)


#: the real kernel, the default of every layer that receives a Kernel
HOST: Kernel = Host()
