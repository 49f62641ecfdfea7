"""A fake of netops.kernel.host.Kernel for unit tests without root: it records every call in `calls` and answers
what the test set up (namespaces with their links, addresses, routes and qdiscs, sysctls, program outputs,
processes, files). It decides nothing; the real behaviour is the kernel tests' (tests/kernel)."""
from __future__ import annotations

import errno
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netops.errors import ApplyError
from netops.kernel import netlink as nl
from netops.procs import TaggedProcess


@dataclass
class FakeNamespace:
    links: list[nl.LinkInfo] = field(default_factory=list)
    addresses: list[nl.AddrInfo] = field(default_factory=list)
    routes: list[nl.RouteInfo] = field(default_factory=list)
    qdiscs: list[nl.QdiscInfo] = field(default_factory=list)
    sysctl: dict[str, str] = field(default_factory=dict)
    refuse: dict[str, int] = field(default_factory=dict)  # request description -> errno the "kernel" answers

    def link(self, name: str, index: int, *, kind: str | None = None, alias: str | None = None, up: bool = True,
             master: int = 0, mac: str | None = None, mtu: int = 1500) -> nl.LinkInfo:
        info = nl.LinkInfo(index, name, kind, up, up, mac, mtu, alias, master)
        self.links.append(info)
        return info


