"""routing: on routers (netops.routing) and the FRR configuration generated from it (netops.frr), pure."""
from __future__ import annotations

import copy

import pytest

from netops import frr, frr_status, naming
from netops import plan as planning
from netops.containerlab import to_containerlab
from netops.errors import ApplyError, TopologyError
from netops.plan import Inventory, NamespaceState
from netops.routing import FRR_CONFIG_MAX_BYTES
from netops.topology import dump_yaml, parse_document, validate_document


def lab() -> dict:
    """r1 - r2 over a point-to-point link, r1 with a LAN on a bridge; OSPF and BGP."""
    return {
        "version": 1, "name": "routing",
        "nodes": {
            "r1": {"kind": "router",
                   "interfaces": {"eth0": {"address": "10.0.12.1/30"}, "eth1": {"address": "10.1.1.254/24"},
                                  "eth2": {}},
                   "routing": {"loopback": "10.255.0.1/32",
                               "ospf": {"areas": {0: {"interfaces": ["eth0"], "passive": ["eth1", "lo"]}},
                                        "cost": {"eth0": 10}, "hello": 1, "dead": 4},
                               "bgp": {"asn": 65001, "neighbors": [{"address": "10.0.12.2", "asn": 65002,
                                                                     "description": "to r2"}],
                                       "networks": ["10.1.1.0/24"], "redistribute": ["connected"]}}},
            "r2": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.12.2/30"}},
                   "routing": {"ospf": {"areas": {"0.0.0.0": {"interfaces": ["eth0"]}}},
                               "bgp": {"asn": 65002, "neighbors": [{"address": "10.0.12.1", "asn": 65001}]}}},
            "lan": {"kind": "bridge"},
            "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.1.1.1/24"}}},
        },
        "links": [{"endpoints": ["r1:eth0", "r2:eth0"]}, {"endpoints": ["r1:eth1", "lan"]},
                  {"endpoints": ["h1:eth0", "lan"]}, {"endpoints": ["r1:eth2", "lan"]}],
    }


def problems(doc) -> dict[str, str]:
    return {p.path: p.message for p in validate_document(doc)}


R1 = "nodes.r1.routing"


# ---------------------------------------------------------------------------------------------- valid


def test_a_routing_document_parses_and_round_trips_through_yaml():
    topo = parse_document(lab())
    r = topo.nodes["r1"].routing
    assert [a.id for a in r.ospf.areas] == [0] and r.ospf.areas[0].passive == ("eth1", "lo")
    assert r.bgp.asn == 65001 and str(r.bgp.neighbors[0].address) == "10.0.12.2"
    assert r.daemons() == ("zebra", "ospfd", "bgpd")
    # static routes in frr_config are staticd's (without it FRR drops them quietly)
    statics = lab()
    statics["nodes"]["r1"]["routing"]["frr_config"] = "!\n ip route 192.0.2.0/24 Null0\n"
    assert parse_document(statics).nodes["r1"].routing.daemons() == ("zebra", "ospfd", "bgpd", "staticd")
    statics["nodes"]["r1"]["routing"]["frr_config"] = "! ip route is a comment here\nip prefix-list A permit any\n"
    assert parse_document(statics).nodes["r1"].routing.daemons() == ("zebra", "ospfd", "bgpd")
    text = dump_yaml(topo)
    assert dump_yaml(parse_document(text)) == text
    assert parse_document(text).nodes["r2"].routing.ospf.areas[0].dotted == "0.0.0.0"


# ---------------------------------------------------------------------------------------------- invalid


