"""parse_document / validate_document: the seed document parses, and every rule yields exactly the expected path."""
from __future__ import annotations

import copy
import ipaddress
import json
from pathlib import Path

import pytest

from netops.errors import TopologyError
from netops.topology import (
    dump_yaml,
    load_file,
    parse_document,
    to_document,
    validate_document,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def seed() -> dict:
    """A fresh copy of the DESIGN.md document as a dict."""
    return copy.deepcopy(load_file(EXAMPLES / "seed-lab.yaml").document)


def minimal() -> dict:
    return {
        "version": 1,
        "name": "mini",
        "nodes": {
            "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.0.1/24"}}},
            "h2": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.0.2/24"}}},
        },
        "links": [{"endpoints": ["h1:eth0", "h2:eth0"]}],
    }


def paths(doc, **kw) -> list[str]:
    return [p.path for p in validate_document(doc, **kw)]


def problems_of(doc, **kw) -> dict[str, str]:
    return {p.path: p.message for p in validate_document(doc, **kw)}


# ---------------------------------------------------------------- valid documents


def test_the_seed_document_of_design_md_parses_into_the_model():
    topo = load_file(EXAMPLES / "seed-lab.yaml")
    assert topo.name == "seed-lab"
    assert list(topo.nodes) == ["r1", "br-in", "h1", "h2", "vm1", "wan"]
    r1 = topo.node("r1")
    assert r1.kind == "router"
    assert r1.interfaces["eth0"].addresses == (ipaddress.ip_interface("10.0.1.254/24"),)
    server = r1.interfaces["eth0"].dhcp_server
    assert (str(server.start), str(server.end), server.lease_time) == ("10.0.1.100", "10.0.1.150", 3600)
    assert r1.routes[0].to == ipaddress.ip_network("0.0.0.0/0")
    assert str(r1.routes[0].via) == "203.0.113.1"
    assert r1.nat.masquerade == ("eth1",)
    assert topo.node("h2").interfaces["eth0"].dhcp is True
    vm = topo.node("vm1")
    assert (vm.image, vm.memory, vm.interfaces["eth0"].mac) == ("tiny", 128, "52:54:00:aa:bb:cc")
    assert topo.node("wan").bridge == "br-ex"
    wan_link = topo.links[4]
    assert (str(wan_link.a), str(wan_link.b)) == ("r1:eth1", "wan")
    assert wan_link.conditions.delay_ms == 20.0
    assert wan_link.conditions.loss_pct == 1.0
    assert wan_link.conditions.rate_bps == 10_000_000
    assert topo.peer_of("h1", "eth0").node == "br-in"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_is_valid(path):
    assert validate_document(path.read_text()) == []


def test_json_text_and_a_dict_parse_like_yaml():
    doc = seed()
    assert parse_document(json.dumps(doc)).document == doc
    assert parse_document(doc).document == doc
    assert parse_document(json.dumps(doc).encode()).document == doc


def test_export_then_import_gives_identical_text():
    text = dump_yaml(load_file(EXAMPLES / "seed-lab.yaml"))
    assert dump_yaml(parse_document(text)) == text
    assert dump_yaml(to_document(parse_document(text))) == text


def test_many_errors_at_once_are_all_reported():
    doc = seed()
    doc["nodes"]["r1"]["interfaces"]["eth0"]["address"] = "10.0.1.300/24"
    doc["nodes"]["vm1"]["memory"] = 1
    doc["links"][4]["delay"] = "soon"
    doc["links"][3]["endpoints"][1] = "nowhere"
    with pytest.raises(TopologyError) as exc:
        parse_document(doc)
    got = {p.path for p in exc.value.problems}
    assert got == {
        "nodes.r1.interfaces.eth0.address",
        "nodes.vm1.memory",
        "links.4.delay",
        "links.3.endpoints.1",
    }
    assert "nodes.r1.interfaces.eth0.address: '10.0.1.300/24' is not an IPv4/IPv6 interface address" in str(exc.value)


