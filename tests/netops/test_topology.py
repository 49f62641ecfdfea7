"""parse_document / validate_document: the seed document parses, and every rule yields exactly the expected path."""
from __future__ import annotations

import copy
import ipaddress
import json
from pathlib import Path

import pytest

from netops.errors import TopologyError
from netops.topology import (
    MAX_TEXT_BYTES,
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