@pytest.mark.parametrize("edit, path, words", [
    (lambda d: d["nodes"]["r1"]["routing"]["ospf"]["areas"][0]["interfaces"].append("eth9"),
     f"{R1}.ospf.areas.0.interfaces.1", "not an interface of r1"),
    (lambda d: d["nodes"]["r1"]["routing"]["ospf"]["areas"][0]["interfaces"].append("eth2"),
     f"{R1}.ospf.areas.0.interfaces.1", "no IPv4 address"),
    (lambda d: d["nodes"]["r1"]["routing"].update(ospf6={"areas": {0: {"interfaces": ["eth0"]}}}),
     f"{R1}.ospf6.areas.0.interfaces.0", "no IPv6 address"),
    (lambda d: d["nodes"]["r1"]["routing"]["bgp"]["neighbors"].append({"address": "192.0.2.9", "asn": 65009}),
     f"{R1}.bgp.neighbors.1.address", "on no subnet"),
    (lambda d: d["nodes"]["r1"]["routing"]["bgp"].update(asn=4294967296), f"{R1}.bgp.asn", "out of range"),
    (lambda d: d["nodes"]["r1"]["routing"]["bgp"].update(asn=0), f"{R1}.bgp.asn", "out of range"),
    (lambda d: d["nodes"]["r1"]["routing"]["bgp"].update(asn=23456), f"{R1}.bgp.asn", "AS_TRANS"),
    (lambda d: d["nodes"]["r1"]["routing"]["bgp"]["neighbors"][0].update(asn="65002"),
     f"{R1}.bgp.neighbors.0.asn", "out of range"),
    (lambda d: d["nodes"]["r2"]["routing"]["ospf"].update(router_id="10.255.0.1"),
     "nodes.r2.routing.ospf.router_id", "already used by r1"),
    (lambda d: d["nodes"]["r1"]["routing"]["ospf"].update(router_id="10.0.0.256"),
     f"{R1}.ospf.router_id", "not a router id"),
    (lambda d: d["nodes"]["r1"]["routing"]["ospf"].update(dead=1), f"{R1}.ospf.dead", "longer than the hello"),
    (lambda d: d["nodes"]["r1"]["routing"]["ospf"]["areas"].update({"0.0.0.0": {"interfaces": ["eth1"]}}),
     f"{R1}.ospf.areas.0.0.0.0", "same area"),
    (lambda d: d["nodes"]["r1"]["routing"]["ospf"]["areas"].update({1: {"interfaces": ["eth0"]}}),
     f"{R1}.ospf.areas.1.interfaces.0", "already in"),
    (lambda d: d["nodes"]["r1"]["routing"]["ospf"]["cost"].update(eth2=5), f"{R1}.ospf.cost.eth2", "put it in an area"),
    (lambda d: d["nodes"]["r1"]["routing"]["bgp"]["neighbors"][0].update(description="x\ny"),
     f"{R1}.bgp.neighbors.0.description", "one line"),
    (lambda d: d["nodes"]["r1"]["routing"].update(isis={}), f"{R1}.isis", "unknown key"),
    (lambda d: d["nodes"]["h1"].update(routing={"ospf": {}}), "nodes.h1.routing", "routers"),
    (lambda d: d["nodes"]["r1"]["routing"].update(loopback="10.255.0.0/24"), f"{R1}.loopback", "host address"),
])
def test_each_mistake_is_named_at_its_path(edit, path, words):
    doc = lab()
    edit(doc)
    found = problems(doc)
    assert path in found, found
    assert words in found[path]


def test_a_derived_router_id_that_collides_says_how_to_fix_it():
    doc = lab()
    doc["nodes"]["r2"]["routing"]["ospf"]["router_id"] = "10.255.0.1"
    doc["nodes"]["r1"]["routing"]["ospf"].pop("router_id", None)
    assert "already used by r1" in problems(doc)["nodes.r2.routing.ospf.router_id"]
    doc = lab()
    doc["nodes"]["r2"]["routing"]["loopback"] = "10.255.0.1/32"  # r2's derived id is r1's loopback
    assert "derived from its addresses; set router_id" in problems(doc)["nodes.r2.routing.ospf.router_id"]


# ---------------------------------------------------------------------------------------------- hostile frr_config


@pytest.mark.parametrize("text, words", [
    ("x" * (3 * 1024 * 1024), "at most 65536 bytes"),
    ("a" * (FRR_CONFIG_MAX_BYTES + 1), "at most 65536 bytes"),
    ("router ospf\n\x1b[2J\n", "line 2: character '\\x1b'"),
    ("interface eth0\x00\n", "character '\\x00'"),
    ("ip route 10.0.0.0/8 Null0\rend\n", "character '\\r'"),
    ("! fine\nrouter ospf\n\u2028end\n", "character '\\u2028'"),
    ("router ospf\nend\ncopy /etc/shadow running-config\n", "line 2: 'end' is not allowed"),
    ("  do write memory\n", "'do' is not allowed"),
    ("write file\n", "'write' is not allowed"),
    ("log file /etc/cron.d/x\n", "'log file' is set by Topolab"),
    (["router ospf"], "must be text"),
])
def test_a_hostile_frr_config_is_refused_at_its_path(text, words):
    doc = lab()
    doc["nodes"]["r1"]["routing"]["frr_config"] = text
    found = problems(doc)
    assert list(found) == [f"{R1}.frr_config"], found
    assert words in found[f"{R1}.frr_config"]


def test_a_bang_line_with_shell_metacharacters_is_plain_frr_text_appended_last():
    doc = lab()
    text = "! $(rm -rf /); `reboot` | nc 192.0.2.1 1 && echo > /etc/passwd\nip prefix-list P seq 5 permit any\n"
    doc["nodes"]["r1"]["routing"]["frr_config"] = text
    topo = parse_document(doc)
    conf = frr.render_config(topo, "r1")
    assert conf.endswith(text)
    assert conf.count("$(rm -rf /)") == 1