# ---------------------------------------------------------------- one rule, one path
# Each case changes the seed document in one way and names exactly the path(s) that must be reported.


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def change(doc):
        target = doc
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


def _delete(*keys):
    def change(doc):
        target = doc
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return change


def _add_node(name, node):
    return _set("nodes", name, node)


def _add_link(link):
    return lambda doc: doc["links"].append(link)


def _h1_iface(key, value):
    return _set("nodes", "h1", "interfaces", "eth0", key, value)


def _r1_eth0(key, value):
    return _set("nodes", "r1", "interfaces", "eth0", key, value)


def _dhcp(key, value):
    return _set("nodes", "r1", "interfaces", "eth0", "dhcp_server", key, value)


H1 = "nodes.h1.interfaces.eth0"
DHCP = "nodes.r1.interfaces.eth0.dhcp_server"

CASES = {
    # top level
    "unknown top-level key": (_set("colour", "red"), ["colour"]),
    "version missing": (_delete("version"), ["version"]),
    "version 2": (_set("version", 2), ["version"]),
    "version as text": (_set("version", "1"), ["version"]),
    "version true": (_set("version", True), ["version"]),
    "name missing": (_delete("name"), ["name"]),
    "name empty": (_set("name", ""), ["name"]),
    "name too long": (_set("name", "x" * 65), ["name"]),
    "name with a control character": (_set("name", "seed\x07lab"), ["name"]),
    "name with a newline": (_set("name", "seed\nlab"), ["name"]),
    "name not a string": (_set("name", 42), ["name"]),
    "description not a string": (_set("description", ["a"]), ["description"]),
    "ui not a mapping": (_set("ui", [1, 2]), ["ui"]),
    "nodes is a list": (_set("nodes", []), ["nodes", "links.0.endpoints.0", "links.0.endpoints.1",
                                            "links.1.endpoints.0", "links.1.endpoints.1", "links.2.endpoints.0",
                                            "links.2.endpoints.1", "links.3.endpoints.0", "links.3.endpoints.1",
                                            "links.4.endpoints.0", "links.4.endpoints.1"]),
    "links is a mapping": (_set("links", {}), ["links"]),
    # nodes
    "node name starting with a digit": (_add_node("1bad", {"kind": "bridge"}), ["nodes.1bad"]),
    "node name with a dot": (_add_node("a.b", {"kind": "bridge"}), ["nodes.a.b"]),
    "node name too long": (_add_node("b" * 33, {"kind": "bridge"}), ["nodes." + "b" * 33]),
    "node is a list": (_add_node("b2", ["bridge"]), ["nodes.b2"]),
    "kind missing": (_delete("nodes", "br-in", "kind"), ["nodes.br-in.kind"]),
    "kind unknown": (_set("nodes", "br-in", "kind", "switch"), ["nodes.br-in.kind"]),
    "unknown node key": (_set("nodes", "h1", "colour", "red"), ["nodes.h1.colour"]),
    "nat on a host": (_set("nodes", "h1", "nat", {"masquerade": ["eth0"]}), ["nodes.h1.nat"]),
    "image on a host": (_set("nodes", "h1", "image", "tiny"), ["nodes.h1.image"]),
    "interfaces on a bridge": (_set("nodes", "br-in", "interfaces", {}), ["nodes.br-in.interfaces"]),
    "route of a static vm off its subnets": (
        lambda d: d["nodes"]["vm1"].update(interfaces={"eth0": {"address": "10.0.1.5/24"}},
                                           routes=[{"to": "default", "via": "10.9.9.9"}]),
        ["nodes.vm1.routes.0.via"]),
    "routes on a bridge": (_set("nodes", "br-in", "routes", []), ["nodes.br-in.routes"]),
    "node ui not a mapping": (_set("nodes", "h1", "ui", "here"), ["nodes.h1.ui"]),
    "node description not a string": (_set("nodes", "h1", "description", 3), ["nodes.h1.description"]),
    # interfaces
    "interfaces is a list": (_set("nodes", "h2", "interfaces", ["eth0"]),
                             ["nodes.h2.interfaces", "links.2.endpoints.0"]),
    "interface is a list": (_set("nodes", "h1", "interfaces", "eth0", []), [H1]),
    "interface name of 16 bytes": (_set("nodes", "h1", "interfaces", "e" * 16, {}), ["nodes.h1.interfaces." + "e" * 16]),
    "interface name with a slash": (_set("nodes", "h1", "interfaces", "a/b", {}), ["nodes.h1.interfaces.a/b"]),
    "interface name with a colon": (_set("nodes", "h1", "interfaces", "a:b", {}), ["nodes.h1.interfaces.a:b"]),
    "interface name with a space": (_set("nodes", "h1", "interfaces", "a b", {}), ["nodes.h1.interfaces.a b"]),
    "interface name starting with a dash": (_set("nodes", "h1", "interfaces", "-x", {}), ["nodes.h1.interfaces.-x"]),
    "interface named dot-dot": (_set("nodes", "h1", "interfaces", "..", {}), ["nodes.h1.interfaces..."]),
    "interface named lo": (_set("nodes", "h1", "interfaces", "lo", {}), ["nodes.h1.interfaces.lo"]),
    "interface name not a string": (_set("nodes", "h1", "interfaces", 5, {}), ["nodes.h1.interfaces.5"]),
    "unknown interface key": (_h1_iface("speed", "1g"), [f"{H1}.speed"]),
    "address out of range": (_h1_iface("address", "10.0.1.300/24"), [f"{H1}.address"]),
    "address without prefix": (_h1_iface("address", "10.0.1.1"), [f"{H1}.address"]),
    "address is the network": (_h1_iface("address", "10.0.1.0/24"), [f"{H1}.address"]),
    "address is the broadcast": (_h1_iface("address", "10.0.1.255/24"), [f"{H1}.address"]),
    "address is multicast": (_h1_iface("address", "224.0.0.1/24"), [f"{H1}.address"]),
    "address is a number": (_h1_iface("address", 10), [f"{H1}.address"]),
    "address with an IPv6 zone": (_h1_iface("address", "fe80::1%eth0/64"), [f"{H1}.address"]),
    "dhcp inside an address list": (_h1_iface("address", ["10.0.1.1/24", "dhcp"]), [f"{H1}.address.1"]),
    "bad item in an address list": (_h1_iface("address", ["10.0.1.1/24", "2001:db8::/64"]), [f"{H1}.address.1"]),
    "address listed twice": (_h1_iface("address", ["10.0.1.1/24", "10.0.1.1/24"]), [f"{H1}.address.1"]),
    "empty address list": (_h1_iface("address", []), [f"{H1}.address"]),
    "bad static address on a vm": (_set("nodes", "vm1", "interfaces", "eth0", "address", "10.0.1.0/24"),
                                   ["nodes.vm1.interfaces.eth0.address"]),
    "mac not a mac": (_h1_iface("mac", "52:54:00:zz:bb:cc"), [f"{H1}.mac"]),
    "mac of five octets": (_h1_iface("mac", "52:54:00:bb:cc"), [f"{H1}.mac"]),
    "multicast mac": (_h1_iface("mac", "01:00:5e:00:00:01"), [f"{H1}.mac"]),
    "zero mac": (_h1_iface("mac", "00:00:00:00:00:00"), [f"{H1}.mac"]),
    "mac used twice in the lab": (_h1_iface("mac", "52:54:00:AA:BB:CC"), ["nodes.vm1.interfaces.eth0.mac"]),
    "mtu too small": (_h1_iface("mtu", 67), [f"{H1}.mtu"]),
    "mtu too large": (_h1_iface("mtu", 9001), [f"{H1}.mtu"]),
    "mtu as text": (_h1_iface("mtu", "1500"), [f"{H1}.mtu"]),
    "mtu true": (_h1_iface("mtu", True), [f"{H1}.mtu"]),
    # dhcp server
    "dhcp server on a host": (_h1_iface("dhcp_server", {"range": "10.0.1.100-10.0.1.150"}), [f"{H1}.dhcp_server"]),
    "dhcp server without a static address": (_r1_eth0("address", "dhcp"), [DHCP]),
    "dhcp server on an IPv6-only interface": (_r1_eth0("address", "2001:db8::1/64"), [DHCP]),
    "dhcp server not a mapping": (_r1_eth0("dhcp_server", "yes"), [DHCP]),
    "dhcp server without a range": (_delete("nodes", "r1", "interfaces", "eth0", "dhcp_server", "range"),
                                    [f"{DHCP}.range"]),
    "dhcp server unknown key": (_dhcp("domain", "lab"), [f"{DHCP}.domain"]),
    "dhcp range not a range": (_dhcp("range", "10.0.1.100"), [f"{DHCP}.range"]),
    "dhcp range of garbage": (_dhcp("range", "a-b"), [f"{DHCP}.range"]),
    "dhcp range outside the subnet": (_dhcp("range", "10.0.2.100-10.0.2.150"), [f"{DHCP}.range"]),
    "dhcp range backwards": (_dhcp("range", "10.0.1.150-10.0.1.100"), [f"{DHCP}.range"]),
    "dhcp range with the network address": (_dhcp("range", "10.0.1.0-10.0.1.10"), [f"{DHCP}.range"]),
    "dhcp range with the broadcast address": (_dhcp("range", "10.0.1.200-10.0.1.255"), [f"{DHCP}.range"]),
    "dhcp range with the router's own address": (_dhcp("range", "10.0.1.200-10.0.1.254"), [f"{DHCP}.range"]),
    "dhcp range IPv6": (_dhcp("range", "2001:db8::10-2001:db8::20"), [f"{DHCP}.range"]),
    "lease time too short": (_dhcp("lease_time", 60), [f"{DHCP}.lease_time"]),
    "lease time too long": (_dhcp("lease_time", "8d"), [f"{DHCP}.lease_time"]),
    "lease time of weeks": (_dhcp("lease_time", "2w"), [f"{DHCP}.lease_time"]),
    "dhcp gateway outside the subnet": (_dhcp("gateway", "10.0.2.1"), [f"{DHCP}.gateway"]),
    "dhcp gateway not an address": (_dhcp("gateway", "router"), [f"{DHCP}.gateway"]),
    "dhcp dns not a list": (_dhcp("dns", "1.1.1.1"), [f"{DHCP}.dns"]),
    "dhcp dns bad item": (_dhcp("dns", ["1.1.1.1", "one"]), [f"{DHCP}.dns.1"]),
    # routes
    "routes not a list": (_set("nodes", "h1", "routes", {"to": "default"}), ["nodes.h1.routes"]),
    "route not a mapping": (_set("nodes", "h1", "routes", ["default"]), ["nodes.h1.routes.0"]),
    "route unknown key": (_set("nodes", "h1", "routes", 0, "dev", "eth0"), ["nodes.h1.routes.0.dev"]),
    "route to with host bits": (_set("nodes", "h1", "routes", 0, "to", "10.0.2.1/24"), ["nodes.h1.routes.0.to"]),
    "route to garbage": (_set("nodes", "h1", "routes", 0, "to", "everywhere"), ["nodes.h1.routes.0.to"]),
    "route to missing": (_delete("nodes", "h1", "routes", 0, "to"), ["nodes.h1.routes.0.to"]),
    "route via missing": (_delete("nodes", "h1", "routes", 0, "via"), ["nodes.h1.routes.0.via"]),
    "route via not an address": (_set("nodes", "h1", "routes", 0, "via", "r1"), ["nodes.h1.routes.0.via"]),
    "route via off every subnet": (_set("nodes", "h1", "routes", 0, "via", "10.9.9.9"), ["nodes.h1.routes.0.via"]),
    "route families differ": (_set("nodes", "h1", "routes", 0, "to", "2001:db8::/32"), ["nodes.h1.routes.0.via"]),
    "route to the same network twice": (
        lambda d: d["nodes"]["h1"]["routes"].append({"to": "0.0.0.0/0", "via": "10.0.1.254"}),
        ["nodes.h1.routes.1.to"]),
    # nat
    "nat not a mapping": (_set("nodes", "r1", "nat", ["eth1"]), ["nodes.r1.nat"]),
    "nat unknown key": (_set("nodes", "r1", "nat", "snat", ["eth1"]), ["nodes.r1.nat.snat"]),
    "nat masquerade empty": (_set("nodes", "r1", "nat", "masquerade", []), ["nodes.r1.nat.masquerade"]),
    "nat masquerade of an unknown interface": (_set("nodes", "r1", "nat", "masquerade", ["eth9"]),
                                               ["nodes.r1.nat.masquerade.0"]),
    # vm
    "vm without image": (_delete("nodes", "vm1", "image"), ["nodes.vm1.image"]),
    "vm image with a path": (_set("nodes", "vm1", "image", "../etc/passwd"), ["nodes.vm1.image"]),
    "vm image with dot-dot": (_set("nodes", "vm1", "image", "a..b"), ["nodes.vm1.image"]),
    "vm image in upper case": (_set("nodes", "vm1", "image", "Tiny"), ["nodes.vm1.image"]),
    "vm image of 65 characters": (_set("nodes", "vm1", "image", "a" * 65), ["nodes.vm1.image"]),
    "vm memory too small": (_set("nodes", "vm1", "memory", 15), ["nodes.vm1.memory"]),
    "vm memory too large": (_set("nodes", "vm1", "memory", 65537), ["nodes.vm1.memory"]),
    "vm memory as text": (_set("nodes", "vm1", "memory", "128M"), ["nodes.vm1.memory"]),
    "vm cpus zero": (_set("nodes", "vm1", "cpus", 0), ["nodes.vm1.cpus"]),
    "vm cpus 17": (_set("nodes", "vm1", "cpus", 17), ["nodes.vm1.cpus"]),
    # external
    "external bridge not an ifname": (_set("nodes", "wan", "bridge", "br ex"), ["nodes.wan.bridge"]),
    "external with bridge and nat": (_set("nodes", "wan", "nat", True), ["nodes.wan.nat"]),
    "external with neither bridge nor nat": (_delete("nodes", "wan", "bridge"), ["nodes.wan"]),
    "external nat not a boolean": (_set("nodes", "wan", {"kind": "external", "nat": "yes", "address": "203.0.113.1/24"}),
                                   ["nodes.wan.nat"]),
    "external nat without address": (_set("nodes", "wan", {"kind": "external", "nat": True}), ["nodes.wan.address"]),
    "external address without nat": (_set("nodes", "wan", "address", "203.0.113.1/24"), ["nodes.wan.address"]),
    "external nat with a bad address": (
        _set("nodes", "wan", {"kind": "external", "nat": True, "address": "203.0.113.0/24"}), ["nodes.wan.address"]),
    "external with interfaces": (_set("nodes", "wan", "interfaces", {}), ["nodes.wan.interfaces"]),
    # links
    "link not a mapping": (_add_link(["h1:eth0", "br-in"]), ["links.5"]),
    "link unknown key": (_set("links", 4, "colour", "red"), ["links.4.colour"]),
    "link without endpoints": (_add_link({"delay": "1ms"}), ["links.5.endpoints"]),
    "link with three endpoints": (_add_link({"endpoints": ["br-in", "wan", "br-in"]}), ["links.5.endpoints"]),
    "endpoint not a string": (_set("links", 0, "endpoints", 1, 5), ["links.0.endpoints.1"]),
    "endpoint of an unknown node": (_set("links", 3, "endpoints", 1, "nowhere"), ["links.3.endpoints.1"]),
    "bridge endpoint with an interface": (_set("links", 0, "endpoints", 1, "br-in:p1"), ["links.0.endpoints.1"]),
    "external endpoint with an interface": (_set("links", 4, "endpoints", 1, "wan:eth0"), ["links.4.endpoints.1"]),
    "host endpoint without an interface": (_set("links", 1, "endpoints", 0, "h1"), ["links.1.endpoints.0"]),
    "endpoint of an undeclared interface": (_set("links", 1, "endpoints", 0, "h1:eth9"), ["links.1.endpoints.0"]),
    "interface used by two links": (_add_link({"endpoints": ["h1:eth0", "wan"]}), ["links.5.endpoints.0"]),
    "link from an endpoint to itself": (_add_link({"endpoints": ["br-in", "br-in"]}), ["links.5.endpoints.1"]),
    "link between two externals": (
        lambda d: (_add_node("wan2", {"kind": "external", "bridge": "br-x"})(d),
                   _add_link({"endpoints": ["wan", "wan2"]})(d)), ["links.5.endpoints"]),
    "interface not connected to any link": (_set("nodes", "h1", "interfaces", "eth1", {}),
                                            ["nodes.h1.interfaces.eth1"]),
    "delay without a unit": (_set("links", 4, "delay", "20"), ["links.4.delay"]),
    "delay as a number": (_set("links", 4, "delay", 20), ["links.4.delay"]),
    "delay over a minute": (_set("links", 4, "delay", "61s"), ["links.4.delay"]),
    "negative delay": (_set("links", 4, "delay", "-1ms"), ["links.4.delay"]),
    "jitter without delay": (_set("links", 0, "jitter", "5ms"), ["links.0.jitter"]),
    "jitter not a duration": (_set("links", 4, "jitter", "a bit"), ["links.4.jitter"]),
    "loss over 100%": (_set("links", 4, "loss", "101%"), ["links.4.loss"]),
    "loss negative": (_set("links", 4, "loss", -1), ["links.4.loss"]),
    "loss as text without percent": (_set("links", 4, "loss", "1"), ["links.4.loss"]),
    "rate below 8kbit": (_set("links", 4, "rate", "7kbit"), ["links.4.rate"]),
    "rate in bytes per second": (_set("links", 4, "rate", "10mbps"), ["links.4.rate"]),
    "rate without a unit": (_set("links", 4, "rate", 1000000), ["links.4.rate"]),
    "link ui not a mapping": (_set("links", 0, "ui", 3), ["links.0.ui"]),
}


