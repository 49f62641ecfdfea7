"""The editor's "Address the lab" and "OSPF everywhere" (static/js/editor/autoaddress.js), run by node on a drawn
triangle: the result validates in netops, every interface has an address, and what the user typed is kept."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from netops import kinds
from netops.topology import parse_document

MODULE = Path(__file__).resolve().parents[2] / "static" / "js" / "editor" / "autoaddress.js"
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node")


def run_js(doc: dict, *calls: str) -> dict:
    registry = {k["name"]: k for k in kinds.public()["kinds"]}  # what GET /api/kinds/ gives the editor
    script = (f"import {{ addressLab, ospfEverywhere }} from {json.dumps(str(MODULE))};\n"
              f"const doc = {json.dumps(doc)};\nconst KINDS = {json.dumps(registry)};\n" +
              "".join(f"{c}(doc, KINDS);\n" for c in calls) +
              "process.stdout.write(JSON.stringify(doc));\n")
    done = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def drawn() -> dict:
    """A triangle of routers with a LAN of two hosts on a bridge behind r1, as drawn: no addresses but one."""
    nodes = {f"r{i}": {"kind": "router", "interfaces": {"eth0": {}, "eth1": {}}} for i in (1, 2, 3)}
    nodes["r1"]["interfaces"]["eth2"] = {}
    nodes["r2"]["interfaces"]["eth0"] = {"address": "10.0.0.0/31"}  # typed by the user: kept (and its pair)
    nodes["lan"] = {"kind": "bridge"}
    nodes["h1"] = {"kind": "host", "interfaces": {"eth0": {}}}
    nodes["h2"] = {"kind": "host", "interfaces": {"eth0": {"address": "dhcp"}}}
    links = [{"endpoints": ["r1:eth0", "r2:eth0"]}, {"endpoints": ["r1:eth1", "r3:eth0"]},
             {"endpoints": ["r2:eth1", "r3:eth1"]}, {"endpoints": ["r1:eth2", "lan"]},
             {"endpoints": ["h1:eth0", "lan"]}, {"endpoints": ["h2:eth0", "lan"]}]
    return {"version": 1, "name": "drawn", "nodes": nodes, "links": links}


def test_address_the_lab_then_ospf_everywhere_gives_a_valid_routed_lab():
    doc = run_js(drawn(), "addressLab", "ospfEverywhere")
    topo = parse_document(doc)
    n = topo.nodes
    assert str(n["r2"].interfaces["eth0"].addresses[0]) == "10.0.0.0/31"  # the user's, untouched
    assert n["r1"].interfaces["eth0"].addresses == ()  # its peer was typed by the user: not guessed
    assert n["h2"].interfaces["eth0"].dhcp
    assert str(n["r1"].interfaces["eth2"].addresses[0]).endswith(".254/24")
    assert str(n["h1"].interfaces["eth0"].addresses[0]).endswith(".1/24")
    p2p = [str(n["r1"].interfaces["eth1"].addresses[0]), str(n["r3"].interfaces["eth0"].addresses[0])]
    assert [a.split("/")[1] for a in p2p] == ["31", "31"] and "10.0.0.0/31" not in p2p
    loopbacks = {str(n[r].routing.loopback[0]) for r in ("r1", "r2", "r3")}
    assert len(loopbacks) == 3 and all(lb.startswith("10.255.") for lb in loopbacks)
    ospf = n["r1"].routing.ospf
    assert ospf.areas[0].interfaces == ("eth1", "eth2") and ospf.areas[0].passive == ("lo",)


def test_both_actions_leave_an_addressed_lab_and_existing_ospf_alone():
    once = run_js(drawn(), "addressLab", "ospfEverywhere")
    once["nodes"]["r3"]["routing"]["ospf"]["areas"] = {"1": {"interfaces": ["eth0", "eth1"], "passive": ["lo"]}}
    again = run_js(once, "addressLab", "ospfEverywhere")
    assert again == once
