"""A real DHCP client on a node's interface: busybox udhcpc in the node's namespace, tagged
`udhcpc:<node>:<iface>`, with Topolab's own hook script (netops/data/udhcpc.script) that only sets the address
and default route of that interface and never writes /etc/resolv.conf.
"""
from __future__ import annotations

import socket
import time
from importlib import resources
from pathlib import Path

from pyroute2.netlink.rtnl import rt_scope

from . import cell as cells
from . import naming, procs
from .dnsmasq import _check_names
from .errors import ApplyError
from .kernel import netns

BUSYBOX = "busybox"
#: udhcpc's capabilities in the lab's user namespace: its raw DHCP socket and port 68, and the hook's `ip` calls
CAPS = ("net_admin", "net_raw", "net_bind_service")


def role(node: str, iface_name: str) -> str:
    return f"udhcpc:{node}:{iface_name}"


def _element(node: str, iface_name: str) -> str:
    return f"nodes.{node}.interfaces.{iface_name}"


def script_path(lab: str) -> Path:
    """Install the hook script into the lab's run dir (the agent's: the lab may run it, never change it),
    executable (package data may lose its mode bits)."""
    target = naming.run_dir(lab) / "udhcpc.script"
    source = resources.files("netops").joinpath("data/udhcpc.script").read_bytes()
    if not target.exists() or target.read_bytes() != source:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(source)
        tmp.chmod(0o755)
        tmp.replace(target)
    return target


def argv(lab: str, node: str, iface_name: str, script: Path) -> list[str]:
    """The udhcpc command line (pure). Retries forever in the background (-t/-T/-A) until a server answers."""
    _check_names(lab, node, iface_name)
    return [
        BUSYBOX, "udhcpc",
        "-f",  # foreground: procs.spawn tracks this pid
        "-i", iface_name,
        "-s", str(script),
        "-t", "5", "-T", "1", "-A", "2",  # 5 discovers 1 s apart, then pause 2 s, and again
        "-R",  # release the lease when stopped
        "-x", f"hostname:{node}",
    ]


def find(lab: str, node: str, iface_name: str) -> list[procs.TaggedProcess]:
    _check_names(lab, node, iface_name)
    return procs.find(lab, role(node, iface_name))


def ipv4_addresses(namespace: str, iface_name: str) -> list[str]:
    """Global IPv4 addresses (`a.b.c.d/len`) on the interface, read from the kernel over rtnetlink."""
    with netns.netlink_in(namespace) as sock:
        link = sock.link(name=iface_name)
        if link is None:
            raise ApplyError(f"interface {iface_name} is missing in {namespace}")
        return [a.cidr for a in sock.addresses()
                if a.index == link.index and a.family == socket.AF_INET and a.scope == rt_scope["universe"]]


def start(lab: str, node: str, iface_name: str, namespace: str, *, timeout: float = 15.0) -> int:
    """Run (or keep) udhcpc on the interface; returns its pid once the leased address is on the interface."""
    element = _element(node, iface_name)
    script = script_path(lab)
    wanted = argv(lab, node, iface_name, script)
    running = find(lab, node, iface_name)
    if len(running) == 1 and list(running[0].argv) == wanted:
        pid = running[0].pid
    else:
        for proc in running:
            procs.stop(proc)
        log = cells.cell_dir(lab) / f"udhcpc-{node}-{iface_name}.log"
        try:
            pid = procs.spawn(wanted, lab=lab, role=role(node, iface_name), namespace=namespace, log_path=log,
                              caps=CAPS, in_node=True)
        except ApplyError as exc:
            raise ApplyError(exc.message, element=element, permanent=exc.permanent) from exc
    deadline = time.monotonic() + timeout
    while True:
        if ipv4_addresses(namespace, iface_name):
            return pid
        if procs.inspect(pid) is None:
            raise ApplyError("udhcpc exited before getting a lease", element=element)
        if time.monotonic() > deadline:
            raise ApplyError(f"no DHCP lease within {timeout:.0f} s", element=element, permanent=False)
        time.sleep(0.1)


def stop(lab: str, node: str, iface_name: str) -> None:
    """Stop the client (idempotent); with -R it releases its lease on the way out."""
    for proc in find(lab, node, iface_name):
        procs.stop(proc)

