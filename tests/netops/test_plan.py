"""The planner is pure: these tests build Inventories by hand and never touch the kernel."""
from __future__ import annotations

import copy

from netops import naming
from netops.plan import Inventory, LinkState, NamespaceState, conditions_of, interface_mac, plan, signatures
from netops.topology import parse_document

LAB = "tp1"


def doc() -> dict:
    return {
        "version": 1,
        "name": "plan",
        "nodes": {
            "sw": {"kind": "bridge"},
            "r1": {"kind": "router", "interfaces": {
                "eth0": {"address": "10.0.1.254/24", "dhcp_server": {"range": "10.0.1.100-10.0.1.150"}}},
                "nat": {"masquerade": ["eth0"]}},
            "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}},
                   "routes": [{"to": "default", "via": "10.0.1.254"}]},
            "h2": {"kind": "host", "interfaces": {"eth0": {"address": "dhcp"}}},
        },
        "links": [{"endpoints": ["r1:eth0", "sw"]}, {"endpoints": ["h1:eth0", "sw"]},
                  {"endpoints": ["h2:eth0", "sw"]}],
    }


def deployed(topology) -> Inventory:
    """The inventory observe would report for a fully deployed `topology`."""
    inv = Inventory(LAB, signatures=dict(signatures(topology)), conditions_applied=conditions_of(topology))
    fabric = NamespaceState(naming.fabric_namespace(LAB))
    inv.namespaces[fabric.name] = fabric
    fabric.links["sw"] = LinkState(naming.bridge_ifname("sw"), "bridge", alias=naming.tag(LAB, "bridge", "sw"))
    fabric.links[naming.bridge_ifname("sw")] = fabric.links.pop("sw")
    for name, node in topology.nodes.items():
        if node.kind not in ("host", "router"):
            continue
        ns = NamespaceState(naming.node_namespace(LAB, name), forwarding=node.kind == "router")
        inv.namespaces[ns.name] = ns
        for iname, iface in node.interfaces.items():
            ns.links[iname] = LinkState(iname, "veth", mac=interface_mac(LAB, node, iname),
                                        addresses=[str(a) for a in iface.addresses])
            fabric.links[naming.fabric_ifname(name, iname)] = LinkState(
                naming.fabric_ifname(name, iname), "veth", alias=naming.tag(LAB, "link"))
            if iface.dhcp:
                inv.processes[f"udhcpc:{name}:{iname}"] = 1000
            if iface.dhcp_server:
                inv.processes[f"dnsmasq:{name}:{iname}"] = 1001
        ns.routes = {(str(r.to), str(r.via)) for r in node.routes}
        if node.nat:
            inv.nat_applied.add(name)
    return inv


def test_it_plans_everything_for_a_new_lab_in_phase_order():
    topo = parse_document(doc())
    steps = plan(topo, LAB, Inventory(LAB))
    actions = [s.action for s in steps]
    assert actions[0] == "namespace.create" and steps[0].path == "fabric"
    assert actions.count("namespace.create") == 4
    assert actions.index("bridge.create") > max(i for i, a in enumerate(actions) if a == "namespace.create")
    assert actions.count("link.create") == 3
    assert actions.index("dhcp-server.start") < actions.index("dhcp-client.start")
    assert actions.index("nat.router") < actions.index("dhcp-server.start")
    assert "sysctl.forwarding" in actions and [s.node for s in steps if s.action == "sysctl.forwarding"] == ["r1"]
    assert max(i for i, a in enumerate(actions) if a.startswith("configure")) < actions.index("nat.router")


def test_planning_against_a_deployed_lab_yields_no_steps():
    topo = parse_document(doc())
    assert plan(topo, LAB, deployed(topo)) == []


def test_a_missing_address_is_the_only_thing_planned():
    topo = parse_document(doc())
    inv = deployed(topo)
    inv.namespaces[naming.node_namespace(LAB, "h1")].links["eth0"].addresses.clear()
    steps = plan(topo, LAB, inv)
    assert [(s.action, s.path) for s in steps] == [("configure.interface", "nodes.h1.interfaces.eth0")]


def test_a_dead_dhcp_server_is_restarted():
    topo = parse_document(doc())
    inv = deployed(topo)
    del inv.processes["dnsmasq:r1:eth0"]
    assert [(s.action, s.node) for s in plan(topo, LAB, inv)] == [("dhcp-server.start", "r1")]