# ---------------------------------------------------------------------------------------------- generator


def test_frr_conf_from_the_document():
    conf = frr.render_config(parse_document(lab()), "r1")
    assert conf.startswith("frr defaults traditional\nhostname r1\n")
    assert "interface lo\n ip address 10.255.0.1/32\n ip ospf area 0.0.0.0\nexit\n" in conf
    # r1-r2 is a direct link: point-to-point (no DR election); the LAN on a bridge is not
    assert ("interface eth0\n ip ospf area 0.0.0.0\n ip ospf network point-to-point\n ip ospf hello-interval 1\n"
            " ip ospf retransmit-interval 1\n ip ospf dead-interval 4\n ip ospf cost 10\nexit\n") in conf
    assert ("interface eth1\n ip ospf area 0.0.0.0\n ip ospf hello-interval 1\n ip ospf retransmit-interval 1\n"
            " ip ospf dead-interval 4\nexit") in conf
    assert " timers throttle lsa all 100\n timers lsa min-arrival 50\n timers throttle spf 0 50 1000\n" in conf
    assert "interface eth2" not in conf
    assert "router ospf\n ospf router-id 10.255.0.1\n passive-interface eth1\n passive-interface lo\n" in conf
    assert (" neighbor 10.0.12.2 remote-as 65002\n neighbor 10.0.12.2 description to r2\n"
            " neighbor 10.0.12.2 timers connect 5\n") in conf
    assert (" address-family ipv4 unicast\n  network 10.1.1.0/24\n  redistribute connected\n"
            "  neighbor 10.0.12.2 activate\n exit-address-family\n") in conf
    assert "address-family ipv6" not in conf
    # r2 has no loopback: its router id is its highest IPv4 address
    assert " ospf router-id 10.0.12.2\n" in frr.render_config(parse_document(lab()), "r2")


def test_bgp_unnumbered_and_ipv6_neighbors_are_activated_for_ipv6_and_keep_ipv6_on():
    doc = lab()
    doc["nodes"]["r1"]["interfaces"]["eth0"]["address"] = ["10.0.12.1/30", "2001:db8:12::1/64"]
    doc["nodes"]["r2"]["interfaces"]["eth0"]["address"] = ["10.0.12.2/30", "2001:db8:12::2/64"]
    doc["nodes"]["r1"]["routing"]["bgp"]["neighbors"] = [{"interface": "eth0", "asn": "external"}]
    doc["nodes"]["r1"]["routing"]["bgp"]["networks"] = ["10.1.1.0/24", "2001:db8:1::/48"]
    topo = parse_document(doc)
    conf = frr.render_config(topo, "r1")
    assert " neighbor eth0 interface remote-as external\n" in conf
    assert "address-family ipv6 unicast\n  network 2001:db8:1::/48\n  redistribute connected\n  neighbor eth0 activate" in conf
    assert topo.nodes["r1"].routing.needs_ipv6


def test_the_daemons_file_names_what_the_router_needs():
    text = frr.render_daemons(parse_document(lab()).nodes["r2"].routing)
    assert "ospfd=yes\n" in text and "bgpd=yes\n" in text and "ospf6d=no\n" in text and "zebra=" not in text


def test_daemon_and_vtysh_argv_name_the_instance_only(monkeypatch, tmp_path):
    monkeypatch.setenv("TOPOLAB_RUN_DIR", str(tmp_path))
    argv = frr.daemon_argv("lab1", "r1", "ospfd")
    sock = str(tmp_path / "lab1" / "frr-sock" / "tl-lab1-r1")
    assert argv[0] == "/usr/lib/frr/ospfd" and "-N" not in argv
    assert argv[argv.index("--vty_socket") + 1] == sock and argv[argv.index("-z") + 1] == f"{sock}/zserv.api"
    assert argv[argv.index("-i") + 1] == f"{sock}/ospfd.pid" and argv[argv.index("-P") + 1] == "0"
    vty = frr.vtysh_argv("lab1", "r1", "-c", "show ip route")
    assert vty[vty.index("-N") + 1] == "tl-lab1-r1" and vty[vty.index("--vty_socket") + 1] == str(tmp_path / "lab1" / "frr-sock")
    assert vty[:vty.index("/usr/bin/vtysh")] == ["setpriv", "--reuid=frr", "--regid=frrvty", "--clear-groups",
                                                 "--inh-caps=-all", "--"]
    with pytest.raises((ApplyError, TopologyError)):
        frr.daemon_argv("lab1", "r1", "/bin/sh")
    with pytest.raises((ApplyError, TopologyError)):
        frr.vtysh_argv("lab1", "../r1")


