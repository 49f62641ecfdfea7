"""A running router's routing table and neighbors through the API, the real agent (Celery worker, root) and the
router's own FRR in the lab's cell: the owner sees routes and Full/Established neighbors; another user gets 404, a
host or a router without routing a 400 naming it, an undeployed lab 409; a table of more than 500 routes is cut,
with a note."""
from __future__ import annotations

import ipaddress
import os
import subprocess
import time

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient
from support import wait_run

from netops import frr_status, naming, procs
from webapp.labs.models import Lab

pytestmark = [pytest.mark.webapp, pytest.mark.kernel, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

if os.geteuid() != 0:
    pytest.skip("the agent needs root", allow_module_level=True)

OSPF = {"hello": 1, "dead": 4}
STATICS = 520  # kernel routes added on r1 as a console could: more than the 500 an answer carries


def document() -> dict:
    """r1 - r2 over OSPF (loopbacks announced), r1 - r3 over eBGP; h1 behind r1; r4 a router without routing."""
    return {
        "version": 1, "name": "routing-view",
        "nodes": {
            "r1": {"kind": "router",
                   "interfaces": {"eth0": {"address": "10.0.12.1/30"}, "eth1": {"address": "198.51.100.1/30"},
                                  "eth2": {"address": "10.1.1.254/24"}},
                   "routing": {"loopback": "10.255.0.1/32",
                               "ospf": {"areas": {0: {"interfaces": ["eth0"], "passive": ["lo", "eth2"]}}, **OSPF},
                               "bgp": {"asn": 65001, "neighbors": [{"address": "198.51.100.2", "asn": 65003}],
                                       "networks": ["10.1.1.0/24"]}}},
            "r2": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.12.2/30"}},
                   "routing": {"loopback": "10.255.0.2/32",
                               "ospf": {"areas": {0: {"interfaces": ["eth0"], "passive": ["lo"]}}, **OSPF}}},
            "r3": {"kind": "router", "interfaces": {"eth0": {"address": "198.51.100.2/30"},
                                                    "eth1": {"address": "203.0.113.1/24"}},
                   "routing": {"bgp": {"asn": 65003, "router_id": "10.255.0.3",
                                       "neighbors": [{"address": "198.51.100.1", "asn": 65001}],
                                       "networks": ["203.0.113.0/24"]}}},
            "r4": {"kind": "router", "interfaces": {"eth0": {"address": "10.1.1.253/24"}}},
            "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.1.1.1/24"}}},
            "h3": {"kind": "host", "interfaces": {"eth0": {"address": "203.0.113.10/24"}}},
            "sw": {"kind": "bridge"},
        },
        "links": [{"endpoints": ["r1:eth0", "r2:eth0"]}, {"endpoints": ["r1:eth1", "r3:eth0"]},
                  {"endpoints": ["r1:eth2", "sw"]}, {"endpoints": ["h1:eth0", "sw"]}, {"endpoints": ["r4:eth0", "sw"]},
                  {"endpoints": ["r3:eth1", "h3:eth0"]}],
    }


def client(user) -> APIClient:
    c = APIClient()
    c.force_authenticate(user)
    return c


@pytest.fixture(autouse=True)
def no_throttle(settings):
    settings.TOPOLAB_THROTTLE_ROUTING = None  # the test asks again and again while FRR converges


