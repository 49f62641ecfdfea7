"""The qemu argv builder: explicit formats, escaped paths, unix sockets only, stable MACs, the guest command line."""
from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from netops import images, model, qemu
from netops.errors import ApplyError, TopologyError


def kernel_image(library: Path, name: str = "tiny") -> images.Image:
    d = library / name
    d.mkdir(parents=True)
    (d / "vmlinuz").write_bytes(b"kernel")
    (d / "initrd.gz").write_bytes(b"initrd")
    (d / "manifest.json").write_text(json.dumps({
        "name": name, "format": "kernel", "kernel": "vmlinuz", "initrd": "initrd.gz",
        "append": "console=ttyS0 quiet", "memory": 128}))
    return images.get_image(name, directory=library)


def disk_image(library: Path, name: str = "deb") -> images.Image:
    d = library / name
    d.mkdir(parents=True)
    (d / "disk.qcow2").write_bytes(b"QFI")
    (d / "manifest.json").write_text(json.dumps({"name": name, "format": "qcow2", "disk": "disk.qcow2",
                                                 "memory": 512}))
    return images.get_image(name, directory=library)


def vm(**kw) -> model.Node:
    interfaces = kw.pop("interfaces", {"eth0": model.Interface("eth0", dhcp=True)})
    return model.Node(name=kw.pop("name", "vm1"), kind="vm", image=kw.pop("image", "tiny"),
                      interfaces=interfaces, **kw)