def test_a_changed_node_is_rebuilt_and_the_others_are_untouched():
    before = parse_document(doc())
    edited = copy.deepcopy(doc())
    edited["nodes"]["h1"]["interfaces"]["eth0"]["mtu"] = 1400  # a change of the interface itself (issue 18:
    after = parse_document(edited)                                # its address alone is changed in place)
    steps = plan(after, LAB, deployed(before))
    assert {s.node for s in steps} == {"h1"}
    assert steps[0].action == "remove.namespace" and steps[0].params["namespace"] == naming.node_namespace(LAB, "h1")
    assert [s.action for s in steps[1:]] == ["namespace.create", "link.create", "configure.interface", "route.add"]


def test_a_removed_node_loses_its_namespace_processes_and_fabric_end():
    before = parse_document(doc())
    edited = copy.deepcopy(doc())
    del edited["nodes"]["h2"]
    edited["links"] = edited["links"][:2]
    steps = plan(parse_document(edited), LAB, deployed(before))
    assert [s.action for s in steps] == ["remove.processes", "remove.namespace", "remove.link"]
    assert steps[0].params["roles"] == ["udhcpc:h2:eth0"]
    assert steps[2].params["ifname"] == naming.fabric_ifname("h2", "eth0")


def test_canvas_positions_do_not_count_as_a_change():
    before = parse_document(doc())
    moved = copy.deepcopy(doc())
    moved["nodes"]["h1"]["ui"] = {"x": 10, "y": 20}
    assert plan(parse_document(moved), LAB, deployed(before)) == []


def test_a_missing_fabric_rebuilds_links_but_keeps_node_namespaces():
    topo = parse_document(doc())
    inv = deployed(topo)
    del inv.namespaces[naming.fabric_namespace(LAB)]
    actions = [s.action for s in plan(topo, LAB, inv)]
    assert actions.count("namespace.create") == 1 and actions.count("link.create") == 3
    assert "remove.namespace" not in actions