@pytest.mark.parametrize("change,expected", CASES.values(), ids=CASES.keys())
def test_each_rule_reports_exactly_its_path(change, expected):
    doc = seed()
    change(doc)
    assert sorted(paths(doc)) == sorted(expected)


# ---------------------------------------------------------------- what must be accepted, and how it is normalised


def test_addresses_may_be_lists_of_ipv4_and_ipv6_and_point_to_point():
    doc = minimal()
    doc["nodes"]["h1"]["interfaces"]["eth0"]["address"] = ["10.0.0.1/24", "2001:db8::1/64"]
    doc["nodes"]["h2"]["interfaces"]["eth0"]["address"] = ["10.0.0.2/24", "2001:db8::2/64", "192.0.2.0/31"]
    doc["nodes"]["h2"]["routes"] = [{"to": "default", "via": "2001:db8::1"}, {"to": "default", "via": "10.0.0.1"}]
    topo = parse_document(doc)
    h2 = topo.node("h2")
    assert [str(a) for a in h2.interfaces["eth0"].addresses] == ["10.0.0.2/24", "2001:db8::2/64", "192.0.2.0/31"]
    assert [str(r.to) for r in h2.routes] == ["::/0", "0.0.0.0/0"]
    assert topo.document["nodes"]["h2"]["routes"][0] == {"to": "default", "via": "2001:db8::1"}


