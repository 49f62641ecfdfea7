"""destroy against a fake kernel (tests/fakekernel.py): what it removes, in which order, and what it leaves.
That the kernel really ends up empty is tests/kernel's (every kernel test's fixture asserts it)."""
from __future__ import annotations

import errno

import pytest
from fakekernel import FakeKernel

from netops import destroy, naming
from netops.errors import ApplyError
from netops.observe import Found
from netops.procs import TaggedProcess

LAB = "lab1"
FABRIC = naming.fabric_namespace(LAB)
H1 = naming.node_namespace(LAB, "h1")
OTHER = naming.node_namespace("lab2", "h1")
TABLES = ["nft", "-a", "-t", "list", "ruleset"]


def two_labs() -> tuple[FakeKernel, Found]:
    kernel = FakeKernel()
    for ns in (FABRIC, H1, OTHER):
        kernel.namespace(ns)
    kernel.namespace(None).link("tllab1abcd", 7, kind="veth")
    kernel.namespace(None).link("tllab2abcd", 8, kind="veth")
    kernel.procs = [TaggedProcess(10, LAB, "qemu:vm1", ("qemu",), 5), TaggedProcess(11, LAB, "dnsmasq:r1:eth0", (), 5),
                    TaggedProcess(20, "lab2", "qemu:vm1", (), 5)]
    kernel.cgroups = {LAB: ["/sys/fs/cgroup/pids/topolab/lab1"], "lab2": ["/sys/fs/cgroup/pids/topolab/lab2"]}
    kernel.cells = {LAB, "lab2"}
    kernel.dirs[naming.run_dir(LAB)] = []
    kernel.answer(TABLES, stdout='table inet topolab_lab1 { # handle 4\n\tcomment "topolab:lab1"\n}\n'
                                 'table inet topolab_lab2 { # handle 5\n\tcomment "topolab:lab2"\n}\n')
    found = Found({FABRIC: (LAB, None), H1: (LAB, "h1"), OTHER: ("lab2", "h1")},
                  {"tllab1abcd": LAB, "tllab2abcd": "lab2"})
    return kernel, found


def test_it_removes_the_labs_objects_in_order_and_nothing_of_another_lab():
    kernel, found = two_labs()
    events = []
    removed = destroy.destroy_found(None, [LAB], found, events.append, kernel=kernel)
    assert removed == [
        "process 10 (qemu:vm1)", "process 11 (dnsmasq:r1:eth0)", "host link tllab1abcd", "nft table inet topolab_lab1",
        f"namespace {FABRIC}", f"namespace {H1}", "cgroup /sys/fs/cgroup/pids/topolab/lab1",
        f"run dir {naming.run_dir(LAB)}", "uid range of lab lab1"]
    order = [c for c in kernel.names() if c in ("stop_vm", "stop_process", "netlink", "run", "delete_namespace",
                                                 "kill_processes", "remove_cgroups", "remove", "release_cell")]
    # VMs powered down first, every process stopped before links and namespaces go; the uid range last
    assert order == ["stop_vm", "stop_process", "stop_process", "netlink", "run", "run", "delete_namespace",
                     "delete_namespace", "kill_processes", "remove_cgroups", "remove", "release_cell"]
    assert ("stop_vm", LAB, "vm1") in kernel.calls
    assert [(ns, req.what) for ns, req in kernel.requests] == [(None, "delete link tllab1abcd")]
    assert kernel.ran()[-1][3] == "delete table inet handle 4\n"
    assert set(kernel.namespaces) == {None, OTHER} and [p.pid for p in kernel.procs] == [20]
    assert kernel.cells == {"lab2"} and "lab2" in kernel.cgroups
    assert [e.message for e in events][:2] == ["stop qemu:vm1 (pid 10)", "stop dnsmasq:r1:eth0 (pid 11)"]
    assert [e.step for e in events] == [1, 2, 3, 4, 5]


