"""netops.hosts.nodes_running against the real kernel: what a host's heartbeat reports as its nodes running."""
from __future__ import annotations

from netops import actions, engine, hosts
from netops.topology import parse_document


def test_nodes_running_counts_a_labs_nodes_and_drops_stopped_and_destroyed_ones(deploy, lab_id):
    doc = {"version": 1, "name": "count", "nodes": {
        "sw": {"kind": "bridge"},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.7.1/24"}}},
        "h2": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.7.2/24"}}}},
        "links": [{"endpoints": ["h1:eth0", "sw"]}, {"endpoints": ["h2:eth0", "sw"]}]}
    before = hosts.nodes_running()
    deploy(parse_document(doc), lab_id)
    assert hosts.nodes_running() - before == 2  # the hosts; the bridge lives in the lab's fabric
    actions.stop_node(lab_id, "h1")
    assert hosts.nodes_running() - before == 1
    engine.down(lab_id)
    assert hosts.nodes_running() == before