def test_a_node_with_a_dhcp_interface_may_route_via_any_next_hop():
    doc = seed()
    doc["nodes"]["h2"]["routes"] = [{"to": "10.9.0.0/16", "via": "10.9.9.9"}]
    assert validate_document(doc) == []


def test_values_are_normalised_in_the_document():
    doc = seed()
    doc["nodes"]["vm1"]["interfaces"]["eth0"]["mac"] = "52-54-00-AA-BB-CC"
    doc["nodes"]["r1"]["interfaces"]["eth0"]["dhcp_server"]["lease_time"] = "1h"
    doc["nodes"]["r1"]["interfaces"]["eth1"]["address"] = "203.0.113.2/255.255.255.0"
    doc["links"][4].update(delay="1.5s", jitter="500us", loss=2, rate="1.5mbit")
    topo = parse_document(doc)
    assert topo.node("vm1").interfaces["eth0"].mac == "52:54:00:aa:bb:cc"
    assert topo.document["nodes"]["r1"]["interfaces"]["eth1"]["address"] == "203.0.113.2/24"
    assert topo.node("r1").interfaces["eth0"].dhcp_server.lease_time == 3600
    assert topo.links[4].conditions == type(topo.links[4].conditions)(1500.0, 0.5, 2.0, 1_500_000)
    assert topo.document["links"][4] == {
        "endpoints": ["r1:eth1", "wan"], "delay": "1500ms", "jitter": "500us", "loss": "2%", "rate": "1500kbit",
    }
    again = parse_document(topo.document)
    assert again.document == topo.document


