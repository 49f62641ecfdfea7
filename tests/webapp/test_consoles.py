"""Consoles and captures end to end below the browser: the real ASGI app (auth, origin check, consumers), the real
channel layer on the test Redis, the real stream agent (`python -m webapp.agent`, root), real namespaces.

Three people: the owner (olga), an outsider (mallory) and nobody signed in.
"""
from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import time

import dpkt
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from support import KERNEL_LOCK, lab_processes

from netops import engine, naming, procs
from netops.topology import parse_document
from webapp.asgi import application
from webapp.consoles.models import Capture, ConsoleSession
from webapp.labs.models import Lab

pytestmark = [
    pytest.mark.webapp,
    pytest.mark.kernel,  # deploys real namespaces: "-m 'not kernel'" runs leave it out
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(os.geteuid() != 0, reason="consoles and captures need root (real namespaces)"),
]

ORIGIN = b"http://localhost"
DOC = {
    "version": 1,
    "name": "consoles",
    "nodes": {
        "r1": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.1.254/24"}}},
        "br-in": {"kind": "bridge"},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}},
               "routes": [{"to": "default", "via": "10.0.1.254"}]},
    },
    "links": [{"endpoints": ["r1:eth0", "br-in"]}, {"endpoints": ["h1:eth0", "br-in"]}],
}



def cookie_of(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.fixture
def lab(olga):
    """Olga's lab, deployed with netops.engine.up for the test and destroyed after it (kernel lock held)."""
    KERNEL_LOCK.acquire()
    try:
        lab = Lab.objects.create(owner=olga, name="consoles", document=DOC)
        engine.up(parse_document(DOC), lab=lab.lab_id)
        try:
            yield lab
        finally:
            engine.down(lab.lab_id)
            assert procs.find(lab.lab_id) == []
    finally:
        KERNEL_LOCK.release()


def communicator(path: str, cookie: bytes | None = None, origin: bytes = ORIGIN) -> WebsocketCommunicator:
    headers = [(b"origin", origin), (b"host", b"localhost")]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, path, headers=headers)


async def read_terminal(comm: WebsocketCommunicator, needle: bytes, timeout: float = 15) -> tuple[bytes, list]:
    """Terminal bytes until `needle`, and the status messages seen on the way."""
    out, statuses = b"", []
    deadline = time.monotonic() + timeout
    while needle not in out:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} not seen; got {out[-1500:]!r} {statuses}")
        message = await comm.receive_output(timeout=left)
        if message["type"] == "websocket.close":
            raise AssertionError(f"closed ({message.get('code')}) before {needle!r}: {statuses} {out[-500:]!r}")
        if message.get("bytes") is not None:
            out += message["bytes"]
        elif message.get("text") is not None:
            statuses.append(json.loads(message["text"]))
    return out, statuses


async def refused_with(path: str, cookie: bytes | None, origin: bytes = ORIGIN) -> tuple[int | None, str]:
    """(close code, message) of a refused WebSocket; close code None when the handshake itself was refused."""
    comm = communicator(path, cookie, origin)
    connected, _ = await comm.connect(timeout=10)
    message = ""
    try:
        if not connected:
            return None, "handshake refused"
        while True:
            out = await comm.receive_output(timeout=10)
            if out["type"] == "websocket.close":
                return out.get("code"), message
            if out.get("text"):
                message = json.loads(out["text"]).get("message", "")
    finally:
        await comm.disconnect()  # end the consumer inside this event loop, not at its shutdown


async def joined(parts) -> bytes:
    return b"".join([part async for part in parts])