def test_a_failed_graceful_vm_stop_is_a_warning_and_the_process_still_goes():
    kernel, found = two_labs()
    kernel.vm_stop_error = OSError(errno.ECONNREFUSED, "no QMP")
    events = []
    removed = destroy.destroy_found(None, [LAB], found, events.append, kernel=kernel)
    assert events[0].type == "run.warning" and "vm1: graceful VM stop failed" in events[0].message
    assert "process 10 (qemu:vm1)" in removed


def test_a_namespace_that_cannot_be_deleted_fails_with_its_node():
    kernel, found = two_labs()

    def refuse(name: str) -> bool:
        raise OSError(errno.EBUSY, "busy")
    kernel.delete_namespace = refuse  # type: ignore[method-assign]
    with pytest.raises(ApplyError) as err:
        destroy.destroy_found(None, [LAB], found, kernel=kernel)
    assert err.value.element == "fabric"  # the fabric sorts first
    assert ("release_cell", LAB) not in kernel.calls  # the uid range stays the lab's while anything of it exists


def test_a_host_link_that_cannot_be_deleted_fails_with_the_lab():
    kernel, found = two_labs()
    kernel.namespace(None).refuse["delete link tllab1abcd"] = errno.EPERM
    with pytest.raises(ApplyError, match="cannot delete host link tllab1abcd") as err:
        destroy.destroy_found(None, [LAB], found, kernel=kernel)
    assert err.value.element == "lab lab1"


def test_destroy_all_finds_labs_by_every_trace_they_leave():
    kernel = FakeKernel()
    kernel.namespace(H1).link("lo", 1, alias=naming.tag(LAB, "ns", "h1"))
    kernel.namespace(None).link("tllab2abcd", 7, alias=naming.tag("lab2", "door", "wan"))
    kernel.procs = [TaggedProcess(30, "lab3", "console:h1", (), 1)]
    kernel.cgroups = {"lab4": []}
    kernel.cells = {"lab5"}
    kernel.dirs[naming.run_root()] = ["lab6", "not-a-lab", "frr-sock"]
    destroy.destroy_all(kernel=kernel)
    assert [c[1] for c in kernel.calls if c[0] == "release_cell"] == ["lab1", "lab2", "lab3", "lab4", "lab5", "lab6"]


def record():
    return naming.run_root() / "host-ip-forward"  # TOPOLAB_RUN_DIR may change between tests


def test_the_hosts_ip_forward_is_restored_when_the_last_lab_holding_it_goes():
    kernel, rec = FakeKernel(), record()
    kernel.namespace(None).sysctl["net.ipv4.ip_forward"] = "0"
    destroy.host_forwarding_acquire(LAB, kernel=kernel)
    destroy.host_forwarding_acquire("lab2", kernel=kernel)
    destroy.host_forwarding_acquire("lab2", kernel=kernel)
    assert kernel.files[rec] == "previous=0\nlab1\nlab2\n"
    assert kernel.namespace(None).sysctl["net.ipv4.ip_forward"] == "1"
    assert destroy.host_forwarding_labs(kernel=kernel) == {LAB, "lab2"}
    destroy.host_forwarding_release(LAB, kernel=kernel)
    assert kernel.namespace(None).sysctl["net.ipv4.ip_forward"] == "1" and kernel.files[rec] == "previous=0\nlab2\n"
    destroy.host_forwarding_release("lab3", kernel=kernel)  # never held it: nothing changes
    destroy.host_forwarding_release("lab2", kernel=kernel)
    assert kernel.namespace(None).sysctl["net.ipv4.ip_forward"] == "0" and rec not in kernel.files
    writes = [c for c in kernel.calls if c[0] == "write_sysctl"]
    assert writes == [("write_sysctl", None, "net.ipv4.ip_forward", "1")] * 3 + [
        ("write_sysctl", None, "net.ipv4.ip_forward", "0")]


def test_a_host_that_forwarded_already_keeps_forwarding():
    kernel, rec = FakeKernel(), record()
    kernel.namespace(None).sysctl["net.ipv4.ip_forward"] = "1"
    destroy.host_forwarding_acquire(LAB, kernel=kernel)
    destroy.host_forwarding_release(LAB, kernel=kernel)
    assert kernel.namespace(None).sysctl["net.ipv4.ip_forward"] == "1" and rec not in kernel.files
