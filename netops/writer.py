"""Write topology documents: the normalised document of a validated topology, and YAML text of it.

    to_document(topology) -> dict     canonical values, fixed key order, `ui` kept (also Topology.document)
    dump_yaml(topology_or_document) -> str

The normalised document has a fixed key order (each kind writes its own keys, netops.kinds), so
parse -> dump -> parse -> dump gives identical text.
"""
from __future__ import annotations

import copy
from typing import Any

import yaml

from . import kinds, units
from . import limits as cell_limits
from .check_iface import DEFAULT_LEASE_S
from .model import Interface, Link, Node, Topology
from .yamlsafe import IMPLICIT_RESOLVERS


def to_document(topology: Topology) -> dict[str, Any]:
    """The normalised document of a validated topology: canonical values, fixed key order, `ui` kept."""
    doc: dict[str, Any] = {"version": topology.version, "name": topology.name}
    if topology.description is not None:
        doc["description"] = topology.description
    doc["nodes"] = {name: _node_document(node) for name, node in topology.nodes.items()}
    doc["links"] = [_link_document(link) for link in topology.links]
    if topology.checks:
        from .labchecks import to_document as checks_document  # labchecks imports the checker's helpers
        doc["checks"] = checks_document(topology.checks)
    if topology.ui is not None:
        doc["ui"] = copy.deepcopy(topology.ui)
    return doc


def _node_document(node: Node) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": node.kind}
    if node.description is not None:
        doc["description"] = node.description
    if node.host is not None:
        doc["host"] = node.host
    doc.update(kinds.get(node.kind).document(node))
    if node.limits is not None:
        doc["limits"] = cell_limits.limits_document(node.limits)
    if node.ui is not None:
        doc["ui"] = copy.deepcopy(node.ui)
    return doc


def interface_document(iface: Interface) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if iface.dhcp:
        doc["address"] = "dhcp"
    elif len(iface.addresses) == 1:
        doc["address"] = str(iface.addresses[0])
    elif iface.addresses:
        doc["address"] = [str(a) for a in iface.addresses]
    if iface.mac is not None:
        doc["mac"] = iface.mac
    if iface.mtu is not None:
        doc["mtu"] = iface.mtu
    if iface.dhcp_server is not None:
        server = iface.dhcp_server
        sd: dict[str, Any] = {"range": f"{server.start}-{server.end}"}
        if server.lease_time != DEFAULT_LEASE_S:
            sd["lease_time"] = server.lease_time
        if server.gateway is not None:
            sd["gateway"] = str(server.gateway)
        if server.dns:
            sd["dns"] = [str(d) for d in server.dns]
        doc["dhcp_server"] = sd
    return doc


def _link_document(link: Link) -> dict[str, Any]:
    doc: dict[str, Any] = {"endpoints": [str(link.a), str(link.b)]}
    c = link.conditions
    if c.delay_ms is not None:
        doc["delay"] = units.format_duration(c.delay_ms)
    if c.jitter_ms is not None:
        doc["jitter"] = units.format_duration(c.jitter_ms)
    if c.loss_pct is not None:
        doc["loss"] = units.format_loss(c.loss_pct)
    if c.rate_bps is not None:
        doc["rate"] = units.format_rate(c.rate_bps)
    if link.ui is not None:
        doc["ui"] = copy.deepcopy(link.ui)
    return doc


class _Dumper(yaml.SafeDumper):
    """Block style, except that short collections holding only scalars are written inline (`[r1:eth0, br-in]`)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _leaf(value: Any) -> bool:
    return not isinstance(value, (dict, list, tuple))


def _inline(items: list[Any]) -> bool:
    """Write a collection inline when it holds only scalars and stays short (so lines never wrap)."""
    return all(_leaf(v) for v in items) and sum(len(str(v)) + 2 for v in items) <= 80


def _represent_dict(dumper: yaml.SafeDumper, data: dict[Any, Any]) -> yaml.Node:
    flow = _inline([*data.keys(), *data.values()])
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=_inline(data))


# A string is written quoted when PyYAML's YAML 1.1 rules or our loader's (netops.yamlsafe, where `1e5` is a
# number) would read it as something else: what is written reads back as itself.
_Dumper.yaml_implicit_resolvers = {
    first: list(yaml.SafeDumper.yaml_implicit_resolvers.get(first, [])) + list(IMPLICIT_RESOLVERS.get(first, []))
    for first in set(yaml.SafeDumper.yaml_implicit_resolvers) | set(IMPLICIT_RESOLVERS)
}
_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(list, _represent_list)


def dump_yaml(topology_or_document: Topology | dict[str, Any]) -> str:
    """YAML text of a topology (its normalised document) or of a document mapping, in the mapping's key order."""
    doc = to_document(topology_or_document) if isinstance(topology_or_document, Topology) else topology_or_document
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