def test_ui_is_kept_everywhere_and_ignored_otherwise():
    doc = seed()
    doc["ui"] = {"zoom": 1.5}
    doc["nodes"]["h1"]["ui"] = {"x": 10, "y": 20}
    doc["links"][0]["ui"] = {"bend": [1, 2]}
    topo = parse_document(doc)
    assert topo.ui == {"zoom": 1.5} and topo.node("h1").ui == {"x": 10, "y": 20} and topo.links[0].ui == {"bend": [1, 2]}
    assert parse_document(dump_yaml(topo)).document == topo.document


def test_a_nat_external_with_a_gateway_address_is_valid():
    doc = seed()
    doc["nodes"]["wan"] = {"kind": "external", "nat": True, "address": "203.0.113.1/24"}
    wan = parse_document(doc).node("wan")
    assert (wan.nat_external, str(wan.address), wan.bridge) == (True, "203.0.113.1/24", None)


def test_vm_images_are_checked_against_the_library_only_when_given():
    assert validate_document(seed(), images={"tiny", "debian"}) == []
    assert paths(seed(), images={"debian"}) == ["nodes.vm1.image"]
    assert validate_document(seed()) == []


def test_interfaces_may_be_declared_empty_and_with_vlan_like_names():
    doc = minimal()
    doc["nodes"]["h1"]["interfaces"]["eth0.10"] = None
    doc["nodes"]["h2"]["interfaces"]["e_1-x"] = {}
    doc["links"].append({"endpoints": ["h1:eth0.10", "h2:e_1-x"]})
    topo = parse_document(doc)
    assert topo.node("h1").interfaces["eth0.10"].addresses == ()


