"""dnsmasq as a DHCP-only server on one interface of a router/host namespace (FACTS.md has the measured argv).

One dnsmasq per served interface, tagged with role `dnsmasq:<node>:<iface>`, its files under `naming.run_dir(lab)`.
`argv()` is a pure builder; `start()` is idempotent: the running process's argv is its configuration, so an
identical one is kept and a different one is restarted.
"""
from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path

from . import cell as cells
from . import naming, procs
from .errors import ApplyError
from .model import Interface

#: dnsmasq refuses leases shorter than this (seconds)
MIN_LEASE_TIME = 120
START_TIMEOUT = 5.0


@dataclass(frozen=True)
class Lease:
    """One line of a dnsmasq lease file."""

    expiry: int  # unix time; 0 means infinite
    mac: str
    ip: ipaddress.IPv4Address
    hostname: str | None
    client_id: str | None


#: dnsmasq's capabilities in the lab's user namespace: DHCP sockets (raw, port 67, SO_BINDTODEVICE), ARP table
#: entries, and dropping to `nobody` there
CAPS = ("net_admin", "net_raw", "net_bind_service", "setuid", "setgid")


def role(node: str, iface_name: str) -> str:
    return f"dnsmasq:{node}:{iface_name}"


def _check_names(lab: str, node: str, iface_name: str) -> None:
    naming.check_lab_id(lab)
    if not isinstance(node, str) or not naming.NODE_NAME_RE.match(node):
        raise ApplyError(f"node name {node!r} is not valid", element=f"nodes.{node}")
    if (not isinstance(iface_name, str) or not iface_name or len(iface_name.encode()) > naming.IFNAME_MAX
            or any(c in iface_name for c in "/: \0\t\n")):
        raise ApplyError(f"interface name {iface_name!r} is not valid", element=f"nodes.{node}.interfaces")


def files(lab: str, node: str, iface_name: str) -> dict[str, Path]:
    _check_names(lab, node, iface_name)
    base = cells.cell_dir(lab) / f"dnsmasq-{node}-{iface_name}"
    return {"leases": base.with_suffix(".leases"), "pid": base.with_suffix(".pid"), "log": base.with_suffix(".log")}


def _element(node: str, iface_name: str) -> str:
    return f"nodes.{node}.interfaces.{iface_name}.dhcp_server"


def gateway(iface: Interface) -> ipaddress.IPv4Address:
    """The router option handed out: the configured gateway, else the interface's address in the range's subnet."""
    server = iface.dhcp_server
    assert server is not None
    if server.gateway is not None:
        return server.gateway
    for addr in iface.addresses:
        if isinstance(addr, ipaddress.IPv4Interface) and server.start in addr.network:
            return addr.ip
    raise ApplyError(f"interface {iface.name} has no IPv4 address in the subnet of {server.start}",
                     element=f"interfaces.{iface.name}.dhcp_server")


def argv(lab: str, node: str, iface: Interface) -> list[str]:
    """The dnsmasq command line serving `iface` (pure: no I/O). Every value is re-checked by type here."""
    _check_names(lab, node, iface.name)
    server = iface.dhcp_server
    element = _element(node, iface.name)
    if server is None:
        raise ApplyError("interface has no dhcp_server", element=element)
    for value in (server.start, server.end, *server.dns):
        if not isinstance(value, ipaddress.IPv4Address):
            raise ApplyError(f"{value!r} is not an IPv4 address", element=element)
    if not isinstance(server.lease_time, int) or isinstance(server.lease_time, bool) or server.lease_time < MIN_LEASE_TIME:
        raise ApplyError(f"lease time {server.lease_time!r} must be an int >= {MIN_LEASE_TIME} s", element=element)
    gw = gateway(iface)
    if not isinstance(gw, ipaddress.IPv4Address):
        raise ApplyError(f"gateway {gw!r} is not an IPv4 address", element=element)
    paths = files(lab, node, iface.name)
    args = [
        "dnsmasq",
        "--conf-file=/dev/null",  # nothing from /etc/dnsmasq.conf
        "--keep-in-foreground",  # procs.spawn tracks the exec'd pid
        "--log-facility=-",  # log to stderr = our log file, not syslog
        "--port=0",  # DNS off: DHCP only
        "--no-resolv",
        "--no-hosts",
        f"--interface={iface.name}",
        "--bind-interfaces",  # several dnsmasqs may run on one host (one per lab namespace interface)
        "--except-interface=lo",
        f"--dhcp-range={server.start},{server.end},{server.lease_time}",
        f"--dhcp-option=3,{gw}",
    ]
    if server.dns:
        args.append("--dhcp-option=6," + ",".join(str(d) for d in server.dns))
    args += [
        "--dhcp-authoritative",
        "--log-dhcp",
        f"--dhcp-leasefile={paths['leases']}",
        f"--pid-file={paths['pid']}",
        # No --user: dnsmasq opens its lease and pid files as root of the lab's user namespace, then drops to
        # `nobody` there (it parses packets from untrusted guests; still a uid of the lab's own range) and keeps
        # rewriting the lease file through the descriptor it already holds (verified).
    ]
    return args