def wait_view(api: APIClient, url: str, ready, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = api.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        if ready(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def test_the_owner_sees_routes_and_neighbors_others_are_refused(celery_worker, kernel_lock):
    User = get_user_model()
    owner, mallory = User.objects.create_user("rita"), User.objects.create_user("mallory-r")
    lab = Lab.objects.create(owner=owner, name="routing-view", document=document())
    api, other = client(owner), client(mallory)
    url = f"/api/labs/{lab.pk}/nodes/r1/routing/"

    # not deployed yet: 409, and nothing reaches the agent
    response = api.get(url)
    assert response.status_code == 409, response.content
    assert response.json()["errors"][0]["path"] == "nodes.r1"
    try:
        run = api.post(f"/api/labs/{lab.pk}/deploy")
        assert run.status_code == 202, run.content
        assert wait_run(run.json()["id"], 180).status == "succeeded"
        routes = "".join(f"route add blackhole 10.{200 + i // 250}.{i % 250}.0/24\n" for i in range(STATICS))
        subprocess.run(["ip", "-n", naming.node_namespace(lab.lab_id, "r1"), "-batch", "-"], input=routes,
                       text=True, check=True)

        def converged(body: dict) -> bool:
            # the session's prefix count and the route table are read one after the other: wait for both
            prefixes = {r["prefix"] for r in body["routes"] if r["selected"]}
            return ([n["state"].split("/")[0] for n in body["ospf"]] == ["Full"]
                    and [(s["state"], s["received"]) for s in body["bgp"]] == [("Established", 1)]
                    and {"10.255.0.2/32", "203.0.113.0/24"} <= prefixes and body["routes_total"] > STATICS)

        body = wait_view(api, url, converged)
        assert converged(body), body
        assert body["node"] == "r1" and body["daemons"] == {"zebra": True, "ospfd": True, "bgpd": True}
        (neighbor,) = body["ospf"]
        assert neighbor["id"] == "10.255.0.2" and neighbor["interface"] == "eth0"
        assert neighbor["address"] == "10.0.12.2"
        (session,) = body["bgp"]
        assert session["peer"] == "198.51.100.2" and session["asn"] == 65003 and session["interface"] == "eth1"
        assert session["received"] == 1  # r3's 203.0.113.0/24
        routes = {(r["prefix"], r["protocol"]): r for r in body["routes"]}
        ospf = routes[("10.255.0.2/32", "ospf")]
        assert ospf["installed"] and ospf["nexthops"][0]["via"] == "10.0.12.2"
        assert ospf["nexthops"][0]["interface"] == "eth0"
        assert routes[("203.0.113.0/24", "bgp")]["nexthops"][0]["via"] == "198.51.100.2"
        assert routes[("10.1.1.0/24", "connected")]["nexthops"][0]["interface"] == "eth2"
        assert sum(r["protocol"] == "kernel" for r in body["routes"]) > 400
        # 520 kernel routes and the rest: cut at 500 (sorted by prefix), and said so
        assert body["routes_total"] > STATICS and len(body["routes"]) == frr_status.ROUTE_LIMIT
        assert body["truncated"] is True
        assert [r["prefix"] for r in body["routes"]] == sorted(
            (r["prefix"] for r in body["routes"]), key=lambda p: (ipaddress.ip_network(p).version, ipaddress.ip_network(p)))
        kernel = sum(r["protocol"] == "kernel" for r in body["routes"])
        assert f"showing 500 of {body['routes_total']} routes: {kernel} of {STATICS} kernel" in body["notes"][0]
        assert kernel == frr_status.ROUTE_LIMIT - (body["routes_total"] - STATICS)  # only kernel routes were cut

        # another user: the lab does not exist for them, whatever the node
        for path in ("r1", "h1", "nope"):
            response = other.get(f"/api/labs/{lab.pk}/nodes/{path}/routing/")
            assert response.status_code == 404, response.content
        # the owner, at nodes that run no FRR: a clear 400 at the node
        host = api.get(f"/api/labs/{lab.pk}/nodes/h1/routing/")
        assert host.status_code == 400, host.content
        assert host.json()["errors"] == [{"path": "nodes.h1", "message": "h1 is a host, not a router: only routers "
                                                                         "with routing: run FRR"}]
        bridge = api.get(f"/api/labs/{lab.pk}/nodes/sw/routing/")
        assert bridge.status_code == 400 and bridge.json()["errors"][0]["path"] == "nodes.sw"
        plain = api.get(f"/api/labs/{lab.pk}/nodes/r4/routing/")
        assert plain.status_code == 400 and plain.json()["errors"][0]["path"] == "nodes.r4.routing", plain.content
        missing = api.get(f"/api/labs/{lab.pk}/nodes/r9/routing/")
        assert missing.status_code == 400 and missing.json()["errors"][0]["path"] == "nodes.r9"
        # a name that is no node name never matches the route
        assert api.get(f"/api/labs/{lab.pk}/nodes/..%2Fr1/routing/").status_code == 404
        assert api.get(f"/api/labs/{lab.pk}/nodes/r1;id/routing/").status_code == 404

        # r2's view: its one neighbor, and r1's loopback over OSPF
        r2 = wait_view(api, f"/api/labs/{lab.pk}/nodes/r2/routing/",
                       lambda b: any(r["prefix"] == "10.255.0.1/32" for r in b["routes"]))
        assert [n["id"] for n in r2["ospf"]] == ["10.255.0.1"] and r2["bgp"] == [] and not r2["truncated"]
        assert r2["daemons"] == {"zebra": True, "ospfd": True}
    finally:
        destroy = api.post(f"/api/labs/{lab.pk}/destroy")
        assert wait_run(destroy.json()["id"], 120).status == "succeeded"
    assert api.get(url).status_code == 409
    assert procs.find(lab.lab_id) == []  # no FRR daemon (nor anything else) of the lab is left
