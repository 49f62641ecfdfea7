"""observe against a fake kernel (tests/fakekernel.py): what it asks the kernel and what it makes of the answers.
The kernel's real answers are tests/kernel's."""
from __future__ import annotations

import errno
import socket

import pytest
from fakekernel import FakeKernel

from netops import naming, nft, observe
from netops.kernel import netlink as nl
from netops.procs import TaggedProcess
from netops.topology import parse_document

LAB = "lab1"
FABRIC = naming.fabric_namespace(LAB)
H1 = naming.node_namespace(LAB, "h1")
R1 = naming.node_namespace(LAB, "r1")


def tagged(kernel: FakeKernel, ns: str, node: str | None, lab: str = LAB, forwarding: str = "0"):
    state = kernel.namespace(ns)
    state.link("lo", 1, alias=naming.tag(lab, "ns", node or "fabric"))
    state.sysctl["net.ipv4.ip_forward"] = forwarding
    return state


def doc(**extra):
    d = {"version": 1, "name": "t", "nodes": {
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.0.1/24"}},
               "routes": [{"to": "default", "via": "10.0.0.254"}]},
        "r1": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.0.254/24"}}},
        "sw": {"kind": "bridge"}},
        "links": [{"endpoints": ["h1:eth0", "sw"]}, {"endpoints": ["r1:eth0", "sw"]}]}
    for key, value in extra.items():
        d[key] = value
    return parse_document(d)


def test_find_tagged_keeps_namespaces_whose_name_and_lo_tag_agree():
    kernel = FakeKernel()
    tagged(kernel, FABRIC, None)
    tagged(kernel, H1, "h1")
    kernel.namespace(naming.node_namespace(LAB, "fake")).link("lo", 1)  # our name, no tag
    tagged(kernel, naming.node_namespace(LAB, "x"), "y")  # a tag of another node
    tagged(kernel, naming.node_namespace("lab2", "h1"), "h1", lab="lab2")
    kernel.namespace("somebodys")
    kernel.gone[naming.node_namespace(LAB, "gone")] = errno.ENOENT  # deleted while we looked
    kernel.namespace(None).link("tllab1abcd", 5, kind="veth", alias=naming.tag(LAB, "door", "wan"))
    kernel.namespace(None).link("tlother", 6, kind="veth", alias=naming.tag(LAB, "door", "wan"))  # wrong prefix
    kernel.namespace(None).link("eth0", 2)
    found = observe.find_tagged(None, LAB, kernel=kernel)
    assert found.namespaces == {FABRIC: (LAB, None), H1: (LAB, "h1")}
    assert found.root_links == {"tllab1abcd": LAB}
    assert observe.find_tagged(None, None, kernel=kernel).namespaces[naming.node_namespace("lab2", "h1")] == (
        "lab2", "h1")
    assert ("netlink.open", "somebodys") not in kernel.calls  # a name not of our shape is never entered


def test_an_error_other_than_gone_is_not_swallowed():
    kernel = FakeKernel()
    kernel.gone[H1] = errno.EPERM
    with pytest.raises(PermissionError):
        observe.find_tagged(None, LAB, kernel=kernel)


def test_inventory_reads_links_addresses_routes_qdiscs_forwarding_processes_and_signatures():
    kernel = FakeKernel()
    h1 = tagged(kernel, H1, "h1")
    h1.link("eth0", 2, kind="veth", mac="02:00:00:00:00:01")
    h1.addresses += [nl.AddrInfo(2, "10.0.0.1/24", False), nl.AddrInfo(2, "10.0.0.7/24", True),
                     nl.AddrInfo(2, "fe80::1/64", False, socket.AF_INET6)]
    h1.routes.append(nl.RouteInfo("0.0.0.0/0", "10.0.0.254", 2))
    h1.qdiscs += [nl.QdiscInfo(2, nl.TC_H_ROOT, nl.tc_handle(1), "tbf"), nl.QdiscInfo(1, nl.TC_H_ROOT, 0, "noqueue")]
    fabric = tagged(kernel, FABRIC, None, forwarding="1")
    fabric.link("brsw", 3, kind="bridge")
    fabric.link("vh1", 4, kind="veth", master=3)
    kernel.procs = [TaggedProcess(41, LAB, "qemu:vm1", ("qemu",), 1), TaggedProcess(42, LAB, "udhcpc:h1:eth0", (), 1),
                    TaggedProcess(43, "lab2", "qemu:vm9", (), 1)]
    kernel.files[naming.run_dir(LAB) / "signatures.json"] = '{"h1": "abc", "r1": null}'
    kernel.frr[LAB] = {"r1": "f00"}
    inv = observe.inventory(None, LAB, kernel=kernel)
    state = inv.namespaces[H1]
    assert state.forwarding is False and inv.namespaces[FABRIC].forwarding is True
    assert state.links["eth0"].addresses == ["10.0.0.1/24"] and state.links["eth0"].dynamic_addresses == ["10.0.0.7/24"]
    assert state.links["eth0"].qdisc == "tbf" and state.links["lo"].qdisc is None
    assert state.routes == {("0.0.0.0/0", "10.0.0.254")}
    assert inv.namespaces[FABRIC].links["vh1"].master == "brsw"
    assert inv.processes == {"qemu:vm1": 41, "udhcpc:h1:eth0": 42} and inv.vms_running == {"vm1"}
    assert inv.signatures == {"h1": "abc", "r1": None} and inv.frr_applied == {"r1": "f00"}
    assert ("read_sysctl", H1, "net.ipv4.ip_forward") in kernel.calls


