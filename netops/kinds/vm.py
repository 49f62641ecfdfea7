"""vm: a qemu virtual machine booted from an image of the library, its interfaces taps in the fabric namespace."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .. import naming
from ..inventory import Step
from ..status import NodeStatus, ObserveContext
from .base import Kind

if TYPE_CHECKING:
    from ..check import Checker
    from ..model import Node
    from ..plan import PlanContext

IMAGE_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}\Z")
MEMORY_RANGE = (16, 65536)  # MiB
CPUS_RANGE = (1, 16)


class Vm(Kind):
    name = "vm"
    label = "VM"
    help = "A qemu virtual machine"
    prefix = "vm"
    palette = 3
    keys = ("kind", "description", "host", "image", "memory", "cpus", "interfaces", "routes", "limits", "ui")
    sections = ("vm", "interfaces", "routes")
    interface_keys = ("address", "mac")
    interfaces = True
    console = "serial"
    capture = True
    link_end = "tap"
    stoppable = True
    clab_rank = 0  # a linux node labelled topolab.kind=vm is a vm, whatever its sysctls
    footprint = 64  # qemu's own, beside the guest's memory

    def footprint_mib(self, node: Node) -> int:
        # the image's own default memory is the image library's (not known to pure code): 256 MiB stands for it
        return self.footprint + (node.memory or 256)

    def check(self, checker: Checker, name: str, data: dict[str, Any], path: str) -> dict[str, Any]:
        fields = checker.interfaces_and_routes(name, self, data, path)
        image = data.get("image")
        if "image" not in data:
            checker.add(f"{path}.image", "is required (a name in the image library)")
        elif not isinstance(image, str) or not IMAGE_RE.match(image) or ".." in image:
            checker.add(
                f"{path}.image",
                f"{image!r} is not an image name (a-z, 0-9, '.', '_', '-', up to 64 characters, no '..')",
            )
        elif checker.images is not None and image not in checker.images:
            checker.add(f"{path}.image", f"{image!r} is not in the image library")
        else:
            fields["image"] = image
        if data.get("memory") is not None:
            fields["memory"] = checker.int_in(data["memory"], f"{path}.memory", MEMORY_RANGE, " MiB")
        if data.get("cpus") is not None:
            fields["cpus"] = checker.int_in(data["cpus"], f"{path}.cpus", CPUS_RANGE)
        return fields

    def document(self, node: Node) -> dict[str, Any]:
        from .base import interfaces_document

        doc: dict[str, Any] = {}
        for key in ("image", "memory", "cpus"):
            if getattr(node, key) is not None:
                doc[key] = getattr(node, key)
        doc.update(interfaces_document(node))
        return doc

    def steps(self, ctx: PlanContext, node: Node) -> list[Step]:
        n = node.name
        if n not in ctx.fresh_nodes and n in ctx.inv.vms_running:
            return []
        taps = {i: naming.fabric_ifname(n, i) for i in node.interfaces if (n, i) in ctx.connected}
        return [Step("vm.start", f"nodes.{n}", n, "start VM", {"taps": taps})]

    def status(self, ctx: ObserveContext, name: str, node: Node) -> tuple[NodeStatus, list[str]]:
        from .. import qemu

        vm = qemu.vm_status(ctx.lab, name)
        running = name in ctx.inv.vms_running
        drift = [] if running else [f"nodes.{name}: VM not running"]
        ifaces: dict[str, dict[str, Any]] = {}
        for iname in node.interfaces:
            tap = naming.fabric_ifname(name, iname)
            if ctx.fabric is not None and tap in ctx.fabric.links:
                ifaces[iname] = {"addresses": [], "mac": node.interfaces[iname].mac, "up": ctx.fabric.links[tap].up}
        state = "running" if running else ("stopped" if ctx.fabric is not None else "absent")
        return NodeStatus(node.kind, state, ifaces, vm=vm or {}), drift

    def restart(self, lab: str, name: str) -> bool:
        """A VM reboots: a reset of its machine through QMP (its disk overlay, taps and console stay)."""
        from .. import qemu

        if qemu.vm_status(lab, name).get("alive") is not True:
            return False
        qemu.qmp(lab, name, "system_reset")
        return True

    def capture_point(self, lab: str, node: Node, iface: str) -> tuple[str, str] | None:
        return naming.fabric_namespace(lab), naming.fabric_ifname(node.name, iface)

    def clab_node(self, node: Node, image: str, labels: dict[str, str], warn: Any) -> dict[str, Any] | None:
        warn(f"nodes.{node.name}",
             "a vm becomes a linux container in containerlab; its image, memory and cpus are kept as labels")
        labels["kind"] = self.name
        for key in ("image", "memory", "cpus"):
            if getattr(node, key) is not None:
                labels[key] = str(getattr(node, key))
        return {"kind": "linux", "image": image, "network-mode": "none"}

    def clab_claims(self, clab_kind: object, labels: dict[str, Any], forwarding: bool) -> bool:
        return clab_kind == "linux" and labels.get("kind") == self.name

    def clab_import(self, label: dict[str, Any]) -> dict[str, Any]:
        node: dict[str, Any] = {}
        if "image" in label:
            node["image"] = str(label["image"])
        for key in ("memory", "cpus"):
            if key in label:
                node[key] = int(label[key]) if str(label[key]).isdigit() else label[key]
        return node

    def cost(self, node: dict[str, Any], memory_of_image: dict[Any, Any], default_memory: int) -> dict[str, int]:
        value = node.get("memory") or memory_of_image.get(node.get("image")) or default_memory
        return {"vms": 1, "vm_memory": int(value) if isinstance(value, int) else default_memory}
