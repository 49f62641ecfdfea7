"""`Kind`: what one node kind declares, and the two families most kinds belong to.

A kind is one class in its own module of this package (host.py, router.py, ...), registered in `__init__.py`.
It declares, as class attributes, what every layer asks about it (keys, prefix, interfaces, namespace, console,
capture, link end), and, as methods, the parts of validation, writing, planning, applying, observing, containerlab
mapping and quota cost that differ between kinds. Everything outside this package asks the registry
(`netops.kinds.get(kind)`), never compares a kind's name.

`NamespaceKind` (host, router): a network namespace of its own, interfaces inside it, linked by veths.
`SegmentKind` (bridge, external): a bridge in the lab's fabric namespace, linked by its bare name.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .. import naming
from ..inventory import Step
from ..status import NodeStatus, ObserveContext, iface_dict

if TYPE_CHECKING:
    from ..check import Checker
    from ..model import Node, Route, Topology
    from ..plan import PlanContext

@dataclass(frozen=True)
class Setting:
    """A plain key of a kind (true/false, an integer, a text) that the canvas's properties panel edits without code
    of its own: listed in `Kind.settings`, shown in the panel's "settings" section."""

    key: str
    label: str
    type: str  # "bool" | "int" | "text"
    help: str = ""
    min: int | None = None
    max: int | None = None


#: how a link reaches a node: "ns" (a veth end inside its namespace), "tap" (a tap in the fabric namespace),
#: "segment" (a port of its bridge in the fabric namespace)
LINK_ENDS = ("ns", "tap", "segment")