def test_an_empty_lab_is_valid():
    topo = parse_document("version: 1\nname: empty\n")
    assert (topo.nodes, topo.links) == ({}, [])
    assert topo.document == {"version": 1, "name": "empty", "nodes": {}, "links": []}


def test_messages_quote_the_bad_value():
    doc = seed()
    doc["links"][4]["rate"] = "fast"
    doc["nodes"]["r1"]["interfaces"]["eth0"]["mac"] = "nope"
    got = problems_of(doc)
    assert "'fast'" in got["links.4.rate"]
    assert "'nope'" in got["nodes.r1.interfaces.eth0.mac"]
    assert problems_of(_unconnected())["nodes.h1.interfaces.eth1"] == "not connected to any link"


def _unconnected():
    doc = seed()
    doc["nodes"]["h1"]["interfaces"]["eth1"] = {}
    return doc


def test_a_vm_may_have_static_addresses_and_routes_like_a_host():
    """The guest gets them on its kernel command line (direct-boot images); netops.qemu refuses them for disk
    images, which it cannot configure."""
    doc = {"version": 1, "name": "vm-static", "nodes": {
        "sw": {"kind": "bridge"},
        "vm1": {"kind": "vm", "image": "tiny", "interfaces": {"eth0": {"address": "10.0.5.2/24"}},
                "routes": [{"to": "default", "via": "10.0.5.1"}]}},
        "links": [{"endpoints": ["vm1:eth0", "sw"]}]}
    topo = parse_document(doc)
    assert [str(a) for a in topo.nodes["vm1"].interfaces["eth0"].addresses] == ["10.0.5.2/24"]
    assert str(topo.nodes["vm1"].routes[0].via) == "10.0.5.1"