def value_after(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def test_a_direct_boot_vm_gets_kernel_initrd_and_a_guest_command_line(tmp_path: Path) -> None:
    image = kernel_image(tmp_path / "lib")
    run = tmp_path / "run"
    node = vm(interfaces={
        "eth0": model.Interface("eth0", dhcp=True),
        "eth1": model.Interface("eth1", addresses=(ipaddress.ip_interface("10.0.2.5/24"),), mtu=1400),
        "mgmt": model.Interface("mgmt"),
    }, routes=(model.Route(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_address("10.0.2.1")),))
    argv = qemu.vm_argv("lab1", node, image, {"eth0": "vaaa", "eth1": "vbbb", "mgmt": "vccc"},
                        accel="tcg", run_dir=run)
    assert argv[0] == "qemu-system-x86_64"
    assert value_after(argv, "-accel") == ["tcg"] and value_after(argv, "-m") == ["128"]
    assert value_after(argv, "-kernel") == [str((tmp_path / "lib/tiny/vmlinuz").resolve())]
    assert value_after(argv, "-initrd") == [str((tmp_path / "lib/tiny/initrd.gz").resolve())]
    append = value_after(argv, "-append")[0].split()
    mac0 = qemu.stable_mac("lab1", "vm1", "eth0")
    assert append[:2] == ["console=ttyS0", "quiet"]
    assert "topolab.hostname=vm1" in append and f"topolab.mac.eth0={mac0}" in append
    assert "topolab.addr.eth1=10.0.2.5/24" in append and "topolab.nodhcp.mgmt=1" in append
    assert "topolab.route=default@10.0.2.1" in append
    assert not any(w.startswith("topolab.addr.eth0") or w.startswith("topolab.nodhcp.eth0") for w in append)
    assert value_after(argv, "-netdev") == [
        "tap,id=n0,ifname=vaaa,script=no,downscript=no", "tap,id=n1,ifname=vbbb,script=no,downscript=no",
        "tap,id=n2,ifname=vccc,script=no,downscript=no"]
    devices = value_after(argv, "-device")
    assert devices[0] == f"virtio-net-pci,netdev=n0,mac={mac0}" and devices[1].endswith(",host_mtu=1400")
    assert "-drive" not in argv


def test_a_disk_vm_boots_its_overlay_with_an_explicit_format(tmp_path: Path) -> None:
    image = disk_image(tmp_path / "lib")
    run = tmp_path / "run"
    argv = qemu.vm_argv("lab1", vm(image="deb", memory=1024, cpus=2), image, {"eth0": "vaaa"}, accel="kvm",
                        run_dir=run, overlay=run / "vm1.overlay.qcow2")
    assert value_after(argv, "-drive") == [f"file={run}/vm1.overlay.qcow2,format=qcow2,if=virtio,cache=writeback"]
    assert value_after(argv, "-m") == ["1024"] and value_after(argv, "-smp") == ["2"]
    assert "-kernel" not in argv and "-append" not in argv
    with pytest.raises(ApplyError, match="needs its overlay"):
        qemu.vm_argv("lab1", vm(image="deb"), image, {"eth0": "vaaa"}, accel="kvm", run_dir=run)


def test_commas_in_paths_are_doubled_in_option_values(tmp_path: Path) -> None:
    image = disk_image(tmp_path / "lib")
    run = tmp_path / "a,b"
    argv = qemu.vm_argv("lab1", vm(image="deb"), image, {"eth0": "vaaa"}, accel="tcg", run_dir=run,
                        overlay=run / "vm1.overlay.qcow2")
    esc = str(tmp_path).replace(",", ",,") + "/a,,b"
    assert value_after(argv, "-drive")[0].startswith(f"file={esc}/vm1.overlay.qcow2,format=qcow2")
    chardevs = value_after(argv, "-chardev")
    assert f"path={esc}/vm1.console,server=on,wait=off" in chardevs[0]
    assert f"logfile={esc}/vm1.console.log" in chardevs[0]
    assert chardevs[1] == f"socket,id=qmp0,path={esc}/vm1.qmp,server=on,wait=off"
    assert value_after(argv, "-pidfile") == [f"{tmp_path}/a,b/vm1.pid"]  # a plain value: not escaped


def test_nothing_listens_on_tcp_and_there_is_no_display(tmp_path: Path) -> None:
    image = kernel_image(tmp_path / "lib")
    argv = qemu.vm_argv("lab1", vm(), image, {"eth0": "vaaa"}, accel="tcg", run_dir=tmp_path / "run")
    joined = " ".join(argv)
    for needle in ("tcp:", "telnet", "vnc", "spice", "host=", "port=", "websocket", "-monitor", "stdio"):
        assert needle not in joined
    assert {"-nodefaults", "-nographic", "-no-user-config"} <= set(argv)
    assert value_after(argv, "-display") == ["none"]
    assert value_after(argv, "-serial") == ["chardev:con0"]
    assert value_after(argv, "-mon") == ["chardev=qmp0,mode=control"]
    assert value_after(argv, "-sandbox")[0].startswith("on,")


def test_macs_are_stable_per_lab_node_and_interface_and_explicit_ones_win(tmp_path: Path) -> None:
    assert qemu.stable_mac("lab1", "vm1", "eth0") == qemu.stable_mac("lab1", "vm1", "eth0")
    assert qemu.stable_mac("lab1", "vm1", "eth0").startswith("52:54:00:")
    macs = {qemu.stable_mac(lab, n, i) for lab in ("lab1", "lab2") for n in ("vm1", "vm2") for i in ("eth0", "eth1")}
    assert len(macs) == 8
    image = kernel_image(tmp_path / "lib")
    node = vm(interfaces={"eth0": model.Interface("eth0", dhcp=True, mac="52:54:00:aa:bb:cc")})
    argv = qemu.vm_argv("lab1", node, image, {"eth0": "vaaa"}, accel="tcg", run_dir=tmp_path / "run")
    assert value_after(argv, "-device") == ["virtio-net-pci,netdev=n0,mac=52:54:00:aa:bb:cc"]
    assert "topolab.mac.eth0=52:54:00:aa:bb:cc" in value_after(argv, "-append")[0]


def test_it_refuses_missing_taps_bad_accels_and_paths_outside(tmp_path: Path) -> None:
    image = kernel_image(tmp_path / "lib")
    run = tmp_path / "run"
    with pytest.raises(ApplyError) as exc:
        qemu.vm_argv("lab1", vm(), image, {"eth9": "vaaa"}, accel="tcg", run_dir=run)
    assert exc.value.element == "nodes.vm1.interfaces"
    with pytest.raises(ApplyError, match="no valid tap"):
        qemu.vm_argv("lab1", vm(), image, {"eth0": "a,b"}, accel="tcg", run_dir=run)
    with pytest.raises(ApplyError, match="accelerator"):
        qemu.vm_argv("lab1", vm(), image, {"eth0": "vaaa"}, accel="hvf", run_dir=run)
    (run).mkdir()
    (run / "vm1.console").symlink_to("/etc/passwd")
    with pytest.raises(ApplyError, match="outside"):
        qemu.vm_argv("lab1", vm(), image, {"eth0": "vaaa"}, accel="tcg", run_dir=run)
    # an image whose kernel was swapped for a symlink after loading is refused at build time
    (tmp_path / "lib/tiny/vmlinuz").unlink()
    (tmp_path / "lib/tiny/vmlinuz").symlink_to("/etc/passwd")
    with pytest.raises(TopologyError, match="outside"):
        qemu.vm_argv("lab1", vm(), image, {"eth0": "vaaa"}, accel="tcg", run_dir=tmp_path / "run2")


def test_the_accelerator_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOPOLAB_ACCEL", "tcg")
    assert qemu.accel() == "tcg"
    monkeypatch.setenv("TOPOLAB_ACCEL", "bogus")
    with pytest.raises(ApplyError):
        qemu.accel()


def test_an_unwired_interface_gets_no_nic(tmp_path: Path) -> None:
    image = kernel_image(tmp_path / "lib")
    node = vm(interfaces={"eth0": model.Interface("eth0", dhcp=True), "eth1": model.Interface("eth1", dhcp=True)})
    argv = qemu.vm_argv("lab1", node, image, {"eth1": "vbbb"}, accel="tcg", run_dir=tmp_path / "run")
    assert value_after(argv, "-netdev") == ["tap,id=n0,ifname=vbbb,script=no,downscript=no"]
    assert value_after(argv, "-device") == [f"virtio-net-pci,netdev=n0,mac={qemu.stable_mac('lab1', 'vm1', 'eth1')}"]
    assert "topolab.mac.eth0" not in value_after(argv, "-append")[0]


def test_a_disk_image_refuses_static_addresses_and_routes_it_cannot_configure(tmp_path: Path) -> None:
    image = disk_image(tmp_path / "lib")
    run = tmp_path / "run"
    static = vm(image="deb", interfaces={
        "eth0": model.Interface("eth0", addresses=(ipaddress.ip_interface("10.0.2.5/24"),))})
    with pytest.raises(ApplyError) as refused:
        qemu.vm_argv("lab1", static, image, {"eth0": "vaaa"}, accel="tcg", run_dir=run, overlay=run / "o.qcow2")
    assert refused.value.element == "nodes.vm1.interfaces.eth0.address"
    routed = vm(image="deb", routes=(model.Route(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_address("10.0.2.1")),))
    with pytest.raises(ApplyError) as refused:
        qemu.vm_argv("lab1", routed, image, {"eth0": "vaaa"}, accel="tcg", run_dir=run, overlay=run / "o.qcow2")
    assert refused.value.element == "nodes.vm1.routes"