class Kind:
    """Base of every node kind. Defaults describe a kind that has nothing (no interfaces, namespace, console)."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""  # shown in the palette
    help: ClassVar[str] = ""  # one line, shown as the palette's tooltip
    prefix: ClassVar[str] = "n"  # names given to new nodes: prefix + a number (h1, r2, br3)
    palette: ClassVar[int] = 99  # place in the canvas's palette (smallest first)
    icon: ClassVar[str] = ""  # static path of its icon (default: img/nodes/<name>.svg)
    #: allowed keys of the node in the document, in the order the normalised document writes them. A kind with the
    #: `host` key runs on one lab host when a lab spans hosts (netops.placement); one without it (a switch) is built
    #: on every host that has a port on it (netops.span).
    keys: ClassVar[tuple[str, ...]] = ("kind", "description", "ui")
    #: sections of the canvas's properties panel, in order (static/js/editor/panel.js renders each by name)
    sections: ClassVar[tuple[str, ...]] = ()
    interface_keys: ClassVar[tuple[str, ...]] = ()  # keys the properties panel offers on each interface
    settings: ClassVar[tuple[Setting, ...]] = ()  # plain keys the panel's "settings" section edits
    interfaces: ClassVar[bool] = False  # endpoints are `node:iface` (else the bare node name)
    namespace: ClassVar[bool] = False  # gets a network namespace of its own
    console: ClassVar[str | None] = None  # "shell" (a shell in its namespace), "serial" (its serial port), None
    capture: ClassVar[bool] = False  # its interfaces can be captured on
    link_end: ClassVar[str] = "segment"  # one of LINK_ENDS
    serves_dhcp: ClassVar[bool] = False  # its interfaces may carry dhcp_server
    forwarding: ClassVar[bool] = False  # ip_forward on in its namespace
    masquerade: ClassVar[bool] = False  # `nat: {masquerade: [...]}` on its interfaces
    uplink: ClassVar[bool] = False  # the lab's door to the host's networks (not a switch inside the lab)
    clab_rank: ClassVar[int] = 1  # the smallest rank wins when several kinds claim a containerlab node
    clab_host_endpoint: ClassVar[bool] = False  # containerlab's `host:<port>` endpoints become nodes of this kind
    clab_labels: ClassVar[tuple[str, ...]] = ()  # link labels (topolab.*) its clab_endpoint() writes, in order
    #: plan actions this kind's methods apply: action -> method name (called as method(applier, step))
    actions: ClassVar[dict[str, str]] = {}
    #: a running node of this kind can be stopped and started again (netops.actions); a segment runs nothing
    stoppable: ClassVar[bool] = False
    #: the most links that may end at one node of this kind (None: no limit but the document's)
    max_links: ClassVar[int | None] = None
    # a segment built as a tree of bridges past naming.SWITCH_PORTS links (netops.wiring.switch_bridge)
    tree_of_bridges: ClassVar[bool] = False
    max_links_reason: ClassVar[str] = ""

    # ---------------------------------------------------------------------------------------------- validation

    def check(self, checker: Checker, name: str, data: dict[str, Any], path: str) -> dict[str, Any]:
        """Check the kind's own keys of node `name` (the generic ones are checked already); the `Node` fields
        they give. Problems go to `checker.add(path, message)`. By default: the kind's `settings`."""
        return self.check_settings(checker, data, path)

    def check_settings(self, checker: Checker, data: dict[str, Any], path: str) -> dict[str, Any]:
        """The values of the kind's plain settings present in `data`, as the `settings` field of its Node."""
        values: dict[str, Any] = {}
        for s in self.settings:
            value = data.get(s.key)
            if value is None:
                continue
            where = f"{path}.{s.key}"
            if s.type == "bool" and not isinstance(value, bool):
                checker.add(where, f"{value!r} must be true or false")
            elif s.type == "int":
                low = s.min if s.min is not None else -(1 << 31)
                high = s.max if s.max is not None else (1 << 31) - 1
                if checker.int_in(value, where, (low, high)) is not None:
                    values[s.key] = value
                continue
            elif s.type == "text" and (not isinstance(value, str) or len(value) > 200 or not value.isprintable()):
                checker.add(where, f"{value!r} must be a line of text of at most 200 characters")
            else:
                values[s.key] = value
        return {"settings": values} if values else {}

    def link_problem(self, other: Kind, a: str, b: str) -> str | None:
        """Why a link from this node (`a`) to a node of kind `other` (`b`) cannot be, or None."""
        return None

    # ---------------------------------------------------------------------------------------------- writing

    def document(self, node: Node) -> dict[str, Any]:
        """The kind's keys of the normalised document (between `description` and `ui`), in order. By default: the
        kind's settings, in the order of `keys`."""
        return settings_document(self, node)

    # ---------------------------------------------------------------------------------------------- planning

    def fabric_links(self, lab: str, node: Node, topology: Topology | None = None) -> set[str]:
        """Fabric-namespace links the node itself owns (not those of its links); `topology` is the document it
        is part of, when the answer depends on its links (a switch built as a tree of bridges)."""
        return set()

    def root_links(self, lab: str, node: Node) -> set[str]:
        """Root-namespace links the node owns."""
        return set()

    def host_nat(self, node: Node) -> bool:
        """Whether the node needs host masquerade (and so the host's ip_forward)."""
        return False

    def steps(self, ctx: PlanContext, node: Node) -> list[Step]:
        """The kind's own steps for `node` (the planner sorts every step into its phase)."""
        return []

    # ---------------------------------------------------------------------------------------------- observing

    def status(self, ctx: ObserveContext, name: str, node: Node) -> tuple[NodeStatus, list[str]]:
        """The node's state and its drift (each line starting with its path)."""
        return NodeStatus(node.kind, "running"), []

    # ---------------------------------------------------------------------------------------------- actions

    def restart(self, lab: str, name: str) -> bool:
        """Restart the running node in place (netops.actions); False: it has no such restart, so it is stopped
        and started again (rebuilt from the deployed document)."""
        return False

    # ---------------------------------------------------------------------------------------------- capture

    def capture_point(self, lab: str, node: Node, iface: str) -> tuple[str, str] | None:
        """(namespace, interface) where tcpdump sees `node:iface`, or None."""
        return None

    # ---------------------------------------------------------------------------------------------- containerlab

    def clab_node(self, node: Node, image: str, labels: dict[str, str], warn: Any) -> dict[str, Any] | None:
        """The containerlab node of `node` (None: it is no containerlab node, its links end on the host); may add
        topolab.* `labels` (without the prefix) and call `warn(path, message)`."""
        return None

    def clab_endpoint(self, node: Node, port: str) -> tuple[str, dict[str, str]]:
        """The containerlab endpoint of a link ending on this bare-name node at `port`, and link labels."""
        return f"{node.name}:{port}", {}

    def clab_import_endpoint(self, port: str, label: dict[str, Any], path: str,
                             warnings: list[Any]) -> tuple[str, dict[str, Any]]:
        """(name, document) of the node a `host:<port>` endpoint becomes (kinds with clab_host_endpoint)."""
        raise NotImplementedError

    def clab_exec(self, node: Node) -> list[str]:
        """Exec lines this kind adds after the interface lines (router: forwarding)."""
        return []

    def clab_claims(self, clab_kind: object, labels: dict[str, Any], forwarding: bool) -> bool:
        """Whether a containerlab node of `clab_kind` (with its topolab.* labels) is imported as this kind."""
        return False

    def clab_import(self, label: dict[str, Any]) -> dict[str, Any]:
        """The kind's keys of an imported node, from its topolab.* labels."""
        return {}

    # ---------------------------------------------------------------------------------------------- quotas

    #: memory a running node of this kind holds, in MiB, for placing it on a lab host (netops.placement)
    footprint: ClassVar[int] = 0

    def footprint_mib(self, node: Node) -> int:
        """What placement counts for the node on its host (a VM adds the memory its guest is given)."""
        return self.footprint

    def cost(self, node: dict[str, Any], memory_of_image: dict[Any, Any], default_memory: int) -> dict[str, int]:
        """What a running node of this kind costs, as counts of quota resources (`vms`, `vm_memory`); `node`
        is its (unvalidated) document."""
        return {}

    # ---------------------------------------------------------------------------------------------- public

    def public(self) -> dict[str, Any]:
        """What the web tier serves about the kind (GET /api/kinds/)."""
        return {
            "name": self.name, "label": self.label, "help": self.help, "prefix": self.prefix,
            "palette": self.palette, "icon": self.icon or f"img/nodes/{self.name}.svg", "keys": list(self.keys),
            "sections": list(self.sections), "interface_keys": list(self.interface_keys),
            "settings": [asdict(s) for s in self.settings], "interfaces": self.interfaces, "namespace": self.namespace,
            "console": self.console, "capture": self.capture, "link_end": self.link_end,
            "serves_dhcp": self.serves_dhcp, "masquerade": self.masquerade, "forwarding": self.forwarding,
            "uplink": self.uplink, "stoppable": self.stoppable,
        }


