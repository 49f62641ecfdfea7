"""Pure tests of the rtnetlink layer (netops.kernel.netlink): pyroute2 as the codec, Topolab's socket loop. No root.

- Requests: the template path gives exactly pyroute2's own encoding, and each request decodes (with pyroute2) to
  what the engine asked for; one golden message pins the bytes the kernel accepted before pyroute2 was the codec.
- Replies: data/rtnetlink_replies.json holds real kernel replies (links, addresses, routes, qdiscs, acks) captured
  in a throwaway namespace (`unshare --net`) on the CI VM, after building there, with this module, what a lab has.
- The socket loop: acks matched by sequence number whatever their order or datagram, dumps read to NLMSG_DONE,
  against a fake socket fed those captured replies.
"""
from __future__ import annotations

import errno
import ipaddress as ia
import json
import random
import socket
import struct
from pathlib import Path

import pytest
from pyroute2.netlink import NLM_F_MULTI
from pyroute2.netlink.rtnl.tcmsg.common import tick_in_usec

from netops.kernel import netlink as nl
from netops.kernel import nlcodec

REPLIES = json.loads((Path(__file__).parent / "data" / "rtnetlink_replies.json").read_text())


def raw(name: str) -> list[bytes]:
    return [bytes.fromhex(h) for h in REPLIES[name]]


@pytest.fixture
def direct(monkeypatch):
    """Call a request builder with every message encoded straight by pyroute2 (no template)."""
    def call(builder, *args, **kwargs):
        encode = nl.encode
        with monkeypatch.context() as m:
            m.setattr(nl, "encode", lambda *a, template=True, **k: encode(*a, template=False, **k))
            return builder(*args, **kwargs)
    return call


def decoded(request: nl.Request):
    return nlcodec.decode(bytes(request.data), 0)


# ------------------------------------------------------------------------------------------------ requests