def test_a_corrupt_signatures_file_is_an_error_not_an_empty_lab():
    kernel = FakeKernel()
    kernel.files[naming.run_dir(LAB) / "signatures.json"] = "{not json"
    with pytest.raises(OSError, match="corrupt"):
        observe.inventory(None, LAB, kernel=kernel)
    assert observe.read_signatures("lab2", kernel=kernel) == {}


def test_a_lab_without_nat_or_loss_runs_no_program():
    """The hot path of big labs: observing runs `nft` only for what the document has."""
    kernel = FakeKernel()
    tagged(kernel, H1, "h1")
    observe.inventory(None, LAB, doc(), kernel=kernel)
    assert kernel.ran() == []


def test_nat_and_loss_are_looked_up_where_the_document_has_them():
    kernel = FakeKernel()
    tagged(kernel, H1, "h1").link("eth0", 2)
    tagged(kernel, R1, "r1", forwarding="1").link("eth0", 2)
    tagged(kernel, FABRIC, None)
    kernel.answer(["nft", "-a", "-t", "list", "ruleset"], namespace=R1,
                  stdout=f'table inet {nft.NODE_TABLE} {{ # handle 1\n\tcomment "topolab:lab1:r1:nat"\n}}\n')
    topology = doc(links=[{"endpoints": ["h1:eth0", "sw"], "loss": "5%"}, {"endpoints": ["r1:eth0", "sw"]}])
    nat = topology.document
    nat["nodes"]["r1"]["nat"] = {"masquerade": ["eth0"]}
    topology = parse_document(nat)
    inv = observe.inventory(None, LAB, topology, kernel=kernel)
    assert inv.nat_applied == {"r1"}
    ran = {(c[1][:3], c[2]) for c in kernel.ran()}
    assert ran == {(("nft", "-a", "-t"), R1), (("nft", "-j", "list"), H1), (("nft", "-j", "list"), FABRIC)}


def test_host_forwarding_and_external_nat_chains_are_read_when_the_lab_holds_the_hosts_ip_forward():
    kernel = FakeKernel()
    kernel.files[naming.run_root() / "host-ip-forward"] = "previous=0\nlab1\n"
    suffix = nft.chain_suffix("wan")
    comment = naming.tag(LAB, "external", "wan")
    kernel.answer(["nft", "-a", "list", "table", "inet", naming.nft_table(LAB)], stdout=(
        f'table inet {naming.nft_table(LAB)} {{ # handle 3\n\tcomment "topolab:lab1"\n'
        + "".join(f'\tchain {c}_{suffix} {{ # handle {i}\n\t\tcomment "{comment}"\n\t}}\n'
                  for i, c in enumerate(("post", "fwd", "in"), 4)) + "}\n"))
    inv = observe.inventory(None, LAB, kernel=kernel)
    assert inv.host_forwarding and inv.external_nat == {"wan"} and inv.nat_applied == {"wan"}
    other = FakeKernel()
    assert observe.inventory(None, "lab2", kernel=other).host_forwarding is False and other.ran() == []


def test_lab_status_reports_usage_and_namespaces_the_document_lacks():
    kernel = FakeKernel()
    h1 = tagged(kernel, H1, "h1")
    h1.link("eth0", 2)
    h1.addresses.append(nl.AddrInfo(2, "10.0.0.1/24", False))
    h1.routes.append(nl.RouteInfo("0.0.0.0/0", "10.0.0.254", 2))
    tagged(kernel, naming.node_namespace(LAB, "old"), "old")
    kernel.usage[(LAB, "h1")] = {"memory": 4096, "pids": 1}
    st = observe.lab_status(None, LAB, doc(), kernel=kernel)
    assert st.nodes["h1"].state == "running" and st.nodes["h1"].usage == {"memory": 4096, "pids": 1}
    assert st.nodes["r1"].state == "absent"
    assert "nodes.old: namespace exists but the node is not in the document" in st.drift
    assert "nodes.r1: namespace missing" in st.drift and "nodes.sw: bridge missing" in st.drift
