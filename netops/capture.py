"""Packet capture: where to capture (from the deployed document and naming, never from user text), the tcpdump
argv, BPF filter validation, starting/stopping the tagged tcpdump, and a small incremental pcap reader that turns
records into one-line summaries (time, source, destination, protocol, info) for the live list in the browser.

The filter is the only user text that reaches tcpdump. It is checked here (charset, length, no leading `-`),
compiled with `tcpdump -d` on the real interface first, and always passed as ONE argv element after `--`, so
getopt can never read it as an option. The interface name is computed by `capture_point()` from the document
the engine deployed (`run_dir(lab)/topology.json`) and `netops.naming`.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import kinds, naming, procs
from .errors import ApplyError, Problem, TopologyError
from .kernel.host import HOST
from .model import Endpoint, Topology

TCPDUMP = "tcpdump"
PRLIMIT = "prlimit"  # util-linux: sets the file size limit, then execs tcpdump
FILTER_MAX = 256
#: what BPF expressions need (`tcp port 80 and not (src net 10.0.0.0/8)`, `ether[12:2] = 0x0806`, `ip6`, ...);
#: no quotes, backslashes, `;`, `$`, backticks or control characters
FILTER_RE = re.compile(r"[A-Za-z0-9 .:/_()!&|<>=\[\]+*%^-]*")  # fullmatch only
IFNAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}")  # fullmatch only: `$` would let "eth0\n" in
SNAPLEN = 262144


def role(capture_id: int) -> str:
    return f"capture:{int(capture_id)}"


# ---------------------------------------------------------------------------------------------- validation


def check_filter(text: str | None) -> str:
    """The filter, stripped, or TopologyError(path `filter`) saying what is wrong with it. Empty means none."""
    if text is None:
        return ""
    if not isinstance(text, str):
        raise TopologyError(_problem("the filter must be text"))
    text = text.strip()
    if len(text) > FILTER_MAX:
        raise TopologyError(_problem(f"the filter is longer than {FILTER_MAX} characters"))
    if text.startswith("-"):
        raise TopologyError(_problem("the filter must not start with '-'"))
    if not FILTER_RE.fullmatch(text):
        bad = sorted({c for c in text if not FILTER_RE.fullmatch(c)})
        shown = " ".join(repr(c) for c in bad[:8])
        raise TopologyError(_problem(f"the filter contains characters a BPF expression does not need: {shown}"))
    return text


def _problem(message: str) -> Problem:
    return Problem("filter", message)


@dataclass(frozen=True)
class CapturePoint:
    """Where tcpdump runs: a Topolab namespace and an interface in it, plus a label for people."""

    namespace: str
    ifname: str
    label: str  # e.g. "h1:eth0" or "links.2 (vm1:eth0 tap)"


def deployed_topology(lab: str) -> Topology:
    """The document the engine last deployed for `lab` (written by `engine.up`); ApplyError when not deployed."""
    from .topology import parse_document

    path = naming.run_dir(lab) / "topology.json"
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ApplyError(f"lab {lab} is not deployed", permanent=True) from exc
    return parse_document(document)


def _point_for(topology: Topology, lab: str, ep: Endpoint, label: str) -> CapturePoint | None:
    node = topology.nodes[ep.node]
    if ep.interface is None:
        return None
    kind = kinds.get(node.kind)
    where = kind.capture_point(lab, node, ep.interface) if kind.capture else None
    return CapturePoint(where[0], where[1], label) if where else None


def capture_point(topology: Topology, lab: str, *, link: int | None = None, node: str | None = None,
                  interface: str | None = None) -> CapturePoint:
    """Where to capture a link (by its index) or a node's interface, in lab `lab` deployed as `topology`.

    A link is captured at one of its node ends: inside a host/router namespace when it has one, else on a VM's tap
    in the fabric namespace, else (bridge to bridge) on the fabric veth joining the two bridges.
    """
    naming.check_lab_id(lab)
    if link is not None:
        if node is not None or interface is not None:
            raise TopologyError(_where("capture", "give a link or a node interface, not both"))
        if not isinstance(link, int) or isinstance(link, bool) or not 0 <= link < len(topology.links):
            raise TopologyError(_where("link", f"there is no link {link!r} in the deployed lab"))
        lk = topology.links[link]
        label = f"{lk.a} ↔ {lk.b}"
        for ep in sorted((lk.a, lk.b), key=lambda e: not kinds.get(topology.nodes[e.node].kind).namespace):
            point = _point_for(topology, lab, ep, label)
            if point is not None:
                return point
        from .plan import wiring

        names = wiring(topology, lk).fabric_names
        return CapturePoint(naming.fabric_namespace(lab), names[0], label)
    if not isinstance(node, str) or not naming.NODE_NAME_RE.fullmatch(node) or node not in topology.nodes:
        raise TopologyError(_where("node", f"there is no node {node!r} in the deployed lab"))
    ifaces = topology.nodes[node].interfaces
    if not isinstance(interface, str) or interface not in ifaces:
        raise TopologyError(_where("interface", f"{interface!r} is not an interface of {node}"))
    point = _point_for(topology, lab, Endpoint(node, interface), f"{node}:{interface}")
    if point is None:
        raise TopologyError(_where("node", f"{node} has no interface to capture on"))
    return point


def _where(path: str, message: str) -> Problem:
    return Problem(path, message)


# ---------------------------------------------------------------------------------------------- argv


def tcpdump_argv(ifname: str, path: Path | str, bpf: str = "", *, user: str = "root",
                 snaplen: int = SNAPLEN, max_bytes: int | None = None) -> list[str]:
    """tcpdump writing every packet of `ifname` to `path` as it arrives (-U), dropping root to `user` (-Z).
    With `max_bytes`, the kernel holds the file to that size (prlimit's RLIMIT_FSIZE, no core file): tcpdump ends
    at the limit however fast packets come, where the agent's tail of the file would see it only later.

    Pure. The filter is validated again and passed as one element after `--`."""
    if not isinstance(ifname, str) or not IFNAME_RE.fullmatch(ifname):
        raise ApplyError(f"interface name {ifname!r} is not valid")
    path = str(path)
    if not os.path.isabs(path) or "\0" in path:
        raise ApplyError(f"capture file {path!r} must be an absolute path")
    if not isinstance(user, str) or not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", user):
        raise ApplyError(f"user name {user!r} is not valid")
    argv = [TCPDUMP, "-i", ifname, "-n", "-U", "-s", str(int(snaplen)), "-Z", user, "-w", path]
    bpf = check_filter(bpf)
    if bpf:
        argv += ["--", bpf]
    if max_bytes is not None:
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 1:
            raise ApplyError(f"capture size limit {max_bytes!r} must be a positive number of bytes")
        argv = [PRLIMIT, f"--fsize={max_bytes}", "--core=0", "--", *argv]
    return argv


def compile_argv(ifname: str, bpf: str) -> list[str]:
    """`tcpdump -d` on the interface: compiles the filter without capturing (non-zero exit when it is wrong)."""
    if not isinstance(ifname, str) or not IFNAME_RE.fullmatch(ifname):
        raise ApplyError(f"interface name {ifname!r} is not valid")
    return [TCPDUMP, "-d", "-i", ifname, "--", check_filter(bpf)]


# ---------------------------------------------------------------------------------------------- processes


def compile_filter(point: CapturePoint, bpf: str) -> None:
    """TopologyError(path `filter`) with tcpdump's own message when the filter does not compile."""
    if not check_filter(bpf):
        return
    done = HOST.run(compile_argv(point.ifname, bpf), namespace=point.namespace, check=False, timeout=10)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise TopologyError(_problem(message[-1] if message else "tcpdump cannot compile the filter"))


#: tcpdump's capabilities in the lab's user namespace: its packet socket (and promiscuous mode), and `-Z root`'s
#: initgroups there (Debian's tcpdump always drops to the -Z user when it runs as uid 0)
CAPS = ("net_raw", "net_admin", "setuid", "setgid")


def start(lab: str, capture_id: int, point: CapturePoint, path: Path, bpf: str = "", *,
          user: str = "root", log_path: Path | None = None, max_bytes: int | None = None) -> int:
    """Start tcpdump in the lab's cell (role `capture:<id>`, so destroying the lab stops it), as uid 0 of the lab's
    user namespace (`user` there); it writes `path`, which the caller made and gave to the lab's uid, never past
    `max_bytes`. Its pid."""
    argv = tcpdump_argv(point.ifname, path, bpf, user=user, max_bytes=max_bytes)
    return procs.spawn(argv, lab=lab, role=role(capture_id), namespace=point.namespace, log_path=log_path,
                       caps=CAPS)


def running(lab: str, capture_id: int) -> list[procs.TaggedProcess]:
    return procs.find(lab, role(capture_id))


def stop(lab: str, capture_id: int) -> int:
    """Stop the capture's tcpdump (SIGTERM flushes the file); how many processes were stopped."""
    return len(procs.stop_all(lab, role(capture_id), timeout=5.0))


# ---------------------------------------------------------------------------------------------- pcap reading

PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
              b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}
LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
IP_PROTOS = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 47: "GRE", 58: "ICMPv6", 89: "OSPF", 112: "VRRP", 132: "SCTP"}
ICMP_TYPES = {0: "echo reply", 3: "destination unreachable", 5: "redirect", 8: "echo request",
              11: "time exceeded"}
ICMP6_TYPES = {128: "echo request", 129: "echo reply", 133: "router solicitation", 134: "router advertisement",
               135: "neighbor solicitation", 136: "neighbor advertisement", 1: "destination unreachable"}
TCP_FLAGS = "FSRPAUEC"


@dataclass
class Packet:
    number: int
    time: float
    length: int
    src: str
    dst: str
    protocol: str
    info: str

    def as_dict(self) -> dict[str, Any]:
        return {"no": self.number, "time": round(self.time, 6), "len": self.length, "src": self.src,
                "dst": self.dst, "proto": self.protocol, "info": self.info}


class PcapReader:
    """Incremental pcap parser: `feed()` bytes as the file grows, get the complete packets back."""

    def __init__(self) -> None:
        self.buffer = b""
        self.endian: str | None = None
        self.scale = 1e-6
        self.linktype = LINKTYPE_ETHERNET
        self.count = 0
        self.first: float | None = None

    def feed(self, data: bytes) -> list[Packet]:
        self.buffer += data
        out: list[Packet] = []
        if self.endian is None:
            if len(self.buffer) < 24:
                return out
            magic = self.buffer[:4]
            if magic not in PCAP_MAGIC:
                raise ValueError("not a pcap file")
            self.endian, self.scale = PCAP_MAGIC[magic]
            self.linktype = struct.unpack(self.endian + "I", self.buffer[20:24])[0] & 0x0FFFFFFF
            self.buffer = self.buffer[24:]
        while len(self.buffer) >= 16:
            sec, frac, incl, orig = struct.unpack(self.endian + "IIII", self.buffer[:16])
            if len(self.buffer) < 16 + incl:
                break
            frame = self.buffer[16:16 + incl]
            self.buffer = self.buffer[16 + incl:]
            stamp = sec + frac * self.scale
            if self.first is None:
                self.first = stamp
            self.count += 1
            out.append(Packet(self.count, stamp - self.first, orig, *summarize(self.linktype, frame)))
        return out