def test_a_bridge_may_ask_for_multicast_snooping_and_nothing_else_may():
    doc = seed()
    doc["nodes"]["br-in"]["multicast_snooping"] = True
    topo = parse_document(doc)
    assert topo.nodes["br-in"].multicast_snooping is True
    assert to_document(topo)["nodes"]["br-in"]["multicast_snooping"] is True
    doc["nodes"]["br-in"]["multicast_snooping"] = False
    assert "multicast_snooping" not in to_document(parse_document(doc))["nodes"]["br-in"]  # the default
    doc["nodes"]["br-in"]["multicast_snooping"] = "yes"
    assert problems_of(doc) == {"nodes.br-in.multicast_snooping": "'yes' must be true or false"}
    doc = seed()
    doc["nodes"]["h1"]["multicast_snooping"] = True
    assert paths(doc) == ["nodes.h1.multicast_snooping"]


def test_a_switch_takes_what_the_document_allows_and_an_uplink_what_one_bridge_does():
    def doc(hosts: int, kind: str = "bridge") -> dict:
        nodes: dict = {"sw": {"kind": kind, **({"nat": True, "address": "192.0.2.1/24"} if kind == "external"
                                               else {})}}
        for i in range(hosts):
            nodes[f"h{i}"] = {"kind": "host", "interfaces": {"eth0": {}}}
        return {"version": 1, "name": "big", "nodes": nodes,
                "links": [{"endpoints": [f"h{i}:eth0", "sw"]} for i in range(hosts)]}

    assert [p.path for p in validate_document(doc(1999))] == []  # a tree of bridges (netops.wiring.switch_bridge)
    assert [p.path for p in validate_document(doc(1000, "external"))] == []
    problems = {p.path: p.message for p in validate_document(doc(1001, "external"))}
    assert list(problems) == ["nodes.sw"]
    assert "1001 links end here, at most 1000" in problems["nodes.sw"] and "1023 ports" in problems["nodes.sw"]


