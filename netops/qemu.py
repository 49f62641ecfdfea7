"""VM nodes: qemu guests whose NICs are tap devices on the lab's bridges.

The engine creates one tap per VM interface (`naming.fabric_ifname(node, iface)`) in the lab's fabric namespace,
attached to the right bridge and up, then calls `start_vm()`; qemu runs inside the fabric namespace (through
`procs.spawn`, tagged `qemu:<node>`) so it finds those taps. `stop_vm()` asks the guest to power off over QMP, then
stops the process, and removes the overlay and sockets.

Per VM, in the lab's cell dir (`cell.cell_dir(lab)`, the lab's uid: qemu runs in the lab's cell, with no
capability, attached to taps its uid owns): `<node>.console` (serial console, unix socket; `<node>.console.log` records it),
`<node>.qmp` (QMP, unix socket), `<node>.pid`, `<node>.qemu.log` (qemu's stderr), `<node>.overlay.qcow2` (disk
images only: the deployment's writes; the library's base is never written); in the agent's run dir
`<node>.vm.json` (what was started). The agent reaches the sockets only through `cell.connect_unix` (never through a
link the lab planted).
No TCP listener anywhere: consoles and QMP are unix sockets only.

`vm_argv()` is a pure builder (unit-tested); everything touching processes and files is below it.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import platform
import re
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import cell as cells
from . import images, model, naming, procs
from .errors import ApplyError, TopologyError
from .kernel import sysctl
from .kernel.host import HOST

QEMU = "qemu-system-x86_64"
ACCELS = ("kvm", "tcg")
BOOT_MARKER = "TOPOLAB-BOOT-OK"  # printed by the tiny guest's init (scripts/tiny-init)
PROBE_TIMEOUT = 20.0  # seconds; the tiny guest reaches its marker in ~2.5 s under TCG, well under 1 s with KVM
ACCEL_CACHE = "accel.json"
GUEST_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}\Z")
log = logging.getLogger(__name__)
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"


# ---------------------------------------------------------------------------------------------- pure helpers


def opt(value: str | os.PathLike[str]) -> str:
    """A value for qemu's `key=value,...` option syntax: commas doubled."""
    return str(value).replace(",", ",,")