class NamespaceKind(Kind):
    """A node with a network namespace of its own and interfaces inside it (host, router)."""

    keys: ClassVar[tuple[str, ...]] = ("kind", "description", "host", "interfaces", "routes", "limits", "ui")
    sections: ClassVar[tuple[str, ...]] = ("interfaces", "routes")
    interface_keys: ClassVar[tuple[str, ...]] = ("address",)
    interfaces = True
    namespace = True
    console = "shell"
    capture = True
    link_end = "ns"
    stoppable = True
    footprint = 16  # a namespace, its shell and dnsmasq or a DHCP client

    def check(self, checker: Checker, name: str, data: dict[str, Any], path: str) -> dict[str, Any]:
        return {**checker.interfaces_and_routes(name, self, data, path), **self.check_settings(checker, data, path)}

    def document(self, node: Node) -> dict[str, Any]:
        return {**settings_document(self, node), **interfaces_document(node)}

    def steps(self, ctx: PlanContext, node: Node) -> list[Step]:
        n = node.name
        if n not in ctx.fresh_nodes:
            return []
        return [Step("namespace.create", f"nodes.{n}", n, "create namespace",
                     {"namespace": ctx.ns_of[n], "tag": naming.tag(ctx.lab, "ns", n), "ipv6": uses_ipv6(node)})]

    def status(self, ctx: ObserveContext, name: str, node: Node) -> tuple[NodeStatus, list[str]]:
        from .. import dnsmasq

        path = f"nodes.{name}"
        drift: list[str] = []
        ns = ctx.inv.namespaces.get(naming.node_namespace(ctx.lab, name))
        if ns is None:
            return NodeStatus(node.kind, "absent"), [f"{path}: namespace missing"]
        stopped = False
        ifaces = {}
        for iname, iface in node.interfaces.items():
            if (name, iname) not in ctx.connected:
                continue
            ipath = f"{path}.interfaces.{iname}"
            link = ns.links.get(iname)
            if link is None:
                drift.append(f"{ipath}: interface missing")
                continue
            ifaces[iname] = iface_dict(link)
            if not link.up and (name, iname) not in ctx.down_ifaces:
                stopped = True
                drift.append(f"{ipath}: interface down")
            for addr in iface.addresses:
                if str(addr) not in link.addresses:
                    drift.append(f"{ipath}: address {addr} missing")
            if iface.mac and link.mac != iface.mac:
                drift.append(f"{ipath}: mac is {link.mac}, expected {iface.mac}")
            if iface.mtu and link.mtu != iface.mtu:
                drift.append(f"{ipath}: mtu is {link.mtu}, expected {iface.mtu}")
            if iface.dhcp:
                if f"udhcpc:{name}:{iname}" not in ctx.inv.processes:
                    stopped = True
                    drift.append(f"{ipath}: DHCP client not running")
                if not any(a.count(".") == 3 for a in link.dynamic_addresses + link.addresses):
                    drift.append(f"{ipath}: no DHCP address")
            if iface.dhcp_server and f"dnsmasq:{name}:{iname}" not in ctx.inv.processes:
                stopped = True
                drift.append(f"{ipath}: DHCP server not running")
        off = {i for i in node.interfaces if (name, i) not in ctx.connected or (name, i) in ctx.down_ifaces}
        for r in routes_in_use(node, off):
            if (str(r.to), str(r.via)) not in ns.routes:
                drift.append(f"{path}.routes: route to {r.to} via {r.via} missing")
        if self.forwarding and not ns.forwarding:
            drift.append(f"{path}: forwarding is off")
        state = "stopped" if stopped else ("degraded" if drift else "running")
        result = NodeStatus(node.kind, state, ifaces)
        if any(i.dhcp_server for i in node.interfaces.values()):
            result.leases = [
                {"mac": le.mac, "ip": str(le.ip), "hostname": le.hostname, "expires": le.expiry}
                for iname, i in node.interfaces.items() if i.dhcp_server
                for le in dnsmasq.leases(ctx.lab, name, iname)]
        return result, drift

    def capture_point(self, lab: str, node: Node, iface: str) -> tuple[str, str] | None:
        return naming.node_namespace(lab, node.name), iface

    def clab_node(self, node: Node, image: str, labels: dict[str, str], warn: Any) -> dict[str, Any] | None:
        return {"kind": "linux", "image": image, "network-mode": "none"}

    def clab_claims(self, clab_kind: object, labels: dict[str, Any], forwarding: bool) -> bool:
        return clab_kind == "linux" and forwarding == self.forwarding