def _name(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghxyz0123456789-") for _ in range(rng.randint(1, 15)))


def _mac(rng: random.Random) -> str:
    return ":".join(f"{rng.randrange(256):02x}" for _ in range(6))


def test_templates_give_exactly_pyroute2s_encoding(direct):
    rng = random.Random(7)
    nlcodec._templates.clear()
    for _ in range(150):
        v4 = ia.ip_interface(f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                             f"/{rng.randint(1, 32)}")
        v6 = ia.ip_interface(f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(1, 65536):x}/{rng.randint(1, 128)}")
        net = ia.ip_network(f"10.{rng.randrange(256)}.0.0/16")
        cases = [
            (nl.link_add_veth, (_name(rng), _name(rng), rng.randrange(1000)),
             {"master": rng.randrange(1, 2**31), "mac": _mac(rng), "peer_mac": _mac(rng),
              "mtu": rng.randint(68, 9000)}),
            (nl.link_add_veth, (_name(rng), _name(rng), None), {"up": rng.random() < 0.5}),
            (nl.link_add_bridge, (_name(rng),),
             {"mcast_snooping": rng.random() < 0.5, "mtu": rng.randint(68, 9000)}),
            (nl.link_set, (), {"index": rng.randrange(1, 2**31), "up": True, "alias": _name(rng) * 3}),
            (nl.link_set, (), {"name": _name(rng), "up": rng.choice([None, False, True]), "mac": _mac(rng),
                               "mtu": rng.randint(68, 9000), "master": rng.randrange(2**31),
                               "ns_fd": rng.randrange(99)}),
            (nl.link_del, (), {"name": _name(rng)}),
            (nl.link_del, (), {"index": rng.randrange(1, 2**31)}),
            (nl.addr_add, (rng.randrange(1, 2**31), v4), {}),
            (nl.addr_add, (rng.randrange(1, 2**31), v6), {}),
            (nl.route_add, (net, ia.ip_address(f"10.0.{rng.randrange(256)}.{rng.randrange(1, 255)}")), {}),
            (nl.route_add, (ia.ip_network("::/0"), ia.ip_address(f"2001:db8::{rng.randrange(1, 65536):x}")), {}),
        ]
        for builder, args, kwargs in cases:
            assert builder(*args, **kwargs).data == direct(builder, *args, **kwargs).data, (builder, args, kwargs)
    assert 0 < len(nlcodec._templates) < 150 * 11  # shapes are reused


def test_veth_create_is_what_the_engine_asked_for():
    req = nl.link_add_veth("tlab1h3-e0", "eth0", 9, master=4, mac="02:00:00:00:00:0a", peer_mac="02:00:00:00:00:0b")
    assert req.tolerate == () and "tlab1h3-e0" in req.what
    msg = decoded(req)
    assert msg["header"]["type"] == nl.RTM_NEWLINK
    assert msg["header"]["flags"] == nl.NLM_F_REQUEST | nl.NLM_F_ACK | nl.NLM_F_CREATE | nl.NLM_F_EXCL
    assert (msg["flags"], msg["change"]) == (nl.IFF_UP, nl.IFF_UP)
    assert msg.get_attr("IFLA_IFNAME") == "tlab1h3-e0" and msg.get_attr("IFLA_MASTER") == 4
    assert msg.get_attr("IFLA_ADDRESS") == "02:00:00:00:00:0a"
    assert (msg.get_attr("IFLA_NUM_TX_QUEUES"), msg.get_attr("IFLA_NUM_RX_QUEUES")) == (1, 1)
    info = msg.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "veth"
    peer = info.get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert peer.get_attr("IFLA_IFNAME") == "eth0" and peer.get_attr("IFLA_NET_NS_FD") == 9
    assert peer.get_attr("IFLA_ADDRESS") == "02:00:00:00:00:0b" and peer.get_attr("IFLA_NUM_TX_QUEUES") == 1
    assert peer["flags"] == 0  # the kernel refuses a veth peer created up


def test_veth_create_bytes_are_those_the_kernel_took_before_pyroute2():
    """What netops' hand-written encoder sent (and the kernel accepted) before pyroute2 became the codec, but for
    NLA_F_NESTED on IFLA_LINKINFO, IFLA_INFO_DATA and VETH_INFO_PEER, which pyroute2 leaves off (the kernel parses
    these legacy nests either way). Sequence number 0: the socket sets it when it sends."""
    req = nl.link_add_veth("v1", "eth0", 5, master=3, mac="02:00:00:00:00:01", peer_mac="02:00:00:00:00:02")
    assert req.data.hex() == (
        "a40000001000050600000000000000000000000000000000010000000100000007000300763100005800120009000100"
        "766574680000000048000200440001000000000000000000000000000000000009000300657468300000000008001f00"
        "01000000080020000100000008001c00050000000a000100020000000002000008001f00010000000800200001000000"
        "08000a00030000000a0001000200000000010000")


def test_link_set_del_address_and_route_decode_to_their_arguments():
    msg = decoded(nl.link_set(index=1, up=True, alias="topolab:lab1:ns:h1"))
    assert (msg["index"], msg["flags"], msg["change"]) == (1, nl.IFF_UP, nl.IFF_UP)
    assert msg.get_attr("IFLA_IFALIAS") == "topolab:lab1:ns:h1" and msg.get_attr("IFLA_IFNAME") is None
    msg = decoded(nl.link_set(name="eth0", mtu=1400, master=0))  # up None: flags untouched
    assert (msg["index"], msg["change"], msg.get_attr("IFLA_IFNAME")) == (0, 0, "eth0")
    assert (msg.get_attr("IFLA_MTU"), msg.get_attr("IFLA_MASTER")) == (1400, 0)

    gone = nl.link_del(name="eth0")
    assert gone.type == nl.RTM_DELLINK and gone.tolerate == (errno.ENODEV,)
    assert decoded(gone).get_attr("IFLA_IFNAME") == "eth0"

    add = nl.addr_add(7, ia.ip_interface("2001:db8::5/64"))
    assert add.tolerate == (errno.EEXIST,)
    msg = decoded(add)
    assert (msg["family"], msg["prefixlen"], msg["index"]) == (socket.AF_INET6, 64, 7)
    assert msg.get_attr("IFA_LOCAL") == msg.get_attr("IFA_ADDRESS") == "2001:db8::5"
    assert msg.get_attr("IFA_FLAGS") == nl.IFA_F_NODAD  # no DAD delay in a lab
    assert decoded(nl.addr_add(7, ia.ip_interface("192.0.2.9/24"))).get_attr("IFA_FLAGS") is None

    msg = decoded(nl.route_add(ia.ip_network("203.0.113.0/24"), ia.ip_address("192.0.2.254")))
    assert (msg["family"], msg["dst_len"], msg["table"]) == (socket.AF_INET, 24, nl.RT_TABLE_MAIN)
    assert (msg["proto"], msg["type"]) == (nl.rt_proto["static"], nl.rt_type["unicast"])
    assert (msg.get_attr("RTA_DST"), msg.get_attr("RTA_GATEWAY")) == ("203.0.113.0", "192.0.2.254")
    default = decoded(nl.route_add(ia.ip_network("::/0"), ia.ip_address("2001:db8::1")))
    assert default["dst_len"] == 0 and default.get_attr("RTA_DST") is None


def test_tbf_is_encoded_as_tc_would_by_pyroute2s_plugin():
    req = nl.qdisc_replace_tbf(5, rate_bps=200_000, burst=3200, latency_ms=100, handle=nl.tc_handle(1))
    msg = decoded(req)
    assert msg["header"]["flags"] & (nl.NLM_F_CREATE | nl.NLM_F_REPLACE) == nl.NLM_F_CREATE | nl.NLM_F_REPLACE
    assert (msg["index"], msg["handle"], msg["parent"]) == (5, 0x10000, nl.TC_H_ROOT)
    assert msg.get_attr("TCA_KIND") == "tbf"
    parms = msg.get_attr("TCA_OPTIONS").get_attr("TCA_TBF_PARMS")
    assert parms["rate"] == 25_000  # bytes per second
    assert parms["limit"] == 25_000 * 100 // 1000 + 3200  # bytes: rate x latency + burst, as tc computes it
    # the kernel reads the bucket as the time one burst takes at the rate (128 ms), in psched ticks
    assert parms["buffer"] == int(128_000 * tick_in_usec)

    netem = decoded(nl.qdisc_replace_netem(5, delay_ms=20, jitter_ms=5, handle=nl.tc_handle(1)))
    assert netem.get_attr("TCA_KIND") == "netem" and netem["parent"] == nl.TC_H_ROOT
    under = decoded(nl.qdisc_replace_tbf(5, rate_bps=10**6, burst=3200, latency_ms=100, handle=nl.tc_handle(10),
                                         parent=nl.tc_handle(1, 1)))
    assert (under["handle"], under["parent"]) == (0xA0000, 0x10001)
    delete = nl.qdisc_del_root(5)
    assert delete.type == nl.RTM_DELQDISC and delete.tolerate == (errno.ENOENT,)
    assert decoded(delete)["parent"] == nl.TC_H_ROOT


# ------------------------------------------------------------------------------------------------- replies


def test_real_link_dump_parses():
    links = {lk.name: lk for lk in (nl.decode_link(nlcodec.decode(m, 0)) for m in raw("links"))}
    assert set(links) == {"lo", "br0", "p0", "v0"}
    lo, br, p0, v0 = links["lo"], links["br0"], links["p0"], links["v0"]
    assert (lo.index, lo.kind, lo.up, lo.mtu, lo.alias) == (1, None, True, 65536, "topolab:lab1:ns:h1")
    assert br.kind == "bridge" and br.master == 0
    assert (p0.kind, p0.mac, p0.master, p0.alias) == ("veth", "02:00:5e:00:53:01", 0, None)
    assert (v0.kind, v0.master, v0.alias, v0.up, v0.carrier) == ("veth", br.index, "topolab:lab1:links.0", True, True)


def test_real_address_dump_parses_and_tells_leases_from_static():
    addrs = [nl.decode_addr(nlcodec.decode(m, 0)) for m in raw("addresses")]
    by_cidr = {a.cidr: a for a in addrs}
    assert by_cidr["192.0.2.1/24"].dynamic is False and by_cidr["198.51.100.7/24"].dynamic is True  # valid_lft 300
    assert by_cidr["2001:db8::1/64"].family == socket.AF_INET6 and by_cidr["2001:db8::1/64"].scope == 0
    assert by_cidr["127.0.0.1/8"].scope == nl.rt_scope["host"]
    assert any(a.cidr.startswith("fe80:") and a.scope == nl.rt_scope["link"] for a in addrs)


def test_real_route_dumps_keep_unicast_routes_of_the_main_table():
    routes = [r for r in (nl.decode_route(nlcodec.decode(m, 0)) for m in raw("routes4") + raw("routes6")) if r]
    got = {(r.dst, r.gateway) for r in routes}
    assert ("203.0.113.0/24", "192.0.2.254") in got and ("2001:db8:1::/48", "2001:db8::fe") in got
    assert ("192.0.2.0/24", None) in got
    assert not any(r.dst.startswith("127.") for r in routes)  # local table
    assert len(routes) < len(raw("routes4")) + len(raw("routes6"))


def test_real_qdisc_dump_parses():
    qdiscs = [nl.decode_qdisc(nlcodec.decode(m, 0)) for m in raw("qdiscs")]
    tbf = [q for q in qdiscs if q.kind == "tbf"]
    assert len(tbf) == 1 and (tbf[0].handle, tbf[0].parent) == (nl.tc_handle(1), nl.TC_H_ROOT)
    assert {q.kind for q in qdiscs} == {"tbf", "noqueue"}


def test_error_acks_carry_errno_and_the_kernels_message():
    assert nlcodec.decode_error(raw("error_unknown_kind")[0], 0) == (errno.EOPNOTSUPP, "Unknown device type")
    assert nlcodec.decode_error(raw("error_exists")[0], 0) == (errno.EEXIST, "")
    assert nlcodec.decode_error(raw("ack")[0], 0) == (0, "")


# --------------------------------------------------------------------------------------------- socket loop


def _with_seq(message: bytes, seq: int) -> bytes:
    out = bytearray(message)
    struct.pack_into("=I", out, 8, seq)
    return bytes(out)


def _done(seq: int) -> bytes:
    return struct.pack("=IHHIIi", 20, nl.NLMSG_DONE, NLM_F_MULTI, seq, 0, 0)


class FakeSocket:
    """Records what is sent; `reply(sent_seqs)` returns the datagrams to read next."""

    def __init__(self, reply):
        self.sent: list[bytes] = []
        self.reply = reply
        self.inbox: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sent.append(bytes(data))
        seqs, offset = [], 0
        while offset < len(data):
            length, _t, _f, seq, _p = struct.unpack_from("=IHHII", data, offset)
            seqs.append(seq)
            offset += length
        self.inbox.extend(self.reply(seqs))
        return len(data)

    def recv(self, size: int) -> bytes:
        return self.inbox.pop(0)


def fake_socket(reply) -> tuple[nl.NetlinkSocket, FakeSocket]:
    s = nl.NetlinkSocket.__new__(nl.NetlinkSocket)
    s.label, s.seq, s.sock = "fake", 0, FakeSocket(reply)
    return s, s.sock


def test_batch_matches_acks_by_sequence_in_any_order_and_datagram():
    ok, exists, unknown = raw("ack")[0], raw("error_exists")[0], raw("error_unknown_kind")[0]

    def reply(seqs):  # acks in reverse order, over two datagrams, with a stray one from an earlier request first
        a, b, c, d = seqs
        return [_with_seq(ok, 999) + _with_seq(unknown, d) + _with_seq(exists, c),
                _with_seq(exists, b) + _with_seq(ok, a)]

    s, fake = fake_socket(reply)
    requests = [nl.link_set(index=1, up=True), nl.addr_add(2, ia.ip_interface("192.0.2.1/24")),
                nl.link_add_bridge("br0"), nl.link_set(name="x0", up=True)]
    errs = s.batch(requests)
    assert len(fake.sent) == 1  # one sendmsg for the four
    assert errs[0] is None and errs[1] is None  # EEXIST on an address add is tolerated
    assert isinstance(errs[2], nl.NetlinkError) and errs[2].errno == errno.EEXIST and "bridge br0" in str(errs[2])
    assert errs[3].errno == errno.EOPNOTSUPP and errs[3].extack == "Unknown device type"
    assert "configure link x0" in str(errs[3]) and "Unknown device type" in str(errs[3])


def test_batch_splits_large_batches_and_numbers_each_request():
    s, fake = fake_socket(lambda seqs: [b"".join(_with_seq(raw("ack")[0], q) for q in seqs)])
    s.SEND_CHUNK = 200
    requests = [nl.link_set(index=i, up=True, alias="topolab:lab1:ns:h" + str(i)) for i in range(1, 21)]
    assert s.batch(requests) == [None] * 20
    assert len(fake.sent) > 1
    seqs = [struct.unpack_from("=I", r.data, 8)[0] for r in requests]
    assert seqs == list(range(1, 21))
    with pytest.raises(nl.NetlinkError):
        fake_socket(lambda seqs: [_with_seq(raw("error_exists")[0], seqs[0])])[0].call(nl.link_add_bridge("b"))


def test_dump_reads_every_part_until_done_and_link_lookups_map_enodev_to_none():
    links = raw("links")

    def reply(seqs):
        (seq,) = seqs
        return [b"".join(_with_seq(m, seq) for m in links[:2]), _with_seq(links[2], seq),
                _with_seq(links[3], seq) + _done(seq)]

    s, fake = fake_socket(reply)
    names = [lk.name for lk in s.links()]
    assert sorted(names) == ["br0", "lo", "p0", "v0"]
    request = fake.sent[0]
    assert struct.unpack_from("=IHH", request)[1:] == (nl.RTM_GETLINK, nl.NLM_F_REQUEST | nl.NLM_F_DUMP)

    s, _ = fake_socket(lambda seqs: [_with_seq(links[2], seqs[0])])
    assert s.link(name="p0").mac == "02:00:5e:00:53:01"
    enodev = bytearray(raw("error_exists")[0])
    struct.pack_into("=i", enodev, 16, -errno.ENODEV)
    s, _ = fake_socket(lambda seqs: [_with_seq(bytes(enodev), seqs[0])])
    assert s.link(name="nosuch") is None
