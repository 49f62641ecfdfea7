"""Import from and export to containerlab topology files (`*.clab.yml`). Pure: text and dicts in and out.

    to_containerlab(topology, image=DEFAULT_IMAGE) -> (yaml_text, warnings)
    from_containerlab(text) -> (topolab_document_dict, warnings)

Mapping (Topolab <-> containerlab):

    Topolab                         containerlab
    ------------------------------  -------------------------------------------------------------------------
    name                            name
    host                            kind: linux, image, network-mode: none (so eth0 is free for the lab), exec
    router                          same as host, exec also `sysctl -w net.ipv4.ip_forward=1` (the import
                                    also takes `sysctls: {net.ipv4.ip_forward: 1}` as a router)
    vm                              kind: linux + labels topolab.kind=vm, topolab.image, topolab.memory,
                                    topolab.cpus (containerlab runs it as a container; warned)
    bridge                          kind: bridge (a Linux bridge containerlab expects on the host; warned)
    external                        no node: each of its links gets a `host:<port>` endpoint (a veth in the
                                    host namespace) and labels topolab.external=<name> plus topolab.bridge or
                                    topolab.nat/topolab.address
    node description                label topolab.description
    address (static)                exec `ip addr add <cidr> dev <if>`
    address: dhcp                   exec `udhcpc -b -i <if>`
    mac, mtu                        exec `ip link set dev <if> address <mac>` / `... mtu <n>`
    routes                          exec `ip route add <to|default> via <ip>` (`ip -6 route ...` for IPv6)
    nat.masquerade                  exec `iptables -t nat -A POSTROUTING -o <if> -j MASQUERADE`
    dhcp_server                     exec `dnsmasq --port=0 --bind-interfaces --interface=<if>
                                    --dhcp-range=<start>,<end>,<lease> [--dhcp-option=3,<gw>] [--dhcp-option=6,..]`
    link endpoint bridge            `<bridge>:<bridge>-<n>` (containerlab needs a port name; n counts the
                                    bridge's links from 1; hashed when longer than 15 bytes)
    link delay/jitter/loss/rate     link labels topolab.delay, ... (containerlab does not apply them; warned)
    ui, top-level description       not exported (warned)
    checks                          not exported (warned)

Import is the inverse. Exec lines it does not understand, node keys other than those above (binds, env, ports...),
images other than the default, and nodes of other kinds (and their links) are reported as warnings and skipped;
a `host:` endpoint without topolab labels becomes an external that still needs `bridge` or `nat` (warned).
The exec lines assume the image has iproute2, udhcpc, iptables and dnsmasq where they are used (warned).

Round trips: Topolab -> containerlab -> Topolab keeps every node and link (and all their settings); a containerlab
file in the shape this module writes -> import -> export gives identical text.
"""
from __future__ import annotations

import hashlib
import re
import shlex
from typing import Any

from . import kinds
from .errors import Problem
from .kinds import Kind
from .model import Node, Topology
from .topology import dump_yaml as _dump
from .topology import ifname_problem, load_yaml, to_document

DEFAULT_IMAGE = "alpine:3.20"
LABEL = "topolab."
_CONDITIONS = ("delay", "jitter", "loss", "rate")
_LABEL_ORDER = (*kinds.clab_host_kind().clab_labels, *_CONDITIONS)  # link labels, in the order they are written
_NODE_LABEL_ORDER = ("kind", "image", "memory", "cpus", "description")
_KNOWN_NODE_KEYS = {"kind", "image", "network-mode", "exec", "labels", "sysctls"}
CLAB_HOST = "host"  # containerlab's name for the host namespace in an endpoint (`host:<port>`)


# --------------------------------------------------------------------------------------------------- export