def test_a_switch_past_one_bridge_is_a_root_and_leaves_and_its_ports_move_only_at_the_boundaries():
    from netops import naming
    from netops.model import Endpoint
    from netops.wiring import switch_bridge

    def model(hosts: list[int]):
        nodes: dict = {"sw": {"kind": "bridge"}}
        for i in hosts:
            nodes[f"h{i:04d}"] = {"kind": "host", "interfaces": {"eth0": {}}}
        return parse_document({"version": 1, "name": "big", "nodes": nodes,
                               "links": [{"endpoints": [f"h{i:04d}:eth0", "sw"]} for i in hosts]})

    small = model(list(range(1000)))
    assert {switch_bridge(small, "sw", Endpoint(f"h{i:04d}", "eth0")) for i in range(1000)} == {
        naming.bridge_ifname("sw")}
    big = model(list(range(1500)))
    leaves = [switch_bridge(big, "sw", Endpoint(f"h{i:04d}", "eth0")) for i in range(1500)]
    assert leaves[:1000] == [naming.switch_leaf_ifname("sw", 0)] * 1000
    assert leaves[1000:] == [naming.switch_leaf_ifname("sw", 1)] * 500
    fewer = model([i for i in range(1500) if i != 10])  # one link fewer: one port moves, at the boundary
    moved = [i for i in range(1500) if i != 10 and switch_bridge(fewer, "sw", Endpoint(f"h{i:04d}", "eth0"))
             != leaves[i]]
    assert moved == [1000]