def stable_mac(lab: str, node: str, interface: str) -> str:
    """A locally administered MAC in qemu's 52:54:00 range, the same for (lab, node, interface) on every deploy."""
    digest = hashlib.sha256(f"topolab-mac:{lab}:{node}:{interface}".encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def mac_of(lab: str, node: model.Node, interface: str) -> str:
    return node.interfaces[interface].mac or stable_mac(lab, node.name, interface)


def console_path(lab: str, node: str) -> Path:
    """The VM's serial console: a unix stream socket (connect to read and type)."""
    return cells.cell_dir(lab) / f"{node}.console"


def qmp_path(lab: str, node: str) -> Path:
    return cells.cell_dir(lab) / f"{node}.qmp"


def overlay_path(lab: str, node: str) -> Path:
    return cells.cell_dir(lab) / f"{node}.overlay.qcow2"


def _files(run_dir: Path, node: str) -> dict[str, Path]:
    return {
        "console": run_dir / f"{node}.console",
        "console_log": run_dir / f"{node}.console.log",
        "qmp": run_dir / f"{node}.qmp",
        "pid": run_dir / f"{node}.pid",
        "log": run_dir / f"{node}.qemu.log",
        "overlay": run_dir / f"{node}.overlay.qcow2",
    }


def _inside(path: Path, root: Path, element: str) -> str:
    """`path` as a string after checking that it (or, for a file not yet created, its directory) is under `root`."""
    real = os.path.realpath(path)
    base = os.path.realpath(root)
    if os.path.commonpath([real, base]) != base:
        raise ApplyError(f"{path} resolves to {real}, outside {base}", element=element)
    return str(path)


def kernel_cmdline(node: model.Node, image: images.Image, macs: Mapping[str, str]) -> str:
    """The direct-boot command line: the image's own, then hostname, NIC names by MAC, static addresses, routes
    (understood by scripts/tiny-init)."""
    words = image.append.split() or ["console=ttyS0"]
    words.append(f"topolab.hostname={node.name}")
    for name, iface in node.interfaces.items():
        if name not in macs:
            continue  # not wired: no NIC in the guest
        words.append(f"topolab.mac.{name}={macs[name]}")
        if iface.addresses:
            words.append(f"topolab.addr.{name}=" + "+".join(str(a) for a in iface.addresses))
        elif not iface.dhcp:
            words.append(f"topolab.nodhcp.{name}=1")
    for route in node.routes:
        dest = "default" if route.to.prefixlen == 0 else str(route.to)
        words.append(f"topolab.route={dest}@{route.via}")
    return " ".join(words)


def vm_argv(
    lab: str,
    node: model.Node,
    image: images.Image,
    taps: Mapping[str, str],
    *,
    accel: str,
    run_dir: Path,
    overlay: Path | None = None,
    macs: Mapping[str, str] | None = None,
) -> list[str]:
    """The qemu argv for one VM node. Pure: reads nothing but `os.path.realpath` for the containment checks.

    `taps` maps the node's wired interfaces to their tap devices (an interface without one gets no NIC);
    `overlay` is required for disk images.
    """
    element = f"nodes.{node.name}"
    if accel not in ACCELS:
        raise ApplyError(f"accelerator {accel!r} is not one of {ACCELS}", element=element)
    macs = {name: (macs or {}).get(name) or mac_of(lab, node, name) for name in node.interfaces}
    files = {key: _inside(path, run_dir, element) for key, path in _files(run_dir, node.name).items()}
    memory = node.memory or image.memory
    argv = [
        QEMU,
        "-name", opt(node.name),  # no `process=`: the command name stays qemu-system-*, as tools expect
        "-machine", "q35",
        "-accel", accel,
        "-m", str(memory),
        "-smp", str(node.cpus or 1),
        "-nographic", "-nodefaults", "-no-user-config", "-display", "none",
        "-sandbox", SANDBOX,
        "-chardev", f"socket,id=con0,path={opt(files['console'])},server=on,wait=off,"
                    f"logfile={opt(files['console_log'])},logappend=on",
        "-serial", "chardev:con0",
        "-chardev", f"socket,id=qmp0,path={opt(files['qmp'])},server=on,wait=off",
        "-mon", "chardev=qmp0,mode=control",
        "-pidfile", files["pid"],
    ]
    for name in taps:
        if name not in node.interfaces:
            raise ApplyError(f"tap given for unknown interface {name!r}", element=f"{element}.interfaces")
    # An interface without a tap is not wired: the guest gets no NIC for it (an unplugged card).
    wired = [name for name in node.interfaces if name in taps]
    for index, name in enumerate(wired):
        iface = node.interfaces[name]
        if not GUEST_IFNAME_RE.match(name):
            raise ApplyError(f"interface name {name!r} cannot be passed to the guest", element=f"{element}.interfaces")
        tap = taps[name]
        if not isinstance(tap, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", tap):
            raise ApplyError(f"no valid tap device for this interface (got {tap!r})",
                             element=f"{element}.interfaces.{name}")
        device = f"virtio-net-pci,netdev=n{index},mac={macs[name]}"
        if iface.mtu:
            device += f",host_mtu={iface.mtu}"
        argv += ["-netdev", f"tap,id=n{index},ifname={opt(tap)},script=no,downscript=no", "-device", device]
    if image.is_disk:
        # a disk image's guest configures itself; only direct-boot images take addresses on their command line
        for name in wired:
            if node.interfaces[name].addresses:
                raise ApplyError(f"image {image.name} boots from its disk and cannot be given static addresses; use "
                                 "'dhcp' or configure them inside the guest",
                                 element=f"{element}.interfaces.{name}.address")
        if node.routes:
            raise ApplyError(f"image {image.name} boots from its disk and cannot be given routes",
                             element=f"{element}.routes")
        if overlay is None:
            raise ApplyError("a disk image needs its overlay", element=f"{element}.image")
        argv += ["-drive", f"file={opt(_inside(overlay, run_dir, element))},format=qcow2,if=virtio,cache=writeback"]
    else:
        argv += [
            "-kernel", _inside(image.file(image.kernel), image.library, element),
            "-initrd", _inside(image.file(image.initrd), image.library, element),
            "-append", kernel_cmdline(node, image, {name: macs[name] for name in wired}),
        ]
    return argv


# ---------------------------------------------------------------------------------------------- accelerator


def _boot_id() -> str:
    try:
        return sysctl.read("kernel.random.boot_id")
    except OSError:
        return ""


def probe_kvm(image: images.Image, *, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """Boot the tiny direct-boot image under KVM with `topolab.probe=1`; True when its marker appears in time."""
    argv = [
        QEMU, "-machine", "q35", "-accel", "kvm", "-m", "128", "-nographic", "-nodefaults", "-no-user-config",
        "-display", "none", "-serial", "stdio", "-no-reboot", "-sandbox", SANDBOX,
        "-kernel", str(image.file(image.kernel)), "-initrd", str(image.file(image.initrd)),
        "-append", f"{image.append} topolab.probe=1",
    ]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, f"KVM probe boot did not print {BOOT_MARKER} within {timeout:.0f} s"
    except OSError as exc:
        return False, f"cannot run {QEMU}: {exc}"
    if BOOT_MARKER.encode() in done.stdout:
        return True, "KVM probe boot reached the guest's init"
    err = done.stderr.decode(errors="replace").strip().splitlines()
    return False, f"KVM probe boot failed: {err[-1] if err else 'no marker, exit ' + str(done.returncode)}"


def accel_info(*, probe_image: str = "tiny") -> dict[str, Any]:
    """The accelerator decision for this host: {"accel", "reason", "boot_id", "decided"}.

    `$TOPOLAB_ACCEL` (kvm|tcg) overrides. Otherwise decided once per boot of the host (probing costs up to
    PROBE_TIMEOUT when /dev/kvm exists but does not work) and cached in `<run_root>/accel.json`.
    """
    forced = os.environ.get("TOPOLAB_ACCEL")
    if forced:
        if forced not in ACCELS:
            raise ApplyError(f"TOPOLAB_ACCEL={forced!r} is not one of {ACCELS}")
        return {"accel": forced, "reason": "forced by TOPOLAB_ACCEL", "cached": False}
    if not os.path.exists("/dev/kvm"):
        return {"accel": "tcg", "reason": "/dev/kvm does not exist", "cached": False}
    root = naming.run_root()
    root.mkdir(parents=True, exist_ok=True)
    cache = root / ACCEL_CACHE
    with open(root / (ACCEL_CACHE + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one probe per host, even with several workers starting VMs at once
        try:
            known = json.loads(cache.read_text())
        except FileNotFoundError:
            known = None
        except ValueError:
            known = None  # a torn or foreign file: decide again and overwrite it
        if isinstance(known, dict) and known.get("boot_id") == _boot_id() and known.get("accel") in ACCELS:
            return dict(known, cached=True)
        try:
            image = images.get_image(probe_image)
        except TopologyError as exc:
            return {"accel": "tcg", "reason": f"cannot probe KVM without the {probe_image} image: {exc}",
                    "cached": False}
        ok, reason = probe_kvm(image)
        decision = {"accel": "kvm" if ok else "tcg", "reason": reason, "boot_id": _boot_id(),
                    "kernel": platform.release(), "decided": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(decision) + "\n")
        tmp.replace(cache)
        return dict(decision, cached=False)


def accel() -> str:
    """"kvm" when /dev/kvm exists and a probe boot under KVM works, else "tcg" (cached per host boot)."""
    return str(accel_info()["accel"])


# ---------------------------------------------------------------------------------------------- processes


def role(node_name: str) -> str:
    return f"qemu:{node_name}"


def _find(lab: str, node_name: str) -> procs.TaggedProcess | None:
    found = procs.find(lab, role(node_name))
    return found[0] if found else None


def _tail(lab: str, path: Path, lines: int = 5) -> str:
    try:
        text = cells.read_text(lab, path) or ""
    except ApplyError as exc:
        return exc.message
    return " | ".join(text.strip().splitlines()[-lines:])


def _state_path(lab: str, node_name: str) -> Path:
    return naming.run_dir(lab) / f"{node_name}.vm.json"


def _prepare_overlay(image: images.Image, overlay: Path, element: str) -> None:
    """Create the deployment's qcow2 overlay over the (re-checked) base; keep an existing one on the same base."""
    base = image.file(image.disk)
    fmt = images.check_disk(base, element=element)  # the library's file may have been replaced since it was added
    if fmt != image.format:
        raise ApplyError(f"image {image.name}: base is {fmt}, manifest says {image.format}", element=element)
    if overlay.exists():
        info = images.qemu_img_info(overlay, element=element)
        if info.get("full-backing-filename") == str(base) and info.get("format") == "qcow2":
            return
        overlay.unlink()
    HOST.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", fmt, str(overlay)], element=element)
    cell = cells.get(overlay.parent.parent.name)
    if cell is not None:  # the lab's qemu writes it
        fd = os.open(overlay, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchown(fd, cell.uid, cell.gid)
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)


def start_vm(lab: str, node: model.Node, taps: Mapping[str, str], fabric_namespace: str, *,
             wait: float = 10.0) -> int:
    """Start the VM node's qemu inside `fabric_namespace` (whose taps `taps` names); its pid. Idempotent: when the
    VM already runs, its pid. ApplyError (element `nodes.<vm>...`) when qemu does not come up."""
    element = f"nodes.{node.name}"
    if not node.image:
        raise ApplyError("not a vm node with an image", element=element)
    running = _find(lab, node.name)
    if running is not None:
        return running.pid
    image = images.get_image(node.image, element=f"{element}.image")
    run_dir = cells.cell_dir(lab)
    files = _files(run_dir, node.name)
    for key in ("console", "qmp", "pid"):
        files[key].unlink(missing_ok=True)  # left by a qemu that was killed; nothing listens on them
    decision = accel_info()
    overlay = None
    if image.is_disk:
        overlay = files["overlay"]
        _prepare_overlay(image, overlay, f"{element}.image")
    argv = vm_argv(lab, node, image, taps, accel=decision["accel"], run_dir=run_dir, overlay=overlay)
    state = {"image": image.name, "format": image.format, "memory": node.memory or image.memory,
             "cpus": node.cpus or 1, "accel": decision["accel"],
             "macs": {name: mac_of(lab, node, name) for name in node.interfaces}, "taps": dict(taps)}
    fd = os.open(_state_path(lab, node.name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(state) + "\n")
    pid = procs.spawn(argv, lab=lab, role=role(node.name), namespace=fabric_namespace, log_path=files["log"],
                      node=node.name)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if procs.inspect(pid) is None:
            raise ApplyError(f"qemu exited at start: {_tail(lab, files['log']) or 'no output'}", element=element)
        if files["qmp"].exists() and files["console"].exists():
            try:  # QMP answers once machine init (taps included) is done
                qmp(lab, node.name, "query-status", timeout=max(0.5, deadline - time.monotonic()))
            except (OSError, ValueError, ApplyError):
                time.sleep(0.05)
                continue
            if procs.inspect(pid) is not None:
                return pid
        time.sleep(0.05)
    raise ApplyError(f"qemu did not open its sockets within {wait:.0f} s: {_tail(lab, files['log'])}",
                     element=element, permanent=False)


def qmp(lab: str, node_name: str, command: str, arguments: dict[str, Any] | None = None, *,
        timeout: float = 5.0) -> Any:
    """Run one QMP command on the VM and return its `return` value."""
    with cells.connect_unix(lab, qmp_path(lab, node_name), timeout=timeout) as sock:
        stream = sock.makefile("rwb")

        def call(execute: str, args: dict[str, Any] | None = None) -> Any:
            msg = {"execute": execute, **({"arguments": args} if args else {})}
            stream.write(json.dumps(msg).encode() + b"\n")
            stream.flush()
            while True:
                line = stream.readline()
                if not line:
                    raise ApplyError(f"QMP {execute}: connection closed", element=f"nodes.{node_name}")
                reply = json.loads(line)
                if "return" in reply:
                    return reply["return"]
                if "error" in reply:
                    raise ApplyError(f"QMP {execute}: {reply['error'].get('desc')}", element=f"nodes.{node_name}")
                # asynchronous events ({"event": ...}) are skipped

        json.loads(stream.readline())  # greeting
        call("qmp_capabilities")
        return call(command, arguments)


def _gone(proc: procs.TaggedProcess) -> bool:
    now = procs.inspect(proc.pid)
    return now is None or now.start_time != proc.start_time


def stop_vm(lab: str, node_name: str, *, timeout: float = 10.0) -> bool:
    """Power the VM off: ACPI power button over QMP, wait up to `timeout`, then SIGTERM/SIGKILL. Removes the
    overlay, sockets and pid file. True when the guest powered off by itself."""
    proc = _find(lab, node_name)
    graceful = False
    if proc is not None:
        try:
            qmp(lab, node_name, "system_powerdown")
            asked = True
        except (OSError, ValueError, ApplyError) as exc:
            log.info("nodes.%s: no QMP powerdown (%s); stopping qemu with signals", node_name, exc)
            asked = False
        if asked:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not _gone(proc):
                time.sleep(0.1)
            graceful = _gone(proc)
        procs.stop(proc, timeout=5.0)
    for key, path in _files(cells.cell_dir(lab), node_name).items():
        if key not in ("log", "console_log"):
            path.unlink(missing_ok=True)
    _state_path(lab, node_name).unlink(missing_ok=True)
    return graceful


def vm_status(lab: str, node_name: str) -> dict[str, Any]:
    """What is known about the VM from the system: pid, alive, accel, console, memory, image, macs."""
    files = _files(cells.cell_dir(lab), node_name)
    proc = _find(lab, node_name)
    try:
        state = json.loads(_state_path(lab, node_name).read_text())
    except (FileNotFoundError, ValueError):
        state = {}
    return {
        "pid": proc.pid if proc else None,
        "alive": proc is not None,
        "accel": state.get("accel"),
        "console": str(files["console"]),
        "qmp": str(files["qmp"]),
        "memory": state.get("memory"),
        "image": state.get("image"),
        "macs": state.get("macs", {}),
        "taps": state.get("taps", {}),
    }
