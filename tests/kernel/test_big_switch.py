"""A switch with more links than one Linux bridge takes (issue 13, part 5): 1100 hosts on one switch deploy as a
root bridge with two leaf bridges joined to it by trunks, hosts on different leaves reach each other, a second up
changes nothing, and destroy leaves nothing (the inventory guard)."""
from __future__ import annotations

import pytest

from netops import naming
from netops.topology import parse_document

pytestmark = [pytest.mark.slow]

HOSTS = 1100


def big_switch(hosts: int) -> dict:
    nodes: dict = {"sw": {"kind": "bridge"}}
    links = []
    for i in range(hosts):
        nodes[f"h{i:04d}"] = {"kind": "host",
                              "interfaces": {"eth0": {"address": f"10.1.{i // 250}.{i % 250 + 1}/16"}}}
        links.append({"endpoints": [f"h{i:04d}:eth0", "sw"]})
    return {"version": 1, "name": "bigswitch", "nodes": nodes, "links": links}


def ports(ns_exec, fabric: str, bridge: str) -> int:
    out = ns_exec(fabric, ["ip", "-o", "link", "show", "master", bridge], check=True).stdout
    return len([line for line in out.splitlines() if line.strip()])


def test_a_switch_of_1100_hosts_is_a_tree_of_bridges_that_forwards_between_leaves(deploy, lab_id, ns_exec):
    topology = parse_document(big_switch(HOSTS))
    deploy(topology, lab_id)
    fabric = naming.fabric_namespace(lab_id)
    root, leaf0, leaf1 = (naming.bridge_ifname("sw"), naming.switch_leaf_ifname("sw", 0),
                          naming.switch_leaf_ifname("sw", 1))
    assert (ports(ns_exec, fabric, root), ports(ns_exec, fabric, leaf0), ports(ns_exec, fabric, leaf1)) == \
        (2, 1001, 101)  # the root holds the two trunks; each leaf its hosts and its trunk
    first, last = naming.node_namespace(lab_id, "h0000"), naming.node_namespace(lab_id, f"h{HOSTS - 1:04d}")
    far = f"10.1.{(HOSTS - 1) // 250}.{(HOSTS - 1) % 250 + 1}"
    assert ns_exec(first, ["ping", "-c", "1", "-W", "5", far]).returncode == 0, "leaf 0 -> leaf 1 through the root"
    assert ns_exec(last, ["ping", "-c", "1", "-W", "5", "10.1.0.2"]).returncode == 0, "leaf 1 -> leaf 0"
    again = deploy(topology, lab_id)
    assert again.steps == [], again.steps[:5]  # a second up finds the tree whole
