"""netops.capture without root: filter validation, the tcpdump argv, where a capture runs, pcap summaries."""
from __future__ import annotations

import io
import struct

import dpkt
import pytest

from netops import capture, naming
from netops.errors import ApplyError, TopologyError
from netops.topology import parse_document

DOC = {
    "version": 1,
    "name": "cap",
    "nodes": {
        "r1": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.1.254/24"}}},
        "br-in": {"kind": "bridge"},
        "sw2": {"kind": "bridge"},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}}},
        "vm1": {"kind": "vm", "image": "tiny", "interfaces": {"eth0": {}}},
    },
    "links": [{"endpoints": ["br-in", "r1:eth0"]}, {"endpoints": ["h1:eth0", "br-in"]},
              {"endpoints": ["vm1:eth0", "br-in"]}, {"endpoints": ["br-in", "sw2"]}],
}


@pytest.fixture
def topo():
    return parse_document(DOC, images={"tiny"})


@pytest.mark.parametrize("text", ["", "icmp", "tcp port 80 and not (src net 10.0.0.0/8)", "ether[12:2] = 0x0806",
                                  "ip6 or arp", "udp portrange 67-68", "vlan && len <= 100"])
def test_it_accepts_ordinary_bpf(text):
    assert capture.check_filter(text) == text.strip()


@pytest.mark.parametrize("text, says", [
    ("-w /etc/passwd", "must not start with '-'"),
    (" -Z root", "must not start with '-'"),
    ("icmp; rm -rf /", "';'"),
    ("icmp\n-w x", "'\\n'"),
    ("$(reboot)", "'$'"),
    ("`id`", "'`'"),
    ("host 'a'", '"\'"'),
    ("x" * 257, "longer than 256"),
])
def test_it_rejects_filters_that_could_be_options_or_shell(text, says):
    with pytest.raises(TopologyError) as err:
        capture.check_filter(text)
    assert err.value.problems[0].path == "filter" and says in err.value.problems[0].message


def test_the_filter_is_one_argv_element_after_a_double_dash():
    argv = capture.tcpdump_argv("eth0", "/var/c/1.pcap", "icmp and host 10.0.1.1")
    # -Z root: tcpdump runs in the lab's cell, where root is the lab's own uid (it stays that uid)
    assert argv == ["tcpdump", "-i", "eth0", "-n", "-U", "-s", "262144", "-Z", "root", "-w", "/var/c/1.pcap",
                    "--", "icmp and host 10.0.1.1"]
    assert capture.tcpdump_argv("eth0", "/c.pcap")[-2:] == ["-w", "/c.pcap"]
    assert capture.compile_argv("eth0", "icmp") == ["tcpdump", "-d", "-i", "eth0", "--", "icmp"]


@pytest.mark.parametrize("ifname", ["eth0 -z /bin/sh", "-w", "eth0\n", "", "a" * 16, "../x"])
def test_the_argv_builder_refuses_bad_interface_names(ifname):
    with pytest.raises(ApplyError):
        capture.tcpdump_argv(ifname, "/c.pcap")


def test_the_argv_builder_refuses_relative_paths_and_bad_users():
    with pytest.raises(ApplyError):
        capture.tcpdump_argv("eth0", "c.pcap")
    with pytest.raises(ApplyError):
        capture.tcpdump_argv("eth0", "/c.pcap", user="root -x")


def test_a_link_is_captured_in_the_node_namespace_when_one_end_has_one(topo):
    assert capture.capture_point(topo, "lab1", link=0) == capture.CapturePoint(
        naming.node_namespace("lab1", "r1"), "eth0", "br-in ↔ r1:eth0")
    assert capture.capture_point(topo, "lab1", link=1).namespace == naming.node_namespace("lab1", "h1")


def test_a_vm_link_is_captured_on_its_tap_and_a_bridge_link_on_the_fabric_veth(topo):
    vm = capture.capture_point(topo, "lab1", link=2)
    assert vm.namespace == naming.fabric_namespace("lab1") and vm.ifname == naming.fabric_ifname("vm1", "eth0")
    bridges = capture.capture_point(topo, "lab1", link=3)
    assert bridges.namespace == naming.fabric_namespace("lab1") and len(bridges.ifname) <= 15


def test_a_node_interface_must_exist_in_the_deployed_document(topo):
    assert capture.capture_point(topo, "lab1", node="h1", interface="eth0").label == "h1:eth0"
    for node, iface, path in [("h1", "eth0 -z x", "interface"), ("h1", "eth1", "interface"),
                              ("h9", "eth0", "node"), ("h1;x", "eth0", "node"), ("br-in", None, "interface")]:
        with pytest.raises(TopologyError) as err:
            capture.capture_point(topo, "lab1", node=node, interface=iface)
        assert err.value.problems[0].path == path
    with pytest.raises(TopologyError):
        capture.capture_point(topo, "lab1", link=9)
    with pytest.raises(TopologyError):
        capture.capture_point(topo, "lab1", link=True)


def pcap_bytes(frames: list[bytes], *, nano: bool = False) -> bytes:
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out, nano=nano)
    for i, frame in enumerate(frames):
        writer.writepkt(frame, ts=1000.0 + i * 0.5)
    return out.getvalue()


