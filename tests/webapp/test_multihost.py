"""A lab across three simulated hosts, through the API (issue 13): each host a real Celery agent with its own
host name, queue, name tag (TOPOLAB_HOST_TAG) and underlay namespace on a test underlay bridge, announcing itself
by heartbeat; the web tier places the lab, each host builds its part, VXLAN carries the frames over a real UDP
underlay.

The seed lab with r1 and h1 on host a, h2 (and the tiny VM, when the image is there) on host b: h1 pings h2, h2
gets its lease from r1's dnsmasq across the tunnel, h1 reaches the ISP through r1's SNAT, and the underlay carries
UDP 4789 with the lab's VNI. A second lab with the identical document on hosts b and c never sees the first's
frames. A host stopped during a deploy fails the run naming it; after it comes back the next deploy finishes.
Destroy leaves every host's inventory as it was."""
from __future__ import annotations

import os
import re
import subprocess
import time
import uuid

import pytest
from django.contrib.auth import get_user_model
from pipeline import isp_namespace, seed_document, vm_supported
from rest_framework.test import APIClient
from simhost import SimHost, inventory, sh, simulated_hosts, up, wait_for
from support import UdpCapture, netns_exec, wait_run

from webapp.accounts.models import Profile, Role
from webapp.checks.models import CheckResult
from webapp.labs.models import Lab
from webapp.runs import services
from webapp.runs.models import Run, RunEvent