def to_containerlab(topology: Topology, *, image: str = DEFAULT_IMAGE) -> tuple[str, list[Problem]]:
    """containerlab YAML for a validated topology, and warnings for what containerlab cannot carry."""
    warnings: list[Problem] = []
    doc = to_document(topology)
    if topology.description:
        warnings.append(Problem("description", "not exported: containerlab files have no description"))
    if doc.get("ui") is not None or any(n.ui for n in topology.nodes.values()) or any(lk.ui for lk in topology.links):
        warnings.append(Problem("ui", "the canvas layout (ui) is not exported"))
    if topology.checks:
        warnings.append(Problem("checks", "not exported: containerlab has no lab checks (netlab's validate: and "
                                          "`python -m netops check` do)"))
    if not re.match(r"^[A-Za-z0-9_.-]+$", topology.name):
        warnings.append(Problem("name", f"{topology.name!r} has characters containerlab may refuse in a lab name"))

    nodes: dict[str, Any] = {}
    tools: set[str] = set()
    def warn(path: str, message: str) -> None:
        warnings.append(Problem(path, message))

    for node in topology.nodes.values():
        kind = kinds.get(node.kind)
        labels: dict[str, str] = {}
        entry = kind.clab_node(node, image, labels, warn)
        if entry is None:
            continue
        if not kind.interfaces:
            nodes[node.name] = entry
            continue
        exec_lines = _exec_lines(node, kind, tools)
        if node.description is not None:
            labels["description"] = node.description
        if labels:
            entry["labels"] = {LABEL + k: labels[k] for k in _NODE_LABEL_ORDER if k in labels}
        if exec_lines:
            entry["exec"] = exec_lines
        nodes[node.name] = entry
    if tools:
        warnings.append(Problem("", f"the exec lines need {', '.join(sorted(tools))} in the image {image!r}"))

    links: list[dict[str, Any]] = []
    ports: dict[str, int] = {}
    conditioned = False
    for link in topology.links:
        labels = {}
        endpoints = []
        for ep in (link.a, link.b):
            node = topology.nodes[ep.node]
            kind = kinds.get(node.kind)
            if kind.interfaces:
                endpoints.append(f"{ep.node}:{ep.interface}")
                continue
            ports[ep.node] = ports.get(ep.node, 0) + 1
            text, extra = kind.clab_endpoint(node, _port_name(ep.node, ports[ep.node]))
            endpoints.append(text)
            labels.update(extra)
        link_entry: dict[str, Any] = {"endpoints": endpoints}
        for key in _CONDITIONS:
            value = doc["links"][link.index].get(key)
            if value is not None:
                labels[key] = str(value)
                conditioned = True
        if labels:
            link_entry["labels"] = {LABEL + k: labels[k] for k in _LABEL_ORDER if k in labels}
        links.append(link_entry)
    if conditioned:
        warnings.append(Problem("links", "link conditions are kept as labels; containerlab does not apply them (see `containerlab tools netem`)"))
    clab = {"name": topology.name, "topology": {"nodes": nodes, "links": links}}
    return _dump(clab), warnings


def _exec_lines(node: Node, kind: Kind, tools: set[str]) -> list[str]:
    lines: list[str] = []
    for name, iface in node.interfaces.items():
        if iface.mac:
            lines.append(f"ip link set dev {name} address {iface.mac}")
        if iface.mtu:
            lines.append(f"ip link set dev {name} mtu {iface.mtu}")
        for address in iface.addresses:
            lines.append(f"ip addr add {address} dev {name}")
        if iface.dhcp:
            tools.add("udhcpc")
            lines.append(f"udhcpc -b -i {name}")
    lines += kind.clab_exec(node)
    for route in node.routes:
        to = "default" if route.to.prefixlen == 0 else str(route.to)
        family = "-6 " if route.via.version == 6 else ""
        lines.append(f"ip {family}route add {to} via {route.via}")
    if node.nat:
        tools.add("iptables")
        lines += [f"iptables -t nat -A POSTROUTING -o {name} -j MASQUERADE" for name in node.nat.masquerade]
    for name, iface in node.interfaces.items():
        server = iface.dhcp_server
        if server is None:
            continue
        tools.add("dnsmasq")
        argv = ["dnsmasq", "--port=0", "--bind-interfaces", f"--interface={name}",
                f"--dhcp-range={server.start},{server.end},{server.lease_time}"]
        if server.gateway:
            argv.append(f"--dhcp-option=3,{server.gateway}")
        if server.dns:
            argv.append("--dhcp-option=6," + ",".join(str(d) for d in server.dns))
        lines.append(" ".join(argv))
    return lines


def _port_name(node: str, n: int) -> str:
    """A host-side port name for a bridge's or an external's n-th link, at most 15 bytes."""
    name = f"{node}-{n}"
    if len(name.encode()) <= 15 and ifname_problem(name) is None:
        return name
    return "p" + hashlib.sha256(node.encode()).hexdigest()[:8] + f"-{n}"


# --------------------------------------------------------------------------------------------------- import

_RE_ADDR = re.compile(r"^ip (?:-6 )?addr add (\S+) dev (\S+)$")
_RE_MAC = re.compile(r"^ip link set dev (\S+) address (\S+)$")
_RE_MTU = re.compile(r"^ip link set dev (\S+) mtu (\d+)$")
_RE_ROUTE = re.compile(r"^ip (?:-6 )?route add (\S+) via (\S+)$")
_RE_DHCP = re.compile(r"^udhcpc (?:-b )?-i (\S+)$")
_RE_NAT = re.compile(r"^iptables -t nat -A POSTROUTING -o (\S+) -j MASQUERADE$")
_FORWARDING = ("sysctl -w net.ipv4.ip_forward=1", "sysctl -w net.ipv6.conf.all.forwarding=1")