def icmp_echo(src: str, dst: str, kind: int, seq: int) -> bytes:
    icmp = dpkt.icmp.ICMP(type=kind, data=dpkt.icmp.ICMP.Echo(id=7, seq=seq, data=b"x" * 8))
    ip = dpkt.ip.IP(src=bytes(map(int, src.split("."))), dst=bytes(map(int, dst.split("."))), p=1, ttl=64,
                    data=icmp)
    ip.len += len(icmp)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x52\x54\x00\x00\x00\x01", dst=b"\x52\x54\x00\x00\x00\x02",
                                        type=0x0800, data=ip))


def test_the_reader_summarises_icmp_arp_tcp_and_udp_fed_in_pieces():
    tcp = dpkt.ip.IP(src=b"\x0a\x00\x01\x01", dst=b"\x0a\x00\x01\x02", p=6,
                     data=dpkt.tcp.TCP(sport=40000, dport=80, flags=dpkt.tcp.TH_SYN, seq=5))
    udp = dpkt.ip.IP(src=b"\x0a\x00\x01\x01", dst=b"\x0a\x00\x01\xfe", p=17,
                     data=dpkt.udp.UDP(sport=5353, dport=53, ulen=12, data=b"abcd"))
    arp = dpkt.arp.ARP(op=1, spa=b"\x0a\x00\x01\x01", tpa=b"\x0a\x00\x01\xfe", sha=b"\x52\x54\x00\x00\x00\x01")
    frames = [icmp_echo("10.0.1.1", "10.0.1.254", 8, 1), icmp_echo("10.0.1.254", "10.0.1.1", 0, 1),
              bytes(dpkt.ethernet.Ethernet(type=0x0806, data=arp)),
              bytes(dpkt.ethernet.Ethernet(type=0x0800, data=tcp)),
              bytes(dpkt.ethernet.Ethernet(type=0x0800, data=udp))]
    raw = pcap_bytes(frames)
    reader = capture.PcapReader()
    packets = []
    for i in range(0, len(raw), 7):  # as a growing file is read: records split anywhere
        packets += reader.feed(raw[i:i + 7])
    got = [(p.number, p.src, p.dst, p.protocol, p.info.split(",")[0]) for p in packets]
    assert got == [
        (1, "10.0.1.1", "10.0.1.254", "ICMP", "echo request id=7 seq=1"),
        (2, "10.0.1.254", "10.0.1.1", "ICMP", "echo reply id=7 seq=1"),
        (3, "10.0.1.1", "10.0.1.254", "ARP", "who has 10.0.1.254? tell 10.0.1.1"),
        (4, "10.0.1.1", "10.0.1.2", "TCP", "40000 → 80 [S] seq=5"),
        (5, "10.0.1.1", "10.0.1.254", "DNS", "5353 → 53 len=4"),
    ]
    assert [p.time for p in packets] == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_the_reader_handles_nanosecond_files_short_frames_and_refuses_non_pcap():
    packets = capture.PcapReader().feed(pcap_bytes([icmp_echo("10.0.0.1", "10.0.0.2", 8, 3), b"\x01\x02"],
                                                   nano=True))
    assert packets[0].info.startswith("echo request") and packets[1].info == "short frame"
    assert packets[1].time == pytest.approx(0.5)
    with pytest.raises(ValueError):
        capture.PcapReader().feed(b"not a pcap file at all, certainly")
    assert capture.PcapReader().feed(struct.pack("<I", 0xA1B2C3D4)) == []  # too short to decide yet


def test_truncate_keeps_whole_packets_within_the_limit_and_a_valid_pcap(tmp_path):
    frames = [icmp_echo("10.0.1.1", "10.0.1.254", 8, seq) for seq in range(10)]
    path = tmp_path / "cut.pcap"
    path.write_bytes(pcap_bytes(frames))
    record = 16 + len(frames[0])
    limit = 24 + 3 * record + record // 2  # room for three and a half packets
    size = capture.truncate_pcap(path, limit)
    assert size == path.stat().st_size == 24 + 3 * record
    assert len(list(dpkt.pcap.Reader(io.BytesIO(path.read_bytes())))) == 3
    assert capture.truncate_pcap(path, 10**6) == size  # under the limit: untouched


def test_truncate_refuses_what_is_not_a_pcap(tmp_path):
    path = tmp_path / "x.pcap"
    path.write_bytes(b"not a capture file at all, no magic here")
    with pytest.raises(ValueError):
        capture.truncate_pcap(path, 100)


def test_tcpdump_is_held_to_its_size_limit_by_the_kernel():
    """Found by the chaos suite: in a flood the file grew 40 times past its limit before the agent's tail saw it."""
    argv = capture.tcpdump_argv("eth0", "/c.pcap", max_bytes=20_000)
    assert argv[:4] == ["prlimit", "--fsize=20000", "--core=0", "--"] and argv[4] == "tcpdump"
    for bad in (0, -1, True, "20000"):
        with pytest.raises(ApplyError):
            capture.tcpdump_argv("eth0", "/c.pcap", max_bytes=bad)