def test_a_direct_link_between_two_hosts_is_one_veth_with_both_ends_configured():
    d = {"version": 1, "name": "p2p", "nodes": {
        "a": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.0.1/30"}}},
        "b": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.0.2/30"}}}},
        "links": [{"endpoints": ["a:eth0", "b:eth0"]}]}
    steps = plan(parse_document(d), LAB, Inventory(LAB))
    link = [s for s in steps if s.action == "link.create"]
    assert len(link) == 1 and link[0].params["kind"] == "ns-ns"
    assert sorted(s.path for s in steps if s.action == "configure.interface") == [
        "nodes.a.interfaces.eth0", "nodes.b.interfaces.eth0"]


def test_derived_macs_are_stable_unicast_and_differ_between_labs():
    node = parse_document(doc()).nodes["h1"]
    mac = interface_mac(LAB, node, "eth0")
    assert mac == interface_mac(LAB, node, "eth0") != interface_mac("tp2", node, "eth0")
    assert int(mac.split(":")[0], 16) & 0x03 == 0x02  # locally administered, not multicast


def test_a_wrong_mac_is_corrected_in_place():
    topo = parse_document(doc())
    inv = deployed(topo)
    inv.namespaces[naming.node_namespace(LAB, "h1")].links["eth0"].mac = "02:00:00:00:00:99"
    assert [s.action for s in plan(topo, LAB, inv)] == ["configure.interface"]


def test_an_external_door_is_part_of_a_deployed_lab():
    d = doc()
    d["nodes"]["wan"] = {"kind": "external", "bridge": "br-ex"}
    d["nodes"]["r1"]["interfaces"]["eth1"] = {"address": "203.0.113.2/24"}
    d["links"].append({"endpoints": ["r1:eth1", "wan"]})
    topo = parse_document(d)
    inv = deployed(topo)
    fabric = inv.namespaces[naming.fabric_namespace(LAB)]
    for name in (naming.bridge_ifname("wan"), naming.root_peer_ifname(LAB, "wan")):
        fabric.links[name] = LinkState(name, alias=naming.tag(LAB, "door", "wan"))
    inv.root_links[naming.root_ifname(LAB, "wan")] = LinkState(naming.root_ifname(LAB, "wan"))
    assert plan(topo, LAB, inv) == []


def nat_external_doc() -> dict:
    d = doc()
    d["nodes"]["wan"] = {"kind": "external", "nat": True, "address": "198.51.100.1/24"}
    d["nodes"]["r1"]["interfaces"]["eth1"] = {"address": "198.51.100.2/24"}
    d["links"].append({"endpoints": ["r1:eth1", "wan"]})
    return d


def with_door(topo, inv: Inventory, name: str) -> Inventory:
    fabric = inv.namespaces[naming.fabric_namespace(LAB)]
    for ifname in (naming.bridge_ifname(name), naming.root_peer_ifname(LAB, name)):
        fabric.links[ifname] = LinkState(ifname, alias=naming.tag(LAB, "door", name))
    inv.root_links[naming.root_ifname(LAB, name)] = LinkState(naming.root_ifname(LAB, name))
    inv.external_nat.add(name)
    inv.nat_applied.add(name)
    inv.host_forwarding = True
    return inv


def test_a_deployed_external_with_nat_needs_no_steps():
    topo = parse_document(nat_external_doc())
    assert plan(topo, LAB, with_door(topo, deployed(topo), "wan")) == []


def test_a_removed_external_with_nat_loses_its_chains_and_gives_back_host_forwarding():
    before = parse_document(nat_external_doc())
    inv = with_door(before, deployed(before), "wan")
    steps = plan(parse_document(doc()), LAB, inv)
    removals = [(s.action, s.params.get("node")) for s in steps if s.action in (
        "remove.external-nat", "remove.host-forwarding")]
    assert removals == [("remove.external-nat", "wan"), ("remove.host-forwarding", None)]
    assert ("remove.link", naming.root_ifname(LAB, "wan")) in [(s.action, s.params.get("ifname")) for s in steps]


def test_turning_nat_off_removes_the_chains_and_keeps_the_door():
    before = parse_document(nat_external_doc())
    inv = with_door(before, deployed(before), "wan")
    edited = nat_external_doc()
    edited["nodes"]["wan"] = {"kind": "external", "bridge": "br-ex"}
    steps = plan(parse_document(edited), LAB, inv)
    actions = [s.action for s in steps]
    assert "remove.external-nat" in actions and "remove.host-forwarding" in actions
    assert "link.door" in actions and "nat.external" not in actions


def test_removing_one_of_two_nat_externals_keeps_host_forwarding():
    two = nat_external_doc()
    two["nodes"]["wan2"] = {"kind": "external", "nat": True, "address": "198.51.101.1/24"}
    two["nodes"]["r1"]["interfaces"]["eth2"] = {"address": "198.51.101.2/24"}
    two["links"].append({"endpoints": ["r1:eth2", "wan2"]})
    before = parse_document(two)
    inv = with_door(before, with_door(before, deployed(before), "wan"), "wan2")
    one = copy.deepcopy(two)
    del one["nodes"]["wan2"], one["nodes"]["r1"]["interfaces"]["eth2"]
    one["links"] = one["links"][:-1]
    steps = plan(parse_document(one), LAB, inv)
    assert [s.params["node"] for s in steps if s.action == "remove.external-nat"] == ["wan2"]
    assert "remove.host-forwarding" not in [s.action for s in steps]


def lossy_doc(loss: str = "30%") -> dict:
    d = doc()
    d["links"][1]["loss"] = loss
    return d


def test_a_missing_loss_chain_is_applied_again_on_the_end_that_lost_it():
    topo = parse_document(lossy_doc())
    inv = deployed(topo)
    h1 = inv.namespaces[naming.node_namespace(LAB, "h1")]
    fabric = inv.namespaces[naming.fabric_namespace(LAB)]
    fabric.loss_ifaces = {naming.fabric_ifname("h1", "eth0")}
    h1.loss_ifaces = {"eth0"}
    assert plan(topo, LAB, inv) == []
    h1.loss_ifaces = set()
    steps = plan(topo, LAB, inv)
    assert [(s.action, s.params["namespace"], s.params["ifname"]) for s in steps] == [
        ("linkcond.apply", h1.name, "eth0")]


def test_loss_is_not_planned_when_it_was_not_observed():
    topo = parse_document(lossy_doc())
    assert plan(topo, LAB, deployed(topo)) == []


def test_a_changed_loss_is_applied_in_place_on_both_ends_without_rebuilding_the_node():
    """Issue 18: conditions are applied where the link stands (no namespace, process or console of h1 ends)."""
    before = parse_document(lossy_doc("30%"))
    steps = plan(parse_document(lossy_doc("10%")), LAB, deployed(before))
    assert {s.action for s in steps} == {"linkcond.apply"}
    assert sorted(s.params["ifname"] for s in steps) == sorted(["eth0", naming.fabric_ifname("h1", "eth0")])


def test_removed_conditions_are_cleared_and_a_lab_with_none_recorded_is_shaped_once_more():
    before = parse_document(lossy_doc("30%"))
    plain = copy.deepcopy(lossy_doc("30%"))
    for lk in plain["links"]:
        lk.pop("loss", None)
    steps = plan(parse_document(plain), LAB, deployed(before))
    assert {s.action for s in steps} == {"linkcond.apply"} and len(steps) == 2
    inv = deployed(before)
    inv.conditions_applied = None
    assert {s.action for s in plan(before, LAB, inv)} == {"linkcond.apply"}
    assert plan(parse_document(plain), LAB, deployed(parse_document(plain))) == []


def test_signatures_of_the_whole_lab_equal_each_node_signature():
    """signatures() indexes links once per lab; it must hash exactly what node_signature() hashes per node,
    bridge-to-bridge links and links to externals included."""
    from netops.plan import node_signature

    d = doc()
    d["nodes"]["sw2"] = {"kind": "bridge"}
    d["nodes"]["wan"] = {"kind": "external", "bridge": "br-ex"}
    d["links"] += [{"endpoints": ["sw", "sw2"]}, {"endpoints": ["sw2", "wan"]}]
    topo = parse_document(d)
    sigs = signatures(topo)
    assert sigs == {name: node_signature(topo, name) for name in topo.nodes}
    assert len(set(sigs.values())) == len(sigs)  # and they tell the nodes apart


def test_turning_snooping_on_rebuilds_that_bridge_and_passes_it_to_the_step():
    d = doc()
    topo = parse_document(d)
    before = signatures(topo)
    d["nodes"]["sw"]["multicast_snooping"] = True
    after_topo = parse_document(d)
    after = signatures(after_topo)
    assert [n for n in before if before[n] != after[n]] == ["sw"]
    bridge = [s for s in plan(after_topo, LAB, Inventory(LAB)) if s.action == "bridge.create"]
    assert [s.params["multicast_snooping"] for s in bridge] == [True]


# ---------------------------------------------------------------------------------------------- issue 18


def test_consoles_and_captures_are_no_orphans_and_outlive_a_description_only_change():
    """The bug of issue 18: a session id like s13 was taken for a node gone from the document."""
    topo = parse_document(doc())
    inv = deployed(topo)
    inv.processes.update({"console:s13": 2000, "capture:7": 2001, "capture:8": 2002})
    inv.process_nodes.update({"console:s13": "h1", "capture:7": "h1", "capture:8": None})
    described = doc()
    described["nodes"]["r1"]["description"] = "changed"
    described["nodes"]["h1"]["ui"] = {"x": 1, "y": 2}
    assert plan(parse_document(described), LAB, inv) == []


def test_a_rebuilt_or_removed_node_ends_its_consoles_but_no_other_nodes():
    topo = parse_document(doc())
    inv = deployed(topo)
    inv.processes.update({"console:s1": 2000, "console:s2": 2001})
    inv.process_nodes.update({"console:s1": "h1", "console:s2": "h2"})
    changed = doc()
    changed["nodes"]["h1"]["interfaces"]["eth0"]["mtu"] = 1400
    stops = [s for s in plan(parse_document(changed), LAB, inv) if s.action == "remove.processes"]
    assert [(s.node, s.params["roles"]) for s in stops] == [("h1", ["console:s1"])]


def test_a_stopped_node_is_removed_and_nothing_of_it_or_its_links_is_planned():
    topo = parse_document(doc())
    inv = deployed(topo)
    inv.stopped = {"r1"}
    steps = plan(topo, LAB, inv)
    assert [(s.action, s.node) for s in steps] == [("remove.processes", "r1"), ("remove.namespace", "r1")]
    assert steps[0].params["roles"] == ["dnsmasq:r1:eth0"]
    # once removed, nothing more
    del inv.namespaces[naming.node_namespace(LAB, "r1")]
    del inv.processes["dnsmasq:r1:eth0"]
    del inv.namespaces[naming.fabric_namespace(LAB)].links[naming.fabric_ifname("r1", "eth0")]
    assert plan(topo, LAB, inv) == []
    # started again: built from the document
    inv.stopped = set()
    actions = [s.action for s in plan(topo, LAB, inv) if s.node == "r1"]
    assert actions[0] == "namespace.create"
    assert {"link.create", "sysctl.forwarding", "nat.router", "dhcp-server.start"} <= set(actions)


def test_a_downed_link_pulls_its_fabric_end_and_is_plugged_back_when_raised():
    from netops.wiring import link_key

    topo = parse_document(doc())
    inv = deployed(topo)
    inv.links_down = {link_key(topo.links[1])}
    steps = plan(topo, LAB, inv)
    assert [(s.action, s.params["ends"], s.params["up"]) for s in steps] == [
        ("carrier.set", [[naming.fabric_namespace(LAB), naming.fabric_ifname("h1", "eth0")]], False)]
    fabric = inv.namespaces[naming.fabric_namespace(LAB)]
    fabric.links[naming.fabric_ifname("h1", "eth0")].up = False
    assert plan(topo, LAB, inv) == []  # down as asked
    inv.links_down = set()
    assert [s.params["up"] for s in plan(topo, LAB, inv)] == [True]


def test_a_changed_address_route_or_dhcp_range_is_changed_in_place_not_rebuilt():
    """Issue 18: a change to one interface restarts only what depends on it."""
    before = parse_document(doc())
    inv = deployed(before)
    h1 = inv.namespaces[naming.node_namespace(LAB, "h1")]
    h1.static_routes = {("0.0.0.0/0", "10.0.1.254")}
    edited = copy.deepcopy(doc())
    edited["nodes"]["h1"]["interfaces"]["eth0"]["address"] = "10.0.1.11/24"
    edited["nodes"]["h1"]["routes"] = [{"to": "10.9.0.0/16", "via": "10.0.1.254"}]
    steps = plan(parse_document(edited), LAB, inv)
    assert [(s.action, s.node) for s in steps] == [
        ("configure.interface", "h1"), ("route.del", "h1"), ("route.add", "h1")]
    assert steps[0].params["remove"] == ["10.0.1.1/24"] and steps[0].params["addresses"] == ["10.0.1.11/24"]
    assert steps[1].params["routes"] == [("0.0.0.0/0", "10.0.1.254")]
    # the DHCP server's range: only r1's dnsmasq is restarted (its command line differs), nothing else
    from netops import dnsmasq

    inv = deployed(before)
    inv.process_argv["dnsmasq:r1:eth0"] = tuple(dnsmasq.argv(LAB, "r1", before.nodes["r1"].interfaces["eth0"]))
    assert plan(before, LAB, inv) == []
    ranged = copy.deepcopy(doc())
    ranged["nodes"]["r1"]["interfaces"]["eth0"]["dhcp_server"]["range"] = "10.0.1.160-10.0.1.170"
    assert [(s.action, s.node) for s in plan(parse_document(ranged), LAB, inv)] == [("dhcp-server.start", "r1")]
    # and a DHCP server taken off an interface is stopped
    served = copy.deepcopy(doc())
    del served["nodes"]["r1"]["interfaces"]["eth0"]["dhcp_server"]
    assert [(s.action, s.params["roles"]) for s in plan(parse_document(served), LAB, inv)] == [
        ("remove.processes", ["dnsmasq:r1:eth0"])]


def test_labs_deployed_before_the_signature_changed_are_not_rebuilt():
    from netops.plan import node_signature

    topo = parse_document(lossy_doc())
    inv = deployed(topo)
    inv.signatures = {n: node_signature(topo, n, legacy=True) for n in topo.nodes}
    assert inv.signatures != signatures(topo)
    assert plan(topo, LAB, inv) == []


def test_a_delay_removed_without_netem_rebuilds_the_link_in_its_plain_shape_and_stops_its_relay():
    """The relay carried the delay (no sch_netem); without it the link is a plain veth into the bridge again."""
    delayed = doc()
    delayed["links"][1]["delay"] = "40ms"
    before = parse_document(delayed)
    inv = deployed(parse_document(doc()))
    inv.conditions_applied = conditions_of(before, delay_relay=True)
    inv.processes["delayd:h1:eth0"] = 3000
    steps = plan(parse_document(doc()), LAB, inv)
    actions = [(s.action, s.node) for s in steps]
    assert ("remove.processes", "h1") in actions and ("link.create", "h1") in actions
    assert [s.params["ifname"] for s in steps if s.action == "remove.link"] == [naming.fabric_ifname("h1", "eth0")]
    assert not any(s.action.startswith("namespace") for s in steps)  # h1 itself is kept