def read_pcap(path: Path | str, limit: int | None = None) -> list[Packet]:
    """Every packet summary of a pcap file (the first `limit` when given)."""
    reader = PcapReader()
    packets: list[Packet] = []
    with open(path, "rb") as f:
        while chunk := f.read(65536):
            packets += reader.feed(chunk)
            if limit is not None and len(packets) >= limit:
                return packets[:limit]
    return packets


def truncate_pcap(path: Path | str, max_bytes: int) -> int:
    """Cut a pcap file after its last whole packet that ends within `max_bytes`; its size afterwards.

    tcpdump writes faster than a size limit can be noticed; this keeps a capture's file within its limit, and
    always a valid pcap (never a packet cut in half)."""
    with open(path, "r+b") as f:
        head = f.read(24)
        if len(head) < 24 or head[:4] not in PCAP_MAGIC:
            raise ValueError("not a pcap file")
        endian = PCAP_MAGIC[head[:4]][0]
        end = 24
        while True:
            record = f.read(16)
            if len(record) < 16:
                break
            incl = struct.unpack(endian + "I", record[8:12])[0]
            if end + 16 + incl > max_bytes:
                break
            end += 16 + incl
            f.seek(end)
        f.truncate(end)
    return end


def summarize(linktype: int, frame: bytes) -> tuple[str, str, str, str]:
    """(source, destination, protocol, info) of one frame; never raises on a short or odd frame."""
    try:
        if linktype == LINKTYPE_ETHERNET:
            return _ethernet(frame)
        if linktype == LINKTYPE_LINUX_SLL and len(frame) >= 16:
            return _ethertype(struct.unpack("!H", frame[14:16])[0], frame[16:], "", "")
    except (struct.error, ValueError, IndexError):
        pass
    return "", "", f"linktype {linktype}", f"{len(frame)} bytes"


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _ethernet(frame: bytes) -> tuple[str, str, str, str]:
    if len(frame) < 14:
        return "", "", "Ethernet", "short frame"
    dst, src = _mac(frame[0:6]), _mac(frame[6:12])
    ethertype = struct.unpack("!H", frame[12:14])[0]
    payload = frame[14:]
    if ethertype == 0x8100 and len(payload) >= 4:  # one VLAN tag
        ethertype = struct.unpack("!H", payload[2:4])[0]
        payload = payload[4:]
    return _ethertype(ethertype, payload, src, dst)