class FakeNetlink:
    def __init__(self, kernel: FakeKernel, namespace: str | None, state: FakeNamespace) -> None:
        self.kernel, self.namespace, self.state = kernel, namespace, state
        self.closed = False

    def links(self) -> list[nl.LinkInfo]:
        return list(self.state.links)

    def addresses(self) -> list[nl.AddrInfo]:
        return list(self.state.addresses)

    def routes(self) -> list[nl.RouteInfo]:
        return list(self.state.routes)

    def qdiscs(self) -> list[nl.QdiscInfo]:
        return list(self.state.qdiscs)

    def link(self, index: int = 0, name: str | None = None) -> nl.LinkInfo | None:
        for lk in self.state.links:
            if (index and lk.index == index) or (not index and lk.name == name):
                return lk
        return None

    def batch(self, requests: Any) -> list[nl.NetlinkError | None]:
        out: list[nl.NetlinkError | None] = []
        for req in requests:
            self.kernel.calls.append(("netlink", self.namespace, req.what))
            self.kernel.requests.append((self.namespace, req))
            err = self.state.refuse.get(req.what)
            out.append(nl.NetlinkError(err, "", req.what) if err and err not in req.tolerate else None)
        return out

    def call(self, request: nl.Request) -> None:
        err = self.batch([request])[0]
        if err is not None:
            raise err

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> FakeNetlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FakeKernel:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.requests: list[tuple[str | None, nl.Request]] = []
        self.namespaces: dict[str | None, FakeNamespace] = {None: FakeNamespace()}
        self.gone: dict[str, int] = {}  # listed in /run/netns but entering fails with this errno
        self.answers: dict[tuple[tuple[str, ...], str | None], list[subprocess.CompletedProcess[bytes]]] = {}
        self.procs: list[TaggedProcess] = []
        self.files: dict[Path, str] = {}
        self.dirs: dict[Path, list[str]] = {}
        self.cgroups: dict[str, list[str]] = {}
        self.cells: set[str] = set()
        self.usage: dict[tuple[str, str], dict[str, int]] = {}
        self.frr: dict[str, dict[str, str]] = {}
        self.netem = False
        self.vm_stop_error: Exception | None = None

    # ---- set-up helpers
    def namespace(self, name: str | None) -> FakeNamespace:
        return self.namespaces.setdefault(name, FakeNamespace())

    def answer(self, argv: list[str], *, namespace: str | None = None, stdout: str | bytes = b"", returncode: int = 0,
               stderr: bytes = b"") -> None:
        """What the next run of `argv` in `namespace` prints (answers queue up; the last one repeats)."""
        out = stdout.encode() if isinstance(stdout, str) else stdout
        self.answers.setdefault((tuple(argv), namespace), []).append(
            subprocess.CompletedProcess(argv, returncode, out, stderr))

    def ran(self, argv0: str | None = None) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == "run" and (argv0 is None or c[1][0] == argv0)]

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    # ---- the Kernel interface
    def namespace_names(self) -> list[str]:
        self.calls.append(("namespace_names",))
        return sorted([n for n in self.namespaces if n is not None] + list(self.gone))

    def netlink(self, namespace: str | None) -> FakeNetlink:
        self.calls.append(("netlink.open", namespace))
        if namespace in self.gone:
            raise OSError(self.gone[namespace], "gone")
        if namespace not in self.namespaces:
            raise FileNotFoundError(errno.ENOENT, f"no namespace {namespace}")
        return FakeNetlink(self, namespace, self.namespaces[namespace])

    def delete_namespace(self, name: str) -> bool:
        self.calls.append(("delete_namespace", name))
        return self.namespaces.pop(name, None) is not None

    def supports_netem(self) -> bool:
        self.calls.append(("supports_netem",))
        return self.netem

    def read_sysctl(self, namespace: str | None, key: str) -> str:
        self.calls.append(("read_sysctl", namespace, key))
        return self.namespace(namespace).sysctl[key]

    def write_sysctl(self, namespace: str | None, key: str, value: str) -> None:
        self.calls.append(("write_sysctl", namespace, key, value))
        self.namespace(namespace).sysctl[key] = value

    def run(self, argv: list[str], *, namespace: str | None = None, input: bytes | None = None,
            timeout: float = 30.0, check: bool = True, element: str = "") -> subprocess.CompletedProcess[bytes]:
        self.calls.append(("run", tuple(argv), namespace, input.decode() if input is not None else None))
        queued = self.answers.get((tuple(argv), namespace))
        done = (queued.pop(0) if len(queued) > 1 else queued[0]) if queued else subprocess.CompletedProcess(
            argv, 0, b"", b"")
        if check and done.returncode != 0:  # procs.run's contract
            raise ApplyError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()}", element=element)
        return done

    def processes(self, lab: str | None = None) -> list[TaggedProcess]:
        self.calls.append(("processes", lab))
        return [p for p in self.procs if lab is None or p.lab == lab]

    def stop_process(self, proc: TaggedProcess) -> None:
        self.calls.append(("stop_process", proc.pid))
        self.procs.remove(proc)

    def kill_processes(self, lab: str) -> None:
        self.calls.append(("kill_processes", lab))
        self.procs = [p for p in self.procs if p.lab != lab]

    def stop_vm(self, lab: str, node: str) -> bool:
        self.calls.append(("stop_vm", lab, node))
        if self.vm_stop_error is not None:
            raise self.vm_stop_error
        return True

    def cgroup_labs(self) -> list[str]:
        self.calls.append(("cgroup_labs",))
        return sorted(self.cgroups)

    def remove_cgroups(self, lab: str) -> list[str]:
        self.calls.append(("remove_cgroups", lab))
        return self.cgroups.pop(lab, [])

    def node_usage(self, lab: str, node: str) -> dict[str, int]:
        self.calls.append(("node_usage", lab, node))
        return self.usage.get((lab, node), {})

    def cell_labs(self) -> list[str]:
        self.calls.append(("cell_labs",))
        return sorted(self.cells)

    def release_cell(self, lab: str) -> bool:
        self.calls.append(("release_cell", lab))
        if lab in self.cells:
            self.cells.remove(lab)
            return True
        return False

    def frr_applied(self, lab: str) -> dict[str, str]:
        self.calls.append(("frr_applied", lab))
        return self.frr.get(lab, {})

    def read_text(self, path: Path) -> str | None:
        self.calls.append(("read_text", path))
        return self.files.get(path)

    def write_text(self, path: Path, text: str) -> None:
        self.calls.append(("write_text", path, text))
        self.files[path] = text

    def remove(self, path: Path) -> bool:
        self.calls.append(("remove", path))
        return self.files.pop(path, None) is not None or self.dirs.pop(path, None) is not None

    def subdirectories(self, path: Path) -> list[str]:
        self.calls.append(("subdirectories", path))
        return sorted(self.dirs.get(path, []))