def wait_for(predicate, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def console_processes(lab: Lab, session: ConsoleSession) -> list:
    return procs.find(lab.lab_id, f"console:s{session.pk}")


# ---------------------------------------------------------------------------------------------- consoles


def test_a_console_on_a_host_runs_commands_there_and_closing_it_leaves_no_shell(stream_agent, lab, olga):
    async def session():
        comm = communicator(f"/ws/labs/{lab.pk}/console/h1/", cookie_of_olga)
        connected, _ = await comm.connect(timeout=10)
        assert connected
        await read_terminal(comm, b"$ ")  # the prompt, once the agent opened the shell
        await comm.send_to(text_data=json.dumps({"type": "resize", "rows": 33, "cols": 120}))
        await comm.send_to(bytes_data=b"ip -br addr; stty size\n")
        out, _ = await read_terminal(comm, b"33 120")
        await comm.disconnect()
        return out

    cookie_of_olga = cookie_of(olga)
    out = async_to_sync(session)()
    line = next(x for x in out.decode(errors="replace").splitlines() if x.startswith("eth0"))
    assert "10.0.1.1/24" in line
    record = ConsoleSession.objects.get(lab=lab, node="h1", kind="console")
    assert record.username == "olga"
    wait_for(lambda: not console_processes(lab, record), "the shell to end")
    wait_for(lambda: ConsoleSession.objects.get(pk=record.pk).ended is not None, "the session to be closed")
    record.refresh_from_db()
    assert record.bytes_in == len(b"ip -br addr; stty size\n") and record.bytes_out > 0


def test_two_consoles_at_once_are_separate_shells(stream_agent, lab, olga):
    cookie = cookie_of(olga)

    async def both():
        a = communicator(f"/ws/labs/{lab.pk}/console/h1/", cookie)
        b = communicator(f"/ws/labs/{lab.pk}/console/r1/", cookie)
        assert (await a.connect(timeout=10))[0] and (await b.connect(timeout=10))[0]
        await read_terminal(a, b"$ ")
        await read_terminal(b, b"$ ")
        await a.send_to(bytes_data=b"echo A-$$-$((40+2))\n")
        await b.send_to(bytes_data=b"ip -br addr show dev eth0\n")
        out_a, _ = await read_terminal(a, b"-42")
        out_b, _ = await read_terminal(b, b"10.0.1.254/24")
        await a.disconnect()
        await b.disconnect()
        return out_a, out_b

    out_a, out_b = async_to_sync(both)()
    assert b"10.0.1.1" not in out_b
    wait_for(lambda: lab_processes(lab.lab_id) == [], "both shells to end")


def test_consoles_are_refused_to_strangers_foreign_origins_and_bad_nodes(stream_agent, lab, olga, mallory):
    path = f"/ws/labs/{lab.pk}/console/h1/"
    refused = async_to_sync(refused_with)
    assert refused(path, None)[0] == 4403  # not signed in
    assert refused(path, cookie_of(mallory))[0] == 4404  # another user's lab does not exist for her
    assert refused(path, cookie_of(olga), origin=b"http://evil.example")[0] is None  # foreign Origin: no handshake
    for node in ("h9", "h1;rm", "h1%20-x", "br-in", "-h1"):
        code, message = refused(f"/ws/labs/{lab.pk}/console/{node}/", cookie_of(olga))
        assert code == 4404, (node, code, message)
    # in the document but not running: the agent says so
    Lab.objects.filter(pk=lab.pk).update(document={**DOC, "nodes": {**DOC["nodes"], "h2": {"kind": "host"}}})
    code, message = refused(f"/ws/labs/{lab.pk}/console/h2/", cookie_of(olga))
    assert code == 4409 and "not running" in message
    assert lab_processes(lab.lab_id) == []
    assert ConsoleSession.objects.filter(node="h2", ended__isnull=False).count() == 1


# ---------------------------------------------------------------------------------------------- FRR (vtysh)

FRR_DOC = {
    "version": 1,
    "name": "vtysh",
    "nodes": {
        name: {"kind": "router", "interfaces": {"eth0": {"address": f"10.0.12.{i}/30"}},
               "routing": {"loopback": f"10.255.0.{i}/32",
                           "ospf": {"areas": {0: {"interfaces": ["eth0"], "passive": ["lo"]}}, "hello": 1, "dead": 4}}}
        for i, name in ((1, "r1"), (2, "r2"))},
    "links": [{"endpoints": ["r1:eth0", "r2:eth0"]}],
}


@pytest.fixture
def frr_lab(olga):
    """Olga's two OSPF routers, deployed for the test (kernel lock held)."""
    KERNEL_LOCK.acquire()
    try:
        lab = Lab.objects.create(owner=olga, name="vtysh", document=FRR_DOC)
        engine.up(parse_document(FRR_DOC), lab=lab.lab_id)
        try:
            yield lab
        finally:
            engine.down(lab.lab_id)
            assert procs.find(lab.lab_id) == []
    finally:
        KERNEL_LOCK.release()


def test_vtysh_through_the_websocket_answers_show_ip_route_for_that_router_only(stream_agent, frr_lab, olga):
    cookie = cookie_of(olga)

    async def session():
        comm = communicator(f"/ws/labs/{frr_lab.pk}/console/r1/?kind=vtysh", cookie)
        assert (await comm.connect(timeout=10))[0]
        await read_terminal(comm, b"r1# ")
        deadline = time.monotonic() + 15
        while True:  # OSPF needs a few seconds: ask again until r2's loopback is there
            await comm.send_to(bytes_data=b"show ip route\r")
            out, _ = await read_terminal(comm, b"r1# ")
            if b"10.255.0.2/32" in out or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        await comm.disconnect()
        return out.decode(errors="replace")

    text = async_to_sync(session)()
    assert "C>* 10.255.0.1/32 is directly connected, lo" in text  # r1's own loopback
    assert "O>* 10.255.0.2/32" in text  # r2's, learnt over OSPF: r2's is not "connected" here
    assert "C>* 10.255.0.2/32" not in text
    record = ConsoleSession.objects.get(lab=frr_lab, node="r1 (vtysh)", kind="console")
    wait_for(lambda: not console_processes(frr_lab, record), "vtysh to end")


def test_vtysh_is_refused_on_hosts_routers_without_routing_unknown_kinds_and_to_strangers(stream_agent, lab, olga,
                                                                                        mallory):
    refused = async_to_sync(refused_with)
    assert refused(f"/ws/labs/{lab.pk}/console/r1/?kind=vtysh", cookie_of(mallory))[0] == 4404
    assert refused(f"/ws/labs/{lab.pk}/console/r1/?kind=vtysh", None)[0] == 4403
    for node, kind in (("h1", "vtysh"), ("r1", "vtysh"), ("r1", "bash"), ("r1", "vtysh;id")):
        code, message = refused(f"/ws/labs/{lab.pk}/console/{node}/?kind={kind}", cookie_of(olga))
        assert code == 4404, (node, kind, code, message)
    # routing: in the document but FRR not running (this lab was deployed without it): the agent refuses
    doc = copy.deepcopy(DOC)
    doc["nodes"]["r1"]["routing"] = {"ospf": {"areas": {0: {"interfaces": ["eth0"]}}}}
    Lab.objects.filter(pk=lab.pk).update(document=doc)
    code, message = refused(f"/ws/labs/{lab.pk}/console/r1/?kind=vtysh", cookie_of(olga))
    assert code == 4409 and "FRR is not running" in message
    assert lab_processes(lab.lab_id) == []


# ---------------------------------------------------------------------------------------------- captures


def test_a_capture_of_the_h1_link_lists_the_pings_live_and_downloads_as_pcap(stream_agent, lab, olga):
    client = Client()
    client.force_login(olga)
    answer = client.post(f"/api/labs/{lab.pk}/captures/", {"link": 1, "filter": "icmp"},
                         content_type="application/json")
    assert answer.status_code == 201, answer.content
    cap = answer.json()
    assert cap["status"] == "running" and cap["label"] == "h1:eth0 ↔ br-in"
    assert [p.role for p in procs.find(lab.lab_id)] == [f"capture:{cap['id']}"]

    cookie = cookie_of(olga)

    async def watch():
        comm = communicator(cap["live"], cookie)
        assert (await comm.connect(timeout=10))[0]
        seen: dict[int, dict] = {}
        pinged = False
        deadline = time.monotonic() + 30
        while not {"echo request", "echo reply"} <= {p["info"].split(" id=")[0] for p in seen.values()}:
            assert time.monotonic() < deadline, seen
            if not pinged:
                await asyncio.to_thread(ping)
                pinged = True
            message = json.loads(await comm.receive_from(timeout=10))
            if message["type"] == "packets":
                seen.update({p["no"]: p for p in message["packets"]})
        await comm.disconnect()
        return list(seen.values())

    def ping():
        done = procs.run(["ping", "-c", "3", "-i", "0.2", "10.0.1.254"],
                         namespace=naming.node_namespace(lab.lab_id, "h1"))
        assert done.returncode == 0

    live = async_to_sync(watch)()
    requests = [p for p in live if p["info"].startswith("echo request")]
    assert requests and requests[0]["src"] == "10.0.1.1" and requests[0]["dst"] == "10.0.1.254"
    assert all(p["proto"] == "ICMP" for p in live)

    stopped = client.post(f"/api/labs/{lab.pk}/captures/{cap['id']}/stop/").json()
    assert stopped["status"] == "stopped" and stopped["packets"] >= 6
    assert lab_processes(lab.lab_id) == []
    download = client.get(cap["download"])
    assert download.status_code == 200 and download["Content-Disposition"].startswith("attachment")
    raw = async_to_sync(joined)(download.streaming_content)  # streamed from the stream agent (async)
    frames = [dpkt.ethernet.Ethernet(buf) for _, buf in dpkt.pcap.Reader(__import__("io").BytesIO(raw))]
    icmp = [e.data.data for e in frames if isinstance(e.data, dpkt.ip.IP)]
    assert {m.type for m in icmp} == {0, 8} and len(icmp) == stopped["packets"]
    session = ConsoleSession.objects.get(capture__pk=cap["id"])
    assert session.kind == "capture" and session.ended is not None and session.bytes_out == len(raw)


@pytest.mark.parametrize("body, path, says", [
    ({"node": "h1", "interface": "eth0 -z /bin/sh"}, "interface", "is not an interface of h1"),
    ({"node": "h1", "interface": "-w"}, "interface", "is not an interface of h1"),
    ({"node": "h1; rm -rf /", "interface": "eth0"}, "node", "there is no node"),
    ({"link": 1, "filter": "-w /etc/passwd"}, "filter", "must not start with '-'"),
    ({"link": 1, "filter": "icmp; rm -rf /"}, "filter", "characters a BPF expression does not need"),
    ({"link": 1, "filter": "icmp\n-w /etc/passwd"}, "filter", "characters a BPF expression does not need"),
    ({"link": 1, "filter": "x" * 300}, "filter", "longer than"),
    ({"link": 1, "filter": "icmp and and"}, "filter", "syntax error"),  # compiled by the agent: tcpdump's words
    ({"link": 7}, "link", "there is no link"),
])
def test_injected_interfaces_and_filters_are_refused_and_start_no_tcpdump(stream_agent, lab, olga, body, path,
                                                                          says):
    client = Client()
    client.force_login(olga)
    answer = client.post(f"/api/labs/{lab.pk}/captures/", body, content_type="application/json")
    assert answer.status_code == 400, answer.content
    error = answer.json()["errors"][0]
    assert error["path"] == path and says in error["message"], error
    assert lab_processes(lab.lab_id) == []
    assert not Capture.objects.filter(status__in=Capture.ACTIVE).exists()


def test_captures_are_refused_to_strangers(stream_agent, lab, olga, mallory):
    stranger = Client()
    stranger.force_login(mallory)
    assert stranger.post(f"/api/labs/{lab.pk}/captures/", {"link": 1},
                         content_type="application/json").status_code == 404
    assert Client().post(f"/api/labs/{lab.pk}/captures/", {"link": 1},
                         content_type="application/json").status_code in (401, 403)
    owner = Client()
    owner.force_login(olga)
    cap = owner.post(f"/api/labs/{lab.pk}/captures/", {"link": 0}, content_type="application/json").json()
    try:
        assert stranger.get(cap["download"]).status_code == 404
        assert async_to_sync(refused_with)(cap["live"], cookie_of(mallory))[0] == 4404
        assert async_to_sync(refused_with)(cap["live"], None)[0] == 4403
        assert async_to_sync(refused_with)(cap["live"], cookie_of(olga), b"http://evil.example")[0] is None
    finally:
        owner.post(f"/api/labs/{lab.pk}/captures/{cap['id']}/stop/")
    assert lab_processes(lab.lab_id) == []


# ---------------------------------------------------------------------------------------------- capture limits


def tcpdumps_writing(path) -> list[int]:
    """Pids of live processes (as the kernel lists them in /proc) whose argv names `path`: not our bookkeeping."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if str(path).encode() in argv:
                found.append(int(entry))
    return found


def wait_stopped(cap_id: int, timeout: float = 20) -> Capture:
    wait_for(lambda: Capture.objects.get(pk=cap_id).status not in Capture.ACTIVE, "the capture to stop", timeout)
    return Capture.objects.get(pk=cap_id)


def test_a_capture_of_a_flood_stops_by_itself_at_its_size_limit(stream_agent, lab, olga, settings):
    from webapp.consoles import conf

    settings.CAPTURE_MAX_BYTES = 20_000
    client = Client()
    client.force_login(olga)
    answer = client.post(f"/api/labs/{lab.pk}/captures/", {"link": 1}, content_type="application/json")
    assert answer.status_code == 201, answer.content
    cap = answer.json()
    assert cap["max_bytes"] == 20_000
    path = conf.capture_path(cap["id"])
    assert tcpdumps_writing(path)  # the check below can see a tcpdump

    flood = procs.run(["ping", "-f", "-q", "-c", "2000", "-s", "1000", "10.0.1.254"],
                      namespace=naming.node_namespace(lab.lab_id, "h1"), timeout=60)
    assert flood.returncode == 0, flood.stderr
    stopped = wait_stopped(cap["id"])
    assert stopped.status == "stopped" and stopped.message == "size limit reached (20000 bytes)"
    assert tcpdumps_writing(path) == [] and lab_processes(lab.lab_id) == []
    # ~1 kB a packet: the file ends at the last whole packet within the limit, however fast they came
    raw = path.read_bytes()
    assert 20_000 - 2 * 1100 < len(raw) <= 20_000 and stopped.size == len(raw)
    frames = list(dpkt.pcap.Reader(__import__("io").BytesIO(raw)))
    assert len(frames) == stopped.packets and sum(len(buf) > 1000 for _, buf in frames) >= 15  # the flood's
    session = ConsoleSession.objects.get(capture__pk=cap["id"])
    assert session.ended is not None and session.reason == stopped.message and session.bytes_out == len(raw)


def test_a_capture_stops_by_itself_at_its_time_limit(stream_agent, lab, olga, settings):
    from webapp.consoles import conf

    settings.CAPTURE_MAX_SECONDS = 2
    client = Client()
    client.force_login(olga)
    started = time.monotonic()
    answer = client.post(f"/api/labs/{lab.pk}/captures/", {"link": 0}, content_type="application/json")
    assert answer.status_code == 201, answer.content
    cap = answer.json()
    path = conf.capture_path(cap["id"])
    assert cap["max_seconds"] == 2 and tcpdumps_writing(path)
    stopped = wait_stopped(cap["id"], timeout=15)
    took = time.monotonic() - started
    assert 1.9 <= took <= 5, took
    assert stopped.status == "stopped" and stopped.message == "time limit reached (2 s)"
    assert tcpdumps_writing(path) == [] and lab_processes(lab.lab_id) == []
    assert ConsoleSession.objects.get(capture__pk=cap["id"]).reason == stopped.message


# ---------------------------------------------------------------------------------------------- VM console


def _tiny_image_missing() -> str:
    from netops import images
    from netops.errors import TopologyError

    if not os.path.exists("/usr/bin/qemu-system-x86_64"):
        return "needs qemu-system-x86"
    try:
        images.get_image("tiny")
    except TopologyError:
        return "the tiny image is not built (make setup builds it)"
    return ""


@pytest.fixture
def vm_lab(olga, monkeypatch):
    """Olga's lab with the tiny VM vm1 on br-in, deployed with netops.engine.up (kernel lock held)."""
    if why := _tiny_image_missing():
        pytest.skip(why)
    monkeypatch.setenv("TOPOLAB_ACCEL", os.environ.get("TOPOLAB_ACCEL", "tcg"))  # as tests/kernel/test_vm.py
    doc = {**DOC, "name": "vmconsole",
           "nodes": {**DOC["nodes"], "vm1": {"kind": "vm", "image": "tiny", "memory": 128, "interfaces": {"eth0": {}}}},
           "links": [*DOC["links"], {"endpoints": ["vm1:eth0", "br-in"]}]}
    with KERNEL_LOCK.held():
        lab = Lab.objects.create(owner=olga, name="vmconsole", document=doc)
        engine.up(parse_document(doc), lab=lab.lab_id)
        try:
            yield lab
        finally:
            engine.down(lab.lab_id)
            assert procs.find(lab.lab_id) == []


async def guest_command(path: str, cookie: bytes, command: bytes, needle: bytes) -> bytes:
    """Open the VM's console, press Enter until the guest's prompt shows, run `command`, read until `needle` and
    the next prompt, close."""
    comm = communicator(path, cookie)
    assert (await comm.connect(timeout=10))[0]
    deadline = time.monotonic() + 120  # tcg boot of the tiny guest (slower when the host is busy: a lab's CPU
    seen = b""                          # weight is below the host's own processes')
    while b"vm1:~# " not in seen:
        assert time.monotonic() < deadline, f"no prompt from the guest; got {seen[-1500:]!r}"
        await comm.send_to(bytes_data=b"\r")
        # wait without receive_output's timeout, which would cancel the consumer
        until = time.monotonic() + 3
        while b"vm1:~# " not in seen and time.monotonic() < until:
            if not await comm.receive_nothing(timeout=0.2):
                message = await comm.receive_output(timeout=5)
                if message["type"] == "websocket.close":
                    raise AssertionError(f"closed ({message.get('code')}) before the prompt: {seen[-500:]!r}")
                seen += message.get("bytes") or b""
    await comm.send_to(bytes_data=command + b"\r")
    out, _ = await read_terminal(comm, needle, timeout=20)
    out += (await read_terminal(comm, b"vm1:~# ", timeout=20))[0]
    await comm.disconnect()
    return out


@pytest.mark.slow
def test_the_vm_console_through_the_websocket_reaches_the_same_guest_again(stream_agent, vm_lab, olga):
    path = f"/ws/labs/{vm_lab.pk}/console/vm1/"
    cookie = cookie_of(olga)
    run = async_to_sync(guest_command)
    first = run(path, cookie, b"echo topolab-$((6*7)); echo mark-$((2*3)) > /tmp/topolab-mark; cat /proc/uptime",
                b"topolab-42")
    assert b"topolab-42" in first
    up1 = float(re.search(rb"\n(\d+\.\d+) \d+\.\d+", first).group(1))
    second = run(path, cookie, b"cat /tmp/topolab-mark; cat /proc/uptime", b"mark-6")
    up2 = float(re.search(rb"\n(\d+\.\d+) \d+\.\d+", second).group(1))
    assert up2 > up1  # the same running guest: its file is still there and its clock went on
    records = ConsoleSession.objects.filter(lab=vm_lab, node="vm1", kind="console")
    wait_for(lambda: records.filter(ended__isnull=True).count() == 0, "both VM console sessions to be closed")
    assert records.count() == 2


def test_a_fork_bomb_in_a_console_stops_at_its_node_and_the_web_tier_keeps_answering(stream_agent, olga):
    """The student's console is a cell: a fork bomb stops at the node's pids limit, a memory hog is killed inside
    the node, and meanwhile the API answers and another lab's ping gets through (figures printed)."""
    doc = {**DOC, "nodes": {**DOC["nodes"], "h1": {**DOC["nodes"]["h1"], "limits": {"pids": 48, "memory": "64M"}}}}
    KERNEL_LOCK.acquire()
    try:
        bomb_lab = Lab.objects.create(owner=olga, name="bomb", document=doc)
        other = Lab.objects.create(owner=olga, name="other", document=DOC)
        engine.up(parse_document(doc), lab=bomb_lab.lab_id)
        engine.up(parse_document(DOC), lab=other.lab_id)
        try:
            client = Client()
            client.force_login(olga)

            from netops.kernel import cgroups

            def measure() -> tuple[int, list[float], str]:
                pids = cgroups.node_usage(bomb_lab.lab_id, "h1")["pids"]
                timings = []
                for _ in range(10):
                    started = time.monotonic()
                    assert client.get("/api/labs/").status_code == 200
                    timings.append(time.monotonic() - started)
                ping = procs.run(["ping", "-n", "-q", "-c", "10", "-i", "0.1", "-W", "1", "10.0.1.254"],
                                 namespace=naming.node_namespace(other.lab_id, "h1"), check=False).stdout.decode()
                return pids, timings, ping

            cookie = cookie_of(olga)

            async def bomb():
                comm = communicator(f"/ws/labs/{bomb_lab.pk}/console/h1/", cookie)
                assert (await comm.connect(timeout=10))[0]
                try:
                    await read_terminal(comm, b"$ ")
                    await comm.send_to(bytes_data=b"python3 -c 'a = bytearray(300 << 20)'; echo hog-rc-$?\n")
                    out, _ = await read_terminal(comm, b"hog-rc-1", timeout=60)  # not the typed "-$?"
                    await comm.send_to(bytes_data=b"bomb() { bomb | bomb & }; bomb\n")
                    await asyncio.sleep(3)
                    return out, await sync_to_async(measure, thread_sensitive=False)()
                finally:
                    await comm.disconnect()

            out, (pids, timings, ping) = async_to_sync(bomb)()
            assert b"hog-rc-137" in out  # killed by its node's memory limit, and only it
            loss = re.search(r"([0-9.]+)% packet loss", ping)
            print(f"fork bomb in {bomb_lab.lab_id}/h1: {pids} processes (limit 48); GET /api/labs/ "
                  f"max {max(timings) * 1000:.0f} ms, median {sorted(timings)[5] * 1000:.0f} ms; other lab's ping: "
                  f"{loss.group(0) if loss else ping}")
            assert pids <= 48 and loss and float(loss.group(1)) == 0.0 and max(timings) < 5
        finally:
            engine.down(bomb_lab.lab_id)
            engine.down(other.lab_id)
        assert procs.find(bomb_lab.lab_id) == [] and procs.find(other.lab_id) == []
    finally:
        KERNEL_LOCK.release()