def _ethertype(ethertype: int, payload: bytes, src: str, dst: str) -> tuple[str, str, str, str]:
    if ethertype == 0x0800:
        return _ipv4(payload)
    if ethertype == 0x86DD:
        return _ipv6(payload)
    if ethertype == 0x0806 and len(payload) >= 28:
        op = struct.unpack("!H", payload[6:8])[0]
        spa, tpa = ipaddress.IPv4Address(payload[14:18]), ipaddress.IPv4Address(payload[24:28])
        if op == 1:
            info = f"who has {tpa}? tell {spa}"
        elif op == 2:
            info = f"{spa} is at {_mac(payload[8:14])}"
        else:
            info = f"opcode {op}"
        return str(spa), str(tpa), "ARP", info
    if ethertype < 0x0600:
        return src, dst, "LLC", f"{len(payload)} bytes"
    return src, dst, f"0x{ethertype:04x}", f"{len(payload)} bytes"


def _ipv4(p: bytes) -> tuple[str, str, str, str]:
    ihl = (p[0] & 0x0F) * 4
    proto = p[9]
    src, dst = str(ipaddress.IPv4Address(p[12:16])), str(ipaddress.IPv4Address(p[16:20]))
    ttl = p[8]
    return (src, dst, *_transport(proto, p[ihl:], f"ttl {ttl}"))


def _ipv6(p: bytes) -> tuple[str, str, str, str]:
    proto = p[6]
    src, dst = str(ipaddress.IPv6Address(p[8:24])), str(ipaddress.IPv6Address(p[24:40]))
    return (src, dst, *_transport(proto, p[40:], f"hlim {p[7]}"))


def _transport(proto: int, t: bytes, extra: str) -> tuple[str, str]:
    name = IP_PROTOS.get(proto, f"IP proto {proto}")
    if proto in (1, 58) and len(t) >= 4:
        kind = t[0]
        table = ICMP_TYPES if proto == 1 else ICMP6_TYPES
        info = table.get(kind, f"type {kind} code {t[1]}")
        if kind in ((0, 8) if proto == 1 else (128, 129)) and len(t) >= 8:
            ident, seq = struct.unpack("!HH", t[4:8])
            info += f" id={ident} seq={seq}"
        return name, f"{info}, {extra}"
    if proto == 6 and len(t) >= 14:
        sport, dport, seq, ack = struct.unpack("!HHII", t[:12])
        flags = "".join(ch for i, ch in enumerate(TCP_FLAGS) if t[13] & (1 << i)) or "."
        return name, f"{sport} → {dport} [{flags}] seq={seq}" + (f" ack={ack}" if t[13] & 0x10 else "")
    if proto == 17 and len(t) >= 8:
        sport, dport, length = struct.unpack("!HHH", t[:6])
        label = {53: "DNS", 67: "DHCP", 68: "DHCP", 123: "NTP", 4789: "VXLAN"}.get(min(sport, dport))
        return (label or name), f"{sport} → {dport} len={max(length - 8, 0)}"
    return name, extra