def from_containerlab(text: str | bytes) -> tuple[dict[str, Any], list[Problem]]:
    """A Topolab document (a dict, not yet validated) from containerlab YAML, and warnings for what was skipped.

    Warning paths are paths in the containerlab file (`topology.nodes.r1.exec.3`)."""
    data, problems = load_yaml(text)
    if problems:
        return {}, problems
    warnings: list[Problem] = []
    if not isinstance(data, dict) or not isinstance(data.get("topology"), dict):
        return {}, [Problem("topology", "not a containerlab file: no topology mapping")]
    for key in data:
        if key not in ("name", "topology"):
            warnings.append(Problem(str(key), "not imported"))
    topo = data["topology"]
    for key in topo:
        if key not in ("nodes", "links"):
            warnings.append(Problem(f"topology.{key}", "not imported"))
    raw_nodes = topo.get("nodes") or {}
    raw_links = topo.get("links") or []
    if not isinstance(raw_nodes, dict) or not isinstance(raw_links, list):
        return {}, [Problem("topology", "nodes must be a mapping and links a list")]

    nodes: dict[str, dict[str, Any]] = {}
    for name, raw in raw_nodes.items():
        node = _import_node(str(name), raw, warnings)
        if node is not None:
            nodes[str(name)] = node
    links: list[dict[str, Any]] = []
    externals: dict[str, dict[str, Any]] = {}
    for index, raw in enumerate(raw_links):
        link = _import_link(index, raw, nodes, externals, warnings)
        if link is not None:
            links.append(link)
    nodes.update(externals)
    name = data.get("name")
    document = {"version": 1, "name": name if isinstance(name, str) else "imported", "nodes": nodes, "links": links}
    return document, warnings


def _import_node(name: str, raw: object, warnings: list[Problem]) -> dict[str, Any] | None:
    path = f"topology.nodes.{name}"
    if not isinstance(raw, dict):
        warnings.append(Problem(path, "not a mapping; skipped"))
        return None
    clab_kind = raw.get("kind")
    if clab_kind != "linux":
        segment = kinds.clab_kind_for(clab_kind, {}, False)
        if segment is None:
            warnings.append(
                Problem(f"{path}.kind", f"{clab_kind!r} nodes have no Topolab equivalent; skipped with their links"))
            return None
        for key in raw:
            if key != "kind":
                warnings.append(Problem(f"{path}.{key}", "not imported"))
        return {"kind": segment.name}
    for key in raw:
        if key not in _KNOWN_NODE_KEYS:
            warnings.append(Problem(f"{path}.{key}", "not imported"))
    if raw.get("image", DEFAULT_IMAGE) != DEFAULT_IMAGE:
        warnings.append(Problem(f"{path}.image", f"{raw.get('image')!r} is not kept (Topolab nodes are namespaces)"))
    labels = _mapping(raw.get("labels"))
    for key in labels:
        if not str(key).startswith(LABEL) or str(key)[len(LABEL):] not in _NODE_LABEL_ORDER:
            warnings.append(Problem(f"{path}.labels.{key}", "not imported"))
    label = {str(k)[len(LABEL):]: v for k, v in labels.items() if str(k).startswith(LABEL)}
    sysctls = _mapping(raw.get("sysctls"))
    router = str(sysctls.get("net.ipv4.ip_forward", "0")) == "1"
    for key in sysctls:
        if key != "net.ipv4.ip_forward":
            warnings.append(Problem(f"{path}.sysctls.{key}", "not imported"))

    interfaces: dict[str, dict[str, Any]] = {}
    routes: list[dict[str, str]] = []
    masquerade: list[str] = []
    exec_lines: list[Any] = raw["exec"] if isinstance(raw.get("exec"), list) else []
    if raw.get("exec") is not None and not isinstance(raw.get("exec"), list):
        warnings.append(Problem(f"{path}.exec", "not a list; not imported"))
    for i, line in enumerate(exec_lines):
        line = " ".join(str(line).split())

        def iface(name: str) -> dict[str, Any]:
            return interfaces.setdefault(name, {})

        if m := _RE_ADDR.match(line):
            current = iface(m.group(2)).get("address")
            iface(m.group(2))["address"] = m.group(1) if current is None else _as_list(current) + [m.group(1)]
        elif m := _RE_MAC.match(line):
            iface(m.group(1))["mac"] = m.group(2)
        elif m := _RE_MTU.match(line):
            iface(m.group(1))["mtu"] = int(m.group(2))
        elif m := _RE_DHCP.match(line):
            iface(m.group(1))["address"] = "dhcp"
        elif m := _RE_ROUTE.match(line):
            routes.append({"to": m.group(1), "via": m.group(2)})
        elif m := _RE_NAT.match(line):
            masquerade.append(m.group(1))
        elif line in _FORWARDING:
            router = True
        elif line.startswith("dnsmasq ") and (server := _parse_dnsmasq(line)) is not None:
            if_name, settings = server
            iface(if_name)["dhcp_server"] = settings
        else:
            warnings.append(Problem(f"{path}.exec.{i}", f"{line!r} is not understood; not imported"))

    kind = kinds.clab_kind_for(clab_kind, label, router)
    assert kind is not None  # a linux node is always a host or a router
    node: dict[str, Any] = {"kind": kind.name}
    if "description" in label:
        node["description"] = str(label["description"])
    node.update(kind.clab_import(label))
    node["interfaces"] = interfaces
    if routes:
        node["routes"] = routes
    if masquerade:
        if kind.masquerade:
            node["nat"] = {"masquerade": masquerade}
        else:
            warnings.append(Problem(f"{path}.exec", "masquerade on a node without forwarding is not imported"))
    return node