def test_status_parsing_of_vtysh_json_answers():
    cmds = ["show ip route summary json", "show ip ospf neighbor json", "show bgp summary json"]
    text = ('{"routes":[], "routesTotal":13}\n'
            '{"neighbors":{"10.255.0.2":[{"nbrState":"Full/-","ifaceName":"eth0:10.0.12.1"}]}}\n'
            '% some warning line\n'
            '{"ipv4Unicast":{"peers":{"10.0.12.2":{"remoteAs":65002,"state":"Established","pfxRcd":3}}}}\n')
    st = frr_status.parse_status(cmds, text)
    assert st["routes"] == 13
    assert st["ospf"] == [{"id": "10.255.0.2", "interface": "eth0", "state": "Full/-"}]
    assert st["bgp"] == [{"peer": "10.0.12.2", "af": "ipv4Unicast", "asn": 65002, "state": "Established",
                          "prefixes": 3}]


# ---------------------------------------------------------------------------------------------- plan


def test_plan_starts_frr_then_reloads_a_changed_routing_without_rebuilding_the_node():
    topo = parse_document(lab())
    inv = Inventory("lab1")
    steps = planning.plan(topo, "lab1", inv)
    assert [(s.action, s.node) for s in steps if s.phase == "frr"] == [("frr.start", "r1"), ("frr.start", "r2")]
    # deployed: every daemon runs, the applied hashes match -> nothing to do for FRR
    running = Inventory("lab1", signatures=planning.signatures(topo),
                        processes={frr.role(n, d): 1 for n in ("r1", "r2") for d in topo.nodes[n].routing.daemons()},
                        frr_applied={n: frr.config_hash(topo, n) for n in ("r1", "r2")})
    for ns in [naming.fabric_namespace("lab1")] + [naming.node_namespace("lab1", n) for n in ("r1", "r2", "h1")]:
        running.namespaces[ns] = NamespaceState(ns)
    assert not [s for s in planning.plan(topo, "lab1", running) if s.phase == "frr"]
    # a changed cost: the signature (rebuild) stays, the configuration hash changes -> reload r1 only
    doc = lab()
    doc["nodes"]["r1"]["routing"]["ospf"]["cost"] = {"eth0": 50}
    changed = parse_document(doc)
    assert planning.signatures(changed) == planning.signatures(topo)
    assert [(s.action, s.node) for s in planning.plan(changed, "lab1", running) if s.node in ("r1", "r2")
            and s.phase in ("frr", "remove")] == [("frr.reload", "r1")]
    # routing removed from r2 -> its FRR is stopped
    gone = copy.deepcopy(lab())
    del gone["nodes"]["r2"]["routing"]
    del gone["nodes"]["r1"]["routing"]["bgp"]
    acts = [(s.action, s.node) for s in planning.plan(parse_document(gone), "lab1", running) if s.node in ("r1", "r2")]
    assert ("remove.frr", "r2") in acts and ("frr.reload", "r1") in acts


def test_a_lab_without_routing_keeps_its_signatures():
    doc = lab()
    for n in ("r1", "r2"):
        del doc["nodes"][n]["routing"]
    plain = parse_document(doc)
    sig = planning.signatures(plain)
    assert sig == planning.signatures(parse_document(lab()))  # routing is reloaded, never a rebuild


# ---------------------------------------------------------------------------------------------- containerlab


def test_containerlab_export_binds_the_frr_files_of_each_router():
    text, warnings = to_containerlab(parse_document(lab()))
    assert "frr/r1/frr.conf:/etc/frr/frr.conf" in text and "frr/r1/daemons:/etc/frr/daemons" in text
    assert "quay.io/frrouting/frr" in text
    assert any(w.path == "nodes.r1.routing" and "frr/r1/frr.conf" in w.message for w in warnings)
    files = frr.containerlab_files(parse_document(lab()))
    assert files["frr/r1/frr.conf"] == frr.render_config(parse_document(lab()), "r1")
    assert "bgpd=yes" in files["frr/r2/daemons"]


@pytest.mark.parametrize("key", ["\u00b2", "\u0663", "\uff11"])
def test_non_ascii_digits_are_no_area_id(key):
    """Found by the fuzz: '²'.isdigit() is True but int('²') raises ValueError (and int('٣') is 3)."""
    doc = lab()
    doc["nodes"]["r2"]["routing"]["ospf"]["areas"] = {key: {"interfaces": ["eth0"]}}
    assert "is not an area id" in problems(doc)[f"nodes.r2.routing.ospf.areas.{key}"]
