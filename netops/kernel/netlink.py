"""rtnetlink for Topolab: pyroute2's message classes are the codec, the socket loop is Topolab's own.

The codec is pyroute2 0.9.7's (through `netops.kernel.nlcodec`, which caches its encodings as templates): every
request here is built, and every reply parsed, by its message classes (`ifinfmsg`, `ifaddrmsg`, `rtmsg`, `tcmsg`,
`nlmsgerr`), their NLA maps and its tc plugins, with its constants (the one it lacks is named below). This module
says which messages Topolab sends and what it reads from the replies, and runs the socket.

Why not pyroute2's sockets: creating an IPRoute costs far more than the kernel work it wraps, and
`IPRoute(netns=...)` and `NetNS` fork (12-15 ms each, measured in FACTS.md). A raw NETLINK_ROUTE socket is bound
to the namespace of the thread that creates it, so `netops.kernel.netns` opens one per namespace from a thread that
has entered it. Requests are packed many to one `sendmsg` and the acks matched by the sequence number in the
netlink header (only an ack that reports an error is decoded), so building a lab costs a few syscalls per object.
"""
from __future__ import annotations

import errno as errno_mod
import ipaddress
import os
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pyroute2.netlink import (
    NETLINK_ADD_MEMBERSHIP,
    NETLINK_EXT_ACK,
    NLM_F_ACK,
    NLM_F_APPEND,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    SOL_NETLINK,
    nlmsg,
)
from pyroute2.netlink.rtnl import (
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELQDISC,
    RTM_DELROUTE,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETQDISC,
    RTM_GETROUTE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWQDISC,
    RTM_NEWROUTE,
    TC_H_ROOT,
    rt_proto,
    rt_scope,
    rt_type,
)
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD, ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import IFF_LOWER_UP, IFF_UP, ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import NTF_SELF, NUD_PERMANENT, ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg
from pyroute2.netlink.rtnl.tcmsg import sched_netem, sched_tbf, tcmsg

from .nlcodec import HEADER, SEQ_OFFSET, Keep, attr_values, decode, decode_error, encode, keep_only

NETLINK_CAP_ACK = 10  # linux/netlink.h, not in pyroute2 0.9.7: acks echo the request's header, not the request
RT_TABLE_MAIN = 254  # the main table, as pyroute2's IPRoute.route defaults to


class NetlinkError(OSError):
    """The kernel refused a request: `errno` as usual, `extack` the kernel's own explanation when it gave one."""

    def __init__(self, err: int, extack: str = "", what: str = ""):
        text = os.strerror(err) + (f" ({extack})" if extack else "")
        super().__init__(err, f"{what}: {text}" if what else text)
        self.extack = extack


@dataclass
class Request:
    """One rtnetlink request: the whole message (its sequence number is set when it is sent), a description for
    error messages and the errnos that count as success (EEXIST on an idempotent add, ENODEV on a delete)."""

    data: bytearray
    what: str = ""
    tolerate: tuple[int, ...] = ()

    @property
    def type(self) -> int:
        return HEADER.unpack_from(self.data)[1]


_WRITE = NLM_F_REQUEST | NLM_F_ACK


def _link(flags: int, fields: dict, attrs: list, what: str, tolerate: tuple[int, ...] = (),
          mtype: int = RTM_NEWLINK) -> Request:
    return Request(encode(ifinfmsg, mtype, _WRITE | flags, fields, attrs), what, tolerate)


def _updown(up: bool | None) -> dict:
    return {"index": 0, "flags": IFF_UP if up else 0, "change": IFF_UP if up is not None else 0}