def _mapping(value: object) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _parse_dnsmasq(line: str) -> tuple[str, dict[str, Any]] | None:
    """The interface and dhcp_server settings of a dnsmasq line this module wrote, or None."""
    interface: str | None = None
    settings: dict[str, Any] = {}
    for arg in shlex.split(line)[1:]:
        key, _, value = arg.partition("=")
        if key in ("--port", "--bind-interfaces") and value in ("0", ""):
            continue
        if key == "--interface":
            interface = value
        elif key == "--dhcp-range" and len(parts := value.split(",")) in (2, 3):
            settings["range"] = f"{parts[0]}-{parts[1]}"
            if len(parts) == 3 and parts[2] != "3600":
                settings["lease_time"] = int(parts[2]) if parts[2].isdigit() else parts[2]
        elif key == "--dhcp-option" and value.startswith("3,"):
            settings["gateway"] = value[2:]
        elif key == "--dhcp-option" and value.startswith("6,"):
            settings["dns"] = value[2:].split(",")
        else:
            return None
    if interface is None or "range" not in settings:
        return None
    return interface, settings


def _import_link(
    index: int, raw: object, nodes: dict[str, dict[str, Any]], externals: dict[str, dict[str, Any]],
    warnings: list[Problem],
) -> dict[str, Any] | None:
    path = f"topology.links.{index}"
    if not isinstance(raw, dict) or not isinstance(raw.get("endpoints"), list) or len(raw["endpoints"]) != 2:
        warnings.append(Problem(path, "only links with two `endpoints` are imported; skipped"))
        return None
    for key in raw:
        if key not in ("endpoints", "labels"):
            warnings.append(Problem(f"{path}.{key}", "not imported"))
    labels = _mapping(raw.get("labels"))
    label = {str(k)[len(LABEL):]: v for k, v in labels.items() if str(k).startswith(LABEL)}
    for key in labels:
        if not str(key).startswith(LABEL) or str(key)[len(LABEL):] not in _LABEL_ORDER:
            warnings.append(Problem(f"{path}.labels.{key}", "not imported"))
    endpoints: list[str] = []
    hosts: list[tuple[str, str]] = []
    for i, text in enumerate(raw["endpoints"]):
        node, sep, iface = str(text).partition(":")
        if node == CLAB_HOST and sep:
            hosts.append((iface, f"{path}.endpoints.{i}"))
            endpoints.append("")  # filled in below, once the whole link is known to be imported
        elif node in nodes:
            endpoints.append(f"{node}:{iface}" if kinds.get(nodes[node]["kind"]).interfaces else node)
        else:
            warnings.append(Problem(f"{path}.endpoints.{i}", f"{text!r} is not an imported node; link skipped"))
            return None
    for i, ep in enumerate(endpoints):
        if not ep:
            port, ep_path = hosts.pop(0)
            endpoints[i] = _import_external(port, label, externals, ep_path, warnings)
        elif ":" in ep:
            node, _, iface = ep.partition(":")
            nodes[node]["interfaces"].setdefault(iface, {})
    link: dict[str, Any] = {"endpoints": endpoints}
    for key in _CONDITIONS:
        if key in label:
            link[key] = label[key]
    return link


def _import_external(
    port: str, label: dict[str, Any], externals: dict[str, dict[str, Any]], path: str, warnings: list[Problem]
) -> str:
    """The node a `host:<port>` endpoint becomes (an external), made once per name."""
    found: list[Problem] = []
    name, node = kinds.clab_host_kind().clab_import_endpoint(port, label, path, found)
    if name not in externals:
        warnings.extend(found)
        externals[name] = node
    return name