class SegmentKind(Kind):
    """A node realised as a bridge in the lab's fabric namespace, linked by its bare name (bridge, external)."""

    link_end = "segment"
    # A Linux bridge has at most 1023 ports (BR_MAX_PORTS); an uplink's bridge needs one more for the host side,
    # and a deploy past the limit failed deep in the kernel ("create veth ...: Exchange full"). A switch built as
    # a tree of bridges would lift this (issue 13); until then the checker refuses it at the switch's path.
    max_links = 1000
    max_links_reason = ("one switch is one Linux bridge in the lab's fabric, which takes at most 1023 ports; "
                        "split its links over two switches joined by a link")

    def fabric_links(self, lab: str, node: Node, topology: Topology | None = None) -> set[str]:
        names = {naming.bridge_ifname(node.name)}
        for leaf in range(self.leaves(topology, node)):
            names |= {naming.switch_leaf_ifname(node.name, leaf), *naming.switch_trunk_ifnames(node.name, leaf)}
        return names

    def leaves(self, topology: Topology | None, node: Node) -> int:
        """How many leaf bridges the switch is built with (0: one bridge)."""
        if topology is None or not self.tree_of_bridges:
            return 0
        count = topology.port_count(node.name)
        return 0 if count <= naming.SWITCH_PORTS else -(-count // naming.SWITCH_PORTS)

    def steps(self, ctx: PlanContext, node: Node) -> list[Step]:
        n = node.name
        tag = naming.tag(ctx.lab, "bridge", n)
        out = []
        if naming.bridge_ifname(n) not in ctx.present_fabric:
            out.append(Step("bridge.create", f"nodes.{n}", n, "create bridge",
                            {"ifname": naming.bridge_ifname(n), "tag": tag,
                             "multicast_snooping": node.multicast_snooping}))
        for leaf in range(self.leaves(ctx.topology, node)):  # a switch past one bridge's ports: a tree
            name = naming.switch_leaf_ifname(n, leaf)
            if name not in ctx.present_fabric:
                out.append(Step("bridge.create", f"nodes.{n}", n, f"create leaf bridge {leaf + 1}",
                                {"ifname": name, "tag": tag, "multicast_snooping": node.multicast_snooping}))
            up, down = naming.switch_trunk_ifnames(n, leaf)
            if out or up not in ctx.present_fabric or down not in ctx.present_fabric:
                out.append(Step("bridge.trunk", f"nodes.{n}", n, f"join leaf bridge {leaf + 1} to the switch",
                                {"root": naming.bridge_ifname(n), "leaf": name, "up_if": up, "down_if": down,
                                 "tag": tag}))
        return out

    def apply_trunk(self, ap: Any, step: Step) -> None:
        """A veth from a leaf bridge to the switch's root bridge (made again if one end is left over)."""
        p = step.params
        leaf = ap.bridge_index(p["leaf"], step.path)
        root = ap.bridge_index(p["root"], step.path)
        ap.fresh_veth(ap.fabric, p["up_if"], ap.fabric, p["down_if"], master=leaf)
        ap.set_links(ap.fabric, [{"name": p["up_if"], "alias": p["tag"]},
                                 {"name": p["down_if"], "up": True, "master": root, "alias": p["tag"]}])

    def status(self, ctx: ObserveContext, name: str, node: Node) -> tuple[NodeStatus, list[str]]:
        drift = self.drift(ctx, name, node)
        state = "absent" if ctx.fabric is None else ("degraded" if drift else "running")
        return NodeStatus(node.kind, state), drift

    def drift(self, ctx: ObserveContext, name: str, node: Node) -> list[str]:
        if ctx.fabric is not None and naming.bridge_ifname(name) in ctx.fabric.links:
            return []
        return [f"nodes.{name}: bridge missing"]


def node_of(step: Step) -> str:
    """The node a kind's step is about (every step a kind plans names its node)."""
    assert step.node is not None, step
    return step.node


def routes_in_use(node: Node, off: set[str]) -> list[Route]:
    """The node's routes but those whose gateway is reached only through interfaces in `off` (unplugged: their
    link ends on a stopped node, or held down by a downed link): the kernel has no such route then, nor can one
    be added; they come back with the link (netops.actions)."""
    if not off:
        return list(node.routes)
    live = [a.network for n, i in node.interfaces.items() if n not in off for a in i.addresses]
    dead = [a.network for n, i in node.interfaces.items() if n in off for a in i.addresses]
    return [r for r in node.routes
            if any(r.via in net for net in live) or not any(r.via in net for net in dead)]


def uses_ipv6(node: Node) -> bool:
    """Whether a node's definition mentions IPv6 (addresses or routes); if not, IPv6 stays off in its namespace."""
    return any(a.version == 6 for i in node.interfaces.values() for a in i.addresses) or any(
        r.to.version == 6 for r in node.routes) or (node.routing is not None and node.routing.needs_ipv6)


def settings_document(kind: Kind, node: Node) -> dict[str, Any]:
    """The node's plain settings (netops.kinds `Kind.settings`), in the order of the kind's keys."""
    return {key: node.settings[key] for key in kind.keys if key in node.settings}


def interfaces_document(node: Node) -> dict[str, Any]:
    """`interfaces` and `routes` of a node with interfaces, as the normalised document writes them."""
    from ..writer import interface_document

    doc: dict[str, Any] = {"interfaces": {name: interface_document(i) for name, i in node.interfaces.items()}}
    if node.routes:
        doc["routes"] = [
            {"to": "default" if r.to.prefixlen == 0 else str(r.to), "via": str(r.via)} for r in node.routes
        ]
    return doc