def link_add_veth(name: str, peer: str, peer_ns_fd: int | None, *, master: int = 0, up: bool = True,
                  mac: str | None = None, peer_mac: str | None = None, mtu: int | None = None) -> Request:
    """A veth `name` here with its peer created straight in the namespace behind `peer_ns_fd` (down: the kernel
    refuses to create a veth peer up).

    Both ends get one TX and one RX queue. Left to itself the kernel allocates one of each per possible CPU but
    puts only the first to use (real_num_*_queues 1), and setting up the others makes creating a pair about 30 %
    dearer (500 pairs onto a bridge: 0.24 s against 0.33-0.40 s on the 2-CPU CI VM)."""
    queues = [("IFLA_NUM_TX_QUEUES", 1), ("IFLA_NUM_RX_QUEUES", 1)]
    peer_attrs = [("IFLA_IFNAME", peer), *queues]
    if peer_ns_fd is not None:
        peer_attrs.append(("IFLA_NET_NS_FD", peer_ns_fd))
    if peer_mac:
        peer_attrs.append(("IFLA_ADDRESS", peer_mac))
    if mtu:
        peer_attrs.append(("IFLA_MTU", mtu))
    info = {"attrs": [("IFLA_INFO_KIND", "veth"),
                      ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": peer_attrs})]})]}
    attrs = [("IFLA_IFNAME", name), ("IFLA_LINKINFO", info), *queues]
    if master:
        attrs.append(("IFLA_MASTER", master))
    if mac:
        attrs.append(("IFLA_ADDRESS", mac))
    if mtu:
        attrs.append(("IFLA_MTU", mtu))
    return _link(NLM_F_CREATE | NLM_F_EXCL, _updown(up), attrs, f"create veth {name}/{peer}")


def link_add_bridge(name: str, *, up: bool = True, mtu: int | None = None, mcast_snooping: bool = False) -> Request:
    """A bridge; without IGMP/MLD snooping unless asked (the engine's do_bridge_create says why)."""
    info = {"attrs": [("IFLA_INFO_KIND", "bridge"),
                      ("IFLA_INFO_DATA", {"attrs": [("IFLA_BR_MCAST_SNOOPING", int(mcast_snooping))]})]}
    attrs = [("IFLA_IFNAME", name), ("IFLA_LINKINFO", info)]
    if mtu:
        attrs.append(("IFLA_MTU", mtu))
    return _link(NLM_F_CREATE | NLM_F_EXCL, _updown(up), attrs, f"create bridge {name}")


def link_add_vxlan(name: str, *, vni: int, local: ipaddress.IPv4Address, port: int, mtu: int,
                   ns_fd: int | None = None, learning: bool = True) -> Request:
    """A VXLAN device (`ip link add <name> [netns <fd>] mtu <mtu> type vxlan id <vni> local <local> dstport
    <port>`), down, with no group: its flood list is static (fdb_append). Sent on a socket of the underlay's
    namespace with `ns_fd` naming another one, the device is made there while its UDP socket stays the underlay's
    (vxlan keeps the namespace the request came from); encoded by pyroute2's vxlan plugin."""
    data = [("IFLA_VXLAN_ID", vni), ("IFLA_VXLAN_LOCAL", local), ("IFLA_VXLAN_PORT", port),
            ("IFLA_VXLAN_LEARNING", int(learning))]
    info = {"attrs": [("IFLA_INFO_KIND", "vxlan"), ("IFLA_INFO_DATA", {"attrs": data})]}
    attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", name), ("IFLA_MTU", mtu), ("IFLA_LINKINFO", info)]
    if ns_fd is not None:
        attrs.append(("IFLA_NET_NS_FD", ns_fd))
    return Request(encode(ifinfmsg, RTM_NEWLINK, _WRITE | NLM_F_CREATE | NLM_F_EXCL, _updown(False), attrs,
                          template=False), f"create VXLAN {name} (VNI {vni})")


def fdb_append(index: int, dst: ipaddress.IPv4Address, mac: str = "00:00:00:00:00:00") -> Request:
    """`bridge fdb append <mac> dev <index> dst <dst> self permanent`: with the all-zero MAC, one entry of a VXLAN
    device's static flood list (broadcast, unknown unicast and multicast go to every such dst). Encoded by
    pyroute2's ndmsg; an entry already there is no error."""
    fields = {"family": socket.AF_BRIDGE, "ifindex": index, "state": NUD_PERMANENT, "flags": NTF_SELF,
              "ndm_type": 0}
    attrs: list[tuple[str, Any]] = [("NDA_LLADDR", mac), ("NDA_DST", dst)]
    return Request(encode(ndmsg, RTM_NEWNEIGH, _WRITE | NLM_F_CREATE | NLM_F_APPEND, fields, attrs, template=False),
                   f"add {dst} to the flood list of link {index}", (errno_mod.EEXIST,))


def link_set(*, index: int = 0, name: str | None = None, up: bool | None = None, mac: str | None = None,
             mtu: int | None = None, alias: str | None = None, master: int | None = None,
             ns_fd: int | None = None) -> Request:
    """Change a link found by index or (index 0) by name."""
    attrs: list[tuple[str, Any]] = []
    if name is not None and not index:
        attrs.append(("IFLA_IFNAME", name))
    if mac:
        attrs.append(("IFLA_ADDRESS", mac))
    if mtu:
        attrs.append(("IFLA_MTU", mtu))
    if alias is not None:
        attrs.append(("IFLA_IFALIAS", alias))
    if master is not None:
        attrs.append(("IFLA_MASTER", master))
    if ns_fd is not None:
        attrs.append(("IFLA_NET_NS_FD", ns_fd))
    return _link(0, {**_updown(up), "index": index}, attrs, f"configure link {name or index}")


def link_del(*, index: int = 0, name: str | None = None) -> Request:
    attrs = [("IFLA_IFNAME", name)] if (name and not index) else []
    return _link(0, {**_updown(None), "index": index}, attrs, f"delete link {name or index}",
                 (errno_mod.ENODEV,), RTM_DELLINK)


def addr_add(index: int, address: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> Request:
    attrs: list[tuple[str, Any]] = [("IFA_LOCAL", address.ip), ("IFA_ADDRESS", address.ip)]
    if address.version == 6:
        attrs.append(("IFA_FLAGS", IFA_F_NODAD))
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    fields = {"family": family, "prefixlen": address.network.prefixlen, "flags": 0, "scope": 0, "index": index}
    return Request(encode(ifaddrmsg, RTM_NEWADDR, _WRITE | NLM_F_CREATE | NLM_F_EXCL, fields, attrs),
                   f"add address {address}", (errno_mod.EEXIST,))


def addr_del(index: int, address: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> Request:
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    fields = {"family": family, "prefixlen": address.network.prefixlen, "flags": 0, "scope": 0, "index": index}
    return Request(encode(ifaddrmsg, RTM_DELADDR, _WRITE, fields, [("IFA_LOCAL", address.ip)]),
                   f"remove address {address}", (errno_mod.EADDRNOTAVAIL,))


def route_del(to: ipaddress.IPv4Network | ipaddress.IPv6Network,
              via: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Request:
    attrs: list[tuple[str, Any]] = [("RTA_GATEWAY", via)]
    if to.prefixlen:
        attrs.append(("RTA_DST", to.network_address))
    fields = {"family": socket.AF_INET if to.version == 4 else socket.AF_INET6, "dst_len": to.prefixlen,
              "src_len": 0, "tos": 0, "table": RT_TABLE_MAIN, "proto": rt_proto["static"],
              "scope": rt_scope["nowhere"], "type": rt_type["unicast"]}
    return Request(encode(rtmsg, RTM_DELROUTE, _WRITE, fields, attrs), f"remove route {to} via {via}",
                   (errno_mod.ESRCH,))


def route_add(to: ipaddress.IPv4Network | ipaddress.IPv6Network,
              via: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Request:
    attrs: list[tuple[str, Any]] = [("RTA_GATEWAY", via)]
    if to.prefixlen:
        attrs.append(("RTA_DST", to.network_address))
    fields = {"family": socket.AF_INET if to.version == 4 else socket.AF_INET6, "dst_len": to.prefixlen,
              "src_len": 0, "tos": 0, "table": RT_TABLE_MAIN, "proto": rt_proto["static"],
              "scope": rt_scope["universe"], "type": rt_type["unicast"]}
    return Request(encode(rtmsg, RTM_NEWROUTE, _WRITE | NLM_F_CREATE | NLM_F_EXCL, fields, attrs),
                   f"add route {to} via {via}", (errno_mod.EEXIST,))


def tc_handle(major: int, minor: int = 0) -> int:
    """tc's `major:minor` as the kernel's u32 (pyroute2's request filters do the same for "1:0")."""
    return (major << 16) | minor


def qdisc_replace_tbf(index: int, *, rate_bps: int, burst: int, latency_ms: int, handle: int,
                      parent: int = TC_H_ROOT) -> Request:
    """`tc qdisc replace dev <index> parent <parent> handle <handle> tbf rate <rate_bps>bit burst <burst> latency
    <latency_ms>ms`, through pyroute2's tbf plugin (which computes the rate table and the limit as tc does)."""
    options = sched_tbf.get_parameters({"rate": f"{rate_bps}bit", "burst": burst, "latency": f"{latency_ms}ms"})
    return _qdisc(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE, index, handle, parent, "tbf", options,
                  f"set tbf qdisc on link {index}")


def qdisc_replace_netem(index: int, *, delay_ms: float, jitter_ms: float = 0.0, handle: int,
                        parent: int = TC_H_ROOT) -> Request:
    """`tc qdisc replace ... netem delay <delay_ms>ms <jitter_ms>ms`, through pyroute2's netem plugin."""
    options = sched_netem.get_parameters({"delay": delay_ms * 1000, "jitter": jitter_ms * 1000})
    return _qdisc(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE, index, handle, parent, "netem", options,
                  f"set netem qdisc on link {index}")


def qdisc_del_root(index: int) -> Request:
    """`tc qdisc del dev <index> root` (ENOENT, no such qdisc, counts as done)."""
    return _qdisc(RTM_DELQDISC, 0, index, 0, TC_H_ROOT, None, None, f"delete root qdisc of link {index}",
                  (errno_mod.ENOENT,))


def _qdisc(mtype: int, flags: int, index: int, handle: int, parent: int, kind: str | None, options: dict | None,
           what: str, tolerate: tuple[int, ...] = ()) -> Request:
    attrs: list[tuple[str, Any]] = []
    if kind is not None:
        attrs.append(("TCA_KIND", kind))  # first: pyroute2 picks the class of TCA_OPTIONS by it
    if options is not None:
        attrs.append(("TCA_OPTIONS", options))
    fields = {"family": socket.AF_UNSPEC, "index": index, "handle": handle, "parent": parent, "info": 0}
    return Request(encode(tcmsg, mtype, _WRITE | flags, fields, attrs, template=False), what, tolerate)


def _dump(cls: type, mtype: int, fields: dict, attrs: list | None = None) -> bytearray:
    return encode(cls, mtype, NLM_F_REQUEST | NLM_F_DUMP, fields, attrs or [], template=False)


# ----------------------------------------------------------------------------------------------------- decoding


@dataclass
class LinkInfo:
    index: int
    name: str
    kind: str | None  # "veth", "bridge", "tun", None for lo and unknown
    up: bool  # administratively up
    carrier: bool
    mac: str | None
    mtu: int
    alias: str | None
    master: int  # ifindex of the bridge it is enslaved to, 0 if none
    addresses: list[str] = field(default_factory=list)  # cidr, filled by observers from an address dump


_LINK_ATTRS = frozenset({"IFLA_IFNAME", "IFLA_LINKINFO", "IFLA_ADDRESS", "IFLA_MTU", "IFLA_IFALIAS", "IFLA_MASTER"})
LINK_KEEP = keep_only(ifinfmsg, {**dict.fromkeys(_LINK_ATTRS - {"IFLA_LINKINFO"}),
                                 "IFLA_LINKINFO": {"IFLA_INFO_KIND": None}})  # what nlcodec.decode keeps of a link
_KIND = frozenset({"IFLA_INFO_KIND"})


def decode_link(msg: nlmsg) -> LinkInfo:
    attrs = attr_values(msg, _LINK_ATTRS)
    info = attrs.get("IFLA_LINKINFO")
    mac = attrs.get("IFLA_ADDRESS")
    return LinkInfo(
        index=msg["index"],
        name=attrs.get("IFLA_IFNAME") or "",
        kind=attr_values(info, _KIND).get("IFLA_INFO_KIND") if info is not None else None,
        up=bool(msg["flags"] & IFF_UP),
        carrier=bool(msg["flags"] & IFF_LOWER_UP),
        mac=mac if isinstance(mac, str) and mac.count(":") == 5 else None,
        mtu=attrs.get("IFLA_MTU") or 0,
        alias=attrs.get("IFLA_IFALIAS"),
        master=attrs.get("IFLA_MASTER") or 0,
    )


@dataclass
class AddrInfo:
    index: int
    cidr: str
    dynamic: bool  # has a finite valid lifetime (e.g. from a DHCP client)
    family: int = socket.AF_INET
    scope: int = 0  # rt_scope: 0 universe (global), 253 link, 254 host


_FOREVER = 0xFFFFFFFF


def decode_addr(msg: nlmsg) -> AddrInfo:
    ip = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
    cacheinfo = msg.get_attr("IFA_CACHEINFO")
    dynamic = cacheinfo is not None and cacheinfo["ifa_valid"] != _FOREVER
    return AddrInfo(msg["index"], f"{ipaddress.ip_address(ip)}/{msg['prefixlen']}", dynamic, msg["family"],
                    msg["scope"])


@dataclass
class RouteInfo:
    dst: str  # cidr
    gateway: str | None
    oif: int
    proto: int = 0  # who added it: rt_proto["static"] for netops' own (route_add), "boot" for `ip route`


def decode_route(msg: nlmsg) -> RouteInfo | None:
    table = msg.get_attr("RTA_TABLE") or msg["table"]
    if table != RT_TABLE_MAIN or msg["type"] != rt_type["unicast"]:
        return None
    dst = msg.get_attr("RTA_DST") or ("0.0.0.0" if msg["family"] == socket.AF_INET else "::")
    return RouteInfo(f"{dst}/{msg['dst_len']}", msg.get_attr("RTA_GATEWAY"), msg.get_attr("RTA_OIF") or 0,
                     msg["proto"])


@dataclass
class QdiscInfo:
    index: int
    parent: int
    handle: int
    kind: str


def decode_qdisc(msg: nlmsg) -> QdiscInfo:
    return QdiscInfo(msg["index"], msg["parent"], msg["handle"], msg.get_attr("TCA_KIND") or "")


# ----------------------------------------------------------------------------------------------------- socket


class NetlinkSocket:
    """A NETLINK_ROUTE socket bound to the namespace of the thread that created it. Close it when done: an open
    socket keeps a deleted namespace (and its links) alive."""

    SEND_CHUNK = 64 * 1024

    def __init__(self, label: str = ""):
        self.label = label
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
            self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
            self.sock.bind((0, 0))
        except OSError:
            self.sock.close()
            raise
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def subscribe(self, group: int) -> None:
        """Receive the kernel's notifications of multicast `group` (an RTNLGRP_* number) on this socket too;
        requests and dumps skip them (they match replies by sequence number). See `drain`."""
        self.sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)

    def drain(self) -> int:
        """Read and drop every datagram waiting on the socket (notifications); returns how many there were."""
        count = 0
        while True:
            try:
                self.sock.recv(1024 * 1024, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return count
            count += 1

    def fileno(self) -> int:
        return self.sock.fileno()

    def __enter__(self) -> NetlinkSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _number(self, data: bytearray) -> int:
        self.seq += 1
        struct.pack_into("=I", data, SEQ_OFFSET, self.seq)
        return self.seq

    def _messages(self) -> Iterator[tuple[int, int, int, bytes, int]]:
        """(type, flags, seq, datagram, offset) of every message in the next datagram."""
        data = self.sock.recv(1024 * 1024)
        offset = 0
        while offset + HEADER.size <= len(data):
            length, kind, flags, seq, _pid = HEADER.unpack_from(data, offset)
            if length < HEADER.size:
                break
            yield kind, flags, seq, data, offset
            offset += (length + 3) & ~3

    def batch(self, requests: Iterable[Request]) -> list[NetlinkError | None]:
        """Send requests packed into few sendmsg calls; return each one's error (None = done or tolerated)."""
        reqs = list(requests)
        results: list[NetlinkError | None] = [None] * len(reqs)
        pending: dict[int, int] = {}
        buf: list[bytes] = []
        size = 0
        for i, req in enumerate(reqs):
            pending[self._number(req.data)] = i
            buf.append(req.data)
            size += len(req.data)
            if size >= self.SEND_CHUNK:
                self._flush(buf, reqs, pending, results)
                buf, size = [], 0
        if buf:
            self._flush(buf, reqs, pending, results)
        return results

    def _flush(self, buf: list[bytes], reqs: list[Request], pending: dict[int, int],
               results: list[NetlinkError | None]) -> None:
        self.sock.send(b"".join(buf))
        while pending:
            for kind, _flags, seq, data, offset in self._messages():
                if kind != NLMSG_ERROR or seq not in pending:
                    continue
                i = pending.pop(seq)
                err, extack = decode_error(data, offset)
                if err and err not in reqs[i].tolerate:
                    results[i] = NetlinkError(err, extack, reqs[i].what)

    def call(self, request: Request) -> None:
        """One request; raise NetlinkError if the kernel refused it."""
        err = self.batch([request])[0]
        if err is not None:
            raise err

    def dump(self, request: bytearray, keep: Keep | None = None) -> list[nlmsg]:
        """Every message a dump request returns, decoded by pyroute2 (`keep`: see nlcodec.decode)."""
        seq = self._number(request)
        self.sock.send(request)
        out: list[nlmsg] = []
        while True:
            for mtype, _flags, mseq, data, offset in self._messages():
                if mseq != seq:
                    continue
                if mtype == NLMSG_DONE:
                    return out
                if mtype == NLMSG_ERROR:
                    err, extack = decode_error(data, offset)
                    if err:
                        raise NetlinkError(err, extack, f"dump {HEADER.unpack_from(request)[1]}")
                    return out
                out.append(decode(data, offset, keep))

    # convenience dumps
    _LINK_FIELDS = {"family": socket.AF_UNSPEC, "index": 0, "flags": 0, "change": 0}

    def links(self) -> list[LinkInfo]:
        return [decode_link(m) for m in self.dump(_dump(ifinfmsg, RTM_GETLINK, self._LINK_FIELDS), LINK_KEEP)]

    def addresses(self) -> list[AddrInfo]:
        fields = {"family": socket.AF_UNSPEC, "prefixlen": 0, "flags": 0, "scope": 0, "index": 0}
        return [decode_addr(m) for m in self.dump(_dump(ifaddrmsg, RTM_GETADDR, fields))]

    def routes(self) -> list[RouteInfo]:
        out = []
        for family in (socket.AF_INET, socket.AF_INET6):
            fields = {"family": family, "dst_len": 0, "src_len": 0, "tos": 0, "table": 0, "proto": 0, "scope": 0,
                      "type": 0}
            out.extend(r for r in (decode_route(m) for m in self.dump(_dump(rtmsg, RTM_GETROUTE, fields))) if r)
        return out

    def qdiscs(self) -> list[QdiscInfo]:
        fields = {"family": socket.AF_UNSPEC, "index": 0, "handle": 0, "parent": 0, "info": 0}
        return [decode_qdisc(m) for m in self.dump(_dump(tcmsg, RTM_GETQDISC, fields))]

    def link(self, index: int = 0, name: str | None = None) -> LinkInfo | None:
        """One link by index or name, or None when there is no such link."""
        attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", name)] if name and not index else []
        request = encode(ifinfmsg, RTM_GETLINK, NLM_F_REQUEST, {**self._LINK_FIELDS, "index": index},
                         attrs)
        seq = self._number(request)
        self.sock.send(request)
        while True:
            for mtype, _flags, mseq, data, offset in self._messages():
                if mseq != seq:
                    continue
                if mtype == NLMSG_ERROR:
                    err, extack = decode_error(data, offset)
                    if err in (errno_mod.ENODEV, errno_mod.ENOENT):
                        return None
                    raise NetlinkError(err, extack, f"get link {name or index}")
                return decode_link(decode(data, offset, LINK_KEEP))