def find(lab: str, node: str, iface_name: str) -> list[procs.TaggedProcess]:
    _check_names(lab, node, iface_name)
    return procs.find(lab, role(node, iface_name))


def start(lab: str, node: str, iface: Interface, namespace: str) -> int:
    """Run (or keep) the DHCP server for `iface` in `namespace`; returns its pid once it is serving."""
    wanted = argv(lab, node, iface)
    element = _element(node, iface.name)
    running = find(lab, node, iface.name)
    if len(running) == 1 and list(running[0].argv) == wanted and _in_namespace(running[0].pid, namespace):
        return running[0].pid
    for proc in running:
        procs.stop(proc)
    paths = files(lab, node, iface.name)
    paths["pid"].unlink(missing_ok=True)
    try:
        pid = procs.spawn(wanted, lab=lab, role=role(node, iface.name), namespace=namespace,
                          log_path=paths["log"], caps=CAPS, in_node=True)
    except ApplyError as exc:
        raise ApplyError(exc.message, element=element, permanent=exc.permanent) from exc
    _wait_serving(lab, pid, paths, element)
    return pid


def _in_namespace(pid: int, namespace: str) -> bool:
    try:
        return Path(f"/proc/{pid}/ns/net").stat().st_ino == (procs.NETNS_DIR / namespace).stat().st_ino
    except FileNotFoundError:
        return False


def _wait_serving(lab: str, pid: int, paths: dict[str, Path], element: str) -> None:
    """dnsmasq writes its pid file once it has bound its sockets (its pid in the node's PID namespace); if it dies
    first, its log says why."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if procs.inspect(pid) is None:
            raise ApplyError(f"dnsmasq exited at start: {_tail(lab, paths['log'])}", element=element)
        if (cells.read_text(lab, paths["pid"], 64) or "").strip() == str(procs.ns_pid(pid)):
            return
        time.sleep(0.02)
    raise ApplyError(f"dnsmasq did not start within {START_TIMEOUT} s: {_tail(lab, paths['log'])}", element=element,
                     permanent=False)


def _tail(lab: str, path: Path, lines: int = 5) -> str:
    try:
        text = cells.read_text(lab, path)
    except ApplyError as exc:
        return f"(log unreadable: {exc.message})"
    if text is None:
        return "(no log)"
    return " | ".join(text.strip().splitlines()[-lines:])


def parse_leases(text: str) -> list[Lease]:
    """Parse dnsmasq's lease file: `EXPIRY MAC IP HOSTNAME CLIENTID` per line, `*` for unknown (IPv4 only)."""
    leases = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[0] == "duid":
            continue  # a DHCPv6 server-duid line, or a torn write
        try:
            ip = ipaddress.IPv4Address(fields[2])
            expiry = int(fields[0])
        except ValueError:
            continue
        hostname = None if fields[3] == "*" else fields[3]
        client_id = None if len(fields) < 5 or fields[4] == "*" else fields[4]
        leases.append(Lease(expiry, fields[1].lower(), ip, hostname, client_id))
    return leases


def leases(lab: str, node: str, iface_name: str) -> list[Lease]:
    try:
        text = cells.read_text(lab, files(lab, node, iface_name)["leases"])
    except ApplyError:
        return []  # not a file of the lab's (a link planted by the lab itself): no leases to show
    return parse_leases(text or "")


def stop(lab: str, node: str, iface_name: str) -> None:
    """Stop the server (idempotent) and remove its pid file; the lease file stays until the run dir goes."""
    for proc in find(lab, node, iface_name):
        procs.stop(proc)
    files(lab, node, iface_name)["pid"].unlink(missing_ok=True)
