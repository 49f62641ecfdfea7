"""netops.vxlan, the pure part: which tunnels a deploy (re)makes (the kernel side: tests/kernel/test_vxlan.py)."""
from __future__ import annotations

import ipaddress

from netops import naming, vxlan
from netops import span as sp
from netops.inventory import Inventory, LinkState, NamespaceState, Step
from netops.kernel import netlink as nl
from netops.topology import parse_document

DOC = {
    "version": 1, "name": "across",
    "nodes": {"sw": {"kind": "bridge"},
              "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}}},
              "h2": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.2/24"}}}},
    "links": [{"endpoints": ["h1:eth0", "sw"]}, {"endpoints": ["h2:eth0", "sw"]}],
}
SPAN = sp.Span("a", {"h1": "a", "h2": "b"}, {"a": "198.51.100.1", "b": "198.51.100.2"}, {"sw": 77})


def _inventory(alias: str | None, master: str | None = None, up: bool = True) -> Inventory:
    inv = Inventory("lab1")
    tunnel = sp.tunnels(parse_document(DOC), SPAN)[0]
    tbr, inner, outer = vxlan.names(tunnel)
    fabric = NamespaceState(naming.fabric_namespace("lab1"))
    fabric.links[outer] = LinkState(outer, "veth", True, alias=vxlan.port_tag("lab1", tunnel),
                                    master=master or vxlan.bridge_of(tunnel))
    tunnels = NamespaceState(naming.tunnel_namespace("lab1"))
    tunnels.links[tunnel.ifname] = LinkState(tunnel.ifname, "vxlan", up, alias=alias, master=tbr)
    tunnels.links[inner] = LinkState(inner, "veth", True, master=tbr)
    inv.namespaces[fabric.name] = fabric
    inv.namespaces[tunnels.name] = tunnels
    return inv


def test_a_missing_tunnel_is_planned_with_what_reaches_the_kernel():
    tunnels = sp.tunnels(parse_document(DOC), SPAN)
    [step] = vxlan.steps(Inventory("lab1"), "lab1", tunnels, SPAN, [])
    assert step.action == "tunnel.create" and step.path == "nodes.sw"
    p = step.params
    assert (p["vni"], p["local"], p["remotes"], p["mtu"], p["underlay"]) == (77, "198.51.100.1", ["198.51.100.2"],
                                                                              1450, None)
    assert p["bridge"] == naming.bridge_ifname("sw") and p["alias"].startswith("topolab:lab1:vxlan:77:")
    assert p["namespace"] == "tl-lab1-_tunnels" and p["namespace_tag"] == "topolab:lab1:ns:_tunnels"


def test_a_tunnel_as_wanted_is_left_alone_and_one_made_for_another_span_is_made_again():
    tunnels = sp.tunnels(parse_document(DOC), SPAN)
    good = vxlan.alias("lab1", tunnels[0], SPAN)
    assert vxlan.steps(_inventory(good), "lab1", tunnels, SPAN, []) == []
    assert len(vxlan.steps(_inventory(None), "lab1", tunnels, SPAN, [])) == 1  # half-made: no alias yet
    assert len(vxlan.steps(_inventory(good, up=False), "lab1", tunnels, SPAN, [])) == 1
    assert len(vxlan.steps(_inventory(good, master="bother"), "lab1", tunnels, SPAN, [])) == 1
    jumbo = sp.Span(SPAN.local, SPAN.placement, SPAN.underlays, SPAN.vnis, mtu=8950)
    assert len(vxlan.steps(_inventory(good), "lab1", sp.tunnels(parse_document(DOC), jumbo), jumbo, [])) == 1
    # the tunnel namespace or the fabric made again by this deploy, or the tunnel's port lost: made again
    for gone in ("tl-lab1-_tunnels", "tl-lab1"):
        remove = [Step("remove.namespace", "fabric", None, "", {"namespace": gone})]
        assert len(vxlan.steps(_inventory(good), "lab1", tunnels, SPAN, remove)) == 1
    inv = _inventory(good)
    del inv.namespaces["tl-lab1"].links[vxlan.names(tunnels[0])[2]]
    assert len(vxlan.steps(inv, "lab1", tunnels, SPAN, [])) == 1
    # its bridge made again by this deploy: enslaved again
    remade = [Step("bridge.create", "nodes.sw", "sw", "", {"ifname": naming.bridge_ifname("sw")})]
    assert len(vxlan.steps(_inventory(good), "lab1", tunnels, SPAN, remade)) == 1


def test_the_vxlan_and_flood_list_requests_are_pyroute2s_encoding():
    req = nl.link_add_vxlan("x1", vni=77, local=ipaddress.IPv4Address("198.51.100.1"), port=4789, mtu=1450, ns_fd=3)
    assert b"vxlan" in req.data and (4789).to_bytes(2, "big") in req.data
    fdb = nl.fdb_append(5, ipaddress.IPv4Address("198.51.100.2"))
    assert bytes(ipaddress.IPv4Address("198.51.100.2").packed) in fdb.data and bytes(6) in fdb.data