pytestmark = [pytest.mark.webapp, pytest.mark.kernel, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

if os.geteuid() != 0:
    pytest.skip("simulated hosts need root", allow_module_level=True)

HOSTS = ["a", "b", "c"]


def seed(isp_bridge: str, pins: dict[str, str], *, vm: bool) -> dict:
    """The pipeline tests' seed lab (tests/pipeline.py) with `host:` keys that place its nodes."""
    doc = seed_document(isp_bridge, vm=vm)
    for node, host in pins.items():
        if node in doc["nodes"]:
            doc["nodes"][node]["host"] = host
    return doc


def leased(ns: str) -> str | None:
    out = netns_exec(ns, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
    match = re.search(r"inet (10\.0\.1\.(\d+))/24", out)
    return match.group(1) if match and 100 <= int(match.group(2)) <= 150 else None


@pytest.fixture
def isp(settings):
    """An "ISP" namespace at 203.0.113.1/24 behind a host bridge the operator lets labs use (tests/pipeline.py)."""
    with isp_namespace() as found:
        settings.TOPOLAB_UPLINK_BRIDGES = found["bridge"]
        yield found


@pytest.fixture
def sim(kernel_lock, topolab_subprocess_env, test_tmpdir, spawn):
    """Three simulated hosts with their agents running and announced (tests/simhost.py)."""
    before = inventory()
    with simulated_hosts(spawn, topolab_subprocess_env, test_tmpdir, HOSTS) as (underlay, hosts):
        yield underlay, hosts, before


def test_the_seed_lab_across_simulated_hosts(sim, isp, settings, tmp_path):
    underlay, hosts, before = sim
    settings.TOPOLAB_QUOTA_USER_RUNNING_LABS = 0  # three labs at once
    user = get_user_model().objects.create_user(f"mia{uuid.uuid4().hex[:6]}")
    Profile.objects.create(user=user, role=Role.INSTRUCTOR)  # may use the operator's ISP bridge
    api = APIClient()
    api.force_authenticate(user)
    with_vm = vm_supported()
    labs: list[Lab] = []

    def deploy(lab: Lab, timeout: float = 240) -> Run:
        answer = api.post(f"/api/labs/{lab.pk}/deploy/", format="json")
        assert answer.status_code == 202, answer.content
        return wait_run(answer.json()["id"], timeout)

    try:
        one = Lab.objects.create(owner=user, name="one", document={**seed(
            isp["bridge"], {"r1": "a", "h1": "a", "wan": "a", "h2": "b", "vm1": "b"}, vm=with_vm),
            "checks": CHECKS + (VM_CHECKS if with_vm else [])})
        labs.append(one)
        capture = UdpCapture(underlay.underlay["a"], tmp_path / "underlay-a.txt")
        run = deploy(one)
        assert run.status == "succeeded", (run.error, run.parts)
        assert sorted(run.parts) == ["a", "b"] and run.span["placement"]["h2"] == "b"
        vni = run.span["vnis"]["br-in"]
        events = list(RunEvent.objects.filter(run=run).order_by("seq"))
        seqs = [e.seq for e in events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "one sequence, no gaps"
        assert {e.payload.get("host") for e in events if e.type == "run.part"} == {"a", "b"}

        h1, h2 = f"tla-{one.lab_id}-h1", f"tlb-{one.lab_id}-h2"
        address = wait_for(lambda: leased(h2), 30, "h2's lease from r1 across the tunnel")
        assert (address, "52:54:00:00:00:02") in r1_leases(one, hosts["a"])  # r1's dnsmasq on host a gave it
        assert netns_exec(h1, ["ping", "-c", "2", "-W", "3", address]).returncode == 0, "h1 -> h2 across hosts"
        assert netns_exec(h1, ["ping", "-c", "1", "-W", "3", "203.0.113.1"]).returncode == 0, "h1 -> ISP by SNAT"
        seen = capture.stop()
        assert f"vni {vni}" in seen, seen[-2000:]
        # status: each host reports its part, the API answers one status of the lab
        body = api.get(f"/api/labs/{one.pk}/status/").json()
        assert {n: (v["state"], v["host"]) for n, v in body["nodes"].items() if n in ("r1", "h1", "h2")} == \
            {"r1": ("running", "a"), "h1": ("running", "a"), "h2": ("running", "b")}, body["nodes"]
        assert "52:54:00:00:00:02" in {lease["mac"] for lease in body["nodes"]["r1"]["leases"]}
        # consoles: each node's shell comes from the stream agent of the host that runs it
        assert address.encode() in console(user, one, "h2", b"ip -4 -o addr show dev eth0; hostname\n", b"10.0.1.")
        assert b"10.0.1.1/24" in console(user, one, "h1", b"ip -4 -o addr show dev eth0\n", b"10.0.1.1/24")
        if with_vm:
            vm_address = wait_for(lambda: next((ip for ip, mac in r1_leases(one, hosts["a"])
                                                if mac == "52:54:00:aa:bb:cc"), None), 120,
                                  "the VM's lease from r1 across the tunnel")
            assert netns_exec(h1, ["ping", "-c", "2", "-W", "3", vm_address]).returncode == 0, "h1 -> vm1"
            assert services.snapshot(one)["placement"]["vm1"] == "b"

        # The lab's checks: each runs on the host of its node, and what it reads of a node on another host it asks
        # of that host's stream agent (h2's leased address for h1's ping on a, r1's leases for vm1's address on b).
        answer = api.post(f"/api/labs/{one.pk}/check/", format="json")
        assert answer.status_code == 202, answer.content
        checked = wait_run(answer.json()["id"], 120)
        assert checked.status == "succeeded", (checked.error, checked.parts)
        assert sorted(checked.parts) == ["a", "b"]
        outcomes = {o["id"]: o for o in CheckResult.objects.get(run=checked).outcomes}
        assert all(o["passed"] for o in outcomes.values()), outcomes
        assert f"({address})" in outcomes["h1-h2"]["message"], outcomes["h1-h2"]
        if with_vm:
            assert outcomes["vm1-lease"]["message"] == f"vm1 eth0 has {vm_address}", outcomes["vm1-lease"]
        # the agents answer only reads of their own nodes, of a deployed lab, of one of the two kinds
        assert peer_read("a", {"lab": one.pk, "node": "h2", "read": "addresses", "interface": "eth0"}) == \
            {"ok": False, "message": f"node 'h2' of lab {one.pk} does not run on host a"}
        assert peer_read("b", {"lab": one.pk, "node": "h2", "read": "addresses", "interface": "eth0"})["value"] == \
            [f"{address}/24"]
        for bad in ({"lab": str(one.pk), "node": "h2", "read": "addresses", "interface": "eth0"},
                    {"lab": one.pk, "node": "h2", "read": "config", "interface": "eth0"},
                    {"lab": one.pk, "node": "h2", "read": "addresses", "interface": "../../../etc/shadow"},
                    {"lab": one.pk + 1000, "node": "h2", "read": "addresses", "interface": "eth0"}):
            said = peer_read("b", bad)
            assert said["ok"] is False and said["message"], (bad, said)

        # A second lab with the identical document on hosts b and c: its own VNI, its own frames.
        two = Lab.objects.create(owner=user, name="two", document=seed(
            isp["bridge"], {"r1": "b", "h1": "b", "wan": "b", "h2": "c"}, vm=False))
        labs.append(two)
        run_two = deploy(two)
        assert run_two.status == "succeeded", (run_two.error, run_two.parts)
        assert run_two.span["vnis"]["br-in"] != vni
        h2_two = f"tlc-{two.lab_id}-h2"
        wait_for(lambda: leased(h2_two), 30, "lab two's h2 lease")
        sniff = subprocess.Popen(["nsenter", f"--net=/run/netns/{h2_two}", "--", "tcpdump", "-n", "-l", "-e",
                                  "-i", "eth0", "ether", "host", "52:54:00:00:00:02", "or", "icmp"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(1)
        netns_exec(h1, ["ping", "-c", "3", "-W", "1", "-b", "10.0.1.255"])  # lab one floods its segment
        netns_exec(h1, ["ping", "-c", "2", "-W", "1", "10.0.1.101"])
        sniff.terminate()
        other = sniff.communicate(timeout=10)[0]
        assert "10.0.1.1 >" not in other, f"lab two saw lab one's frames:\n{other}"

        # A host stopped during a deploy fails the run naming it; back again, the next deploy finishes.
        third = Lab.objects.create(owner=user, name="three", document=seed(
            isp["bridge"], {"r1": "a", "h1": "a", "wan": "a", "h2": "c"}, vm=False))
        labs.append(third)
        hosts["c"].kill()
        answer = api.post(f"/api/labs/{third.pk}/deploy/", format="json")
        assert answer.status_code == 202, answer.content
        failed = wait_run(answer.json()["id"], 60)
        assert failed.status == "failed" and failed.error.startswith("host c:"), failed.error
        hosts["c"].start()
        wait_for(lambda: up("c"), 30, "host c back")
        again = deploy(third)
        assert again.status == "succeeded", (again.error, again.parts)
        assert wait_for(lambda: leased(f"tlc-{third.lab_id}-h2"), 30, "three's h2 lease")

        # A host down when its lab is destroyed removes its part when its agent comes back.
        hosts["c"].kill()
        answer = api.post(f"/api/labs/{third.pk}/destroy/", format="json")
        missed = wait_run(answer.json()["id"], 60)
        assert missed.status == "failed" and missed.error.startswith("host c:"), missed.error
        assert sh("ip", "netns", "list").stdout.count(f"tlc-{third.lab_id}") > 0  # c's part is still there
        assert f"tla-{third.lab_id}" not in sh("ip", "netns", "list").stdout  # a did its part
        hosts["c"].start()
        wait_for(lambda: f"tlc-{third.lab_id}" not in sh("ip", "netns", "list").stdout, 60,
                 "host c removed its part of the destroy it missed")
        assert wait_run(missed.pk, 10).status == "succeeded"  # the destroy is finished after all
        assert not services.snapshot(third)["deployed"]
    finally:
        if hosts["c"].proc is not None and hosts["c"].proc.poll() is not None:  # killed above and not back
            hosts["c"].start()
            wait_for(lambda: up("c"), 30, "host c back")
        for lab in labs:
            answer = api.post(f"/api/labs/{lab.pk}/destroy/", format="json")
            if answer.status_code == 202:
                done = wait_run(answer.json()["id"], 120)
                assert done.status == "succeeded", (lab.name, done.error, done.parts)
    after = inventory()
    leftovers = {k: sorted(set(after[k]) - set(before[k])) for k in ("namespaces", "links")}
    assert leftovers == {"namespaces": [n for n in leftovers["namespaces"] if n.startswith("tltest-")],
                         "links": [n for n in leftovers["links"] if n.startswith("tlbr") or n.startswith("tlisp")]}
    assert after["nft"] == before["nft"]


CHECKS = [
    {"id": "h1-h2", "title": "h1 reaches h2 on the other host", "ping": {"from": "h1", "to": "h2"}},
    {"id": "h2-lease", "title": "h2 leased across the tunnel", "wait": 10,
     "address": {"node": "h2", "interface": "eth0", "in": "10.0.1.100-10.0.1.150"}},
]
VM_CHECKS = [
    {"id": "vm1-lease", "title": "vm1 leased from r1 on the other host", "wait": 30,
     "address": {"node": "vm1", "interface": "eth0", "in": "10.0.1.100-10.0.1.150"}},
]


def peer_read(host: str, message: dict) -> dict:
    """What host `host`'s stream agent answers to a lab.read (webapp.agent.reads), as a check part asks it."""
    from asgiref.sync import async_to_sync

    from webapp.consoles import conf
    from webapp.consoles.services import ask_agent

    answer = async_to_sync(ask_agent)({"type": "lab.read", **message}, channel=conf.agent_channel(host), timeout=10)
    return {k: v for k, v in answer.items() if k != "type"}


def console(user, lab: Lab, node: str, command: bytes, needle: bytes, timeout: float = 30) -> bytes:
    """What a shell console of `node` prints for `command`, through the real consumer and stream agents."""
    import asyncio

    from channels.testing import WebsocketCommunicator
    from django.test import Client

    from webapp.asgi import application

    web = Client()
    web.force_login(user)
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost"),
               (b"cookie", f"sessionid={web.cookies['sessionid'].value}".encode())]

    async def talk() -> bytes:
        comm = WebsocketCommunicator(application, f"/ws/labs/{lab.pk}/console/{node}/", headers=headers)
        connected, _ = await comm.connect(timeout=10)
        assert connected
        out, sent = b"", False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while needle not in out or not sent:
                left = deadline - loop.time()
                assert left > 0, f"{needle!r} not seen from {node}'s console: {out[-800:]!r}"
                message = await comm.receive_output(timeout=left)
                assert message["type"] != "websocket.close", f"{node}'s console closed: {out[-800:]!r}"
                if message.get("text") and '"open"' in message["text"] and not sent:
                    await comm.send_to(bytes_data=command)
                    sent, out = True, b""
                elif message.get("bytes") and sent:
                    out += message["bytes"]
            return out
        finally:
            await comm.disconnect()

    return asyncio.run(talk())


def r1_leases(lab: Lab, host: SimHost) -> list[tuple[str, str]]:
    """(address, mac) of r1's dnsmasq leases, read from the lease file as `host`'s agent names it (its tag and
    run directory); the status of a lab across hosts is not built yet."""
    from netops import dnsmasq

    keys = ("TOPOLAB_HOST_TAG", "TOPOLAB_RUN_DIR")
    saved = {k: os.environ.get(k) for k in keys}
    try:
        for k in keys:
            if host.env.get(k):
                os.environ[k] = host.env[k]
            else:
                os.environ.pop(k, None)
        return [(str(lease.ip), lease.mac) for lease in dnsmasq.leases(lab.lab_id, "r1", "eth0")]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
