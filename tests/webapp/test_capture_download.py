"""A capture's pcap download (and the live list's backlog) streams from the stream agent of the host that holds the
file (issue 13), not from a directory the web tier shares: real stream agents (`python -m webapp.agent`), the real
channel layer on the test Redis, the real ASGI app.

The session's stream agent is this host's: a real capture in a deployed lab downloads byte-identical. A second one
runs as simulated host `simb` (TOPOLAB_HOST, its own name tag and its own capture directory), with a real capture
in a lab deployed as that host by `python -m netops`, and pcap files the tests put there; the web tier (this
process) is pointed at a capture directory that does not exist while it downloads, so it reads nothing itself.
Three people: the owner (olga), an outsider (mallory), nobody signed in."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import AsyncClient, Client
from support import KERNEL_LOCK, netns_exec

from netops import capture as netcapture
from netops import engine, naming
from netops.topology import parse_document
from webapp.asgi import application
from webapp.consoles import conf, services
from webapp.consoles.models import Capture
from webapp.labs.models import Lab

pytestmark = [
    pytest.mark.webapp,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(os.geteuid() != 0, reason="stream agents and captures need root"),
]

SIM, SIM_TAG = "simb", "sb"
DOC = {
    "version": 1,
    "name": "pcaphost",
    "nodes": {
        "r1": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.1.254/24"}}},
        "br-in": {"kind": "bridge"},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}},
               "routes": [{"to": "default", "via": "10.0.1.254"}]},
    },
    "links": [{"endpoints": ["r1:eth0", "br-in"]}, {"endpoints": ["h1:eth0", "br-in"]}],
}


def download(client: Client | AsyncClient, url: str) -> tuple[int, dict, bytes]:
    """(status, headers, body) of a GET through the real ASGI handler's streaming (AsyncClient)."""

    async def get() -> tuple[int, dict, bytes]:
        web = AsyncClient()
        web.cookies = client.cookies
        response = await web.get(url)
        if not response.streaming:
            return response.status_code, dict(response.headers), response.content
        body = await joined(response.streaming_content)
        return response.status_code, dict(response.headers), body

    return async_to_sync(get)()


async def joined(parts) -> bytes:
    return b"".join([part async for part in parts])


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def ask(host: str, message: dict, timeout: float = 10) -> dict:
    """A message straight to the stream agent of `host` (as anyone on the channel layer could send it)."""

    async def go() -> dict:
        layer = get_channel_layer()
        reply = await layer.new_channel()
        await layer.send(conf.agent_channel(host), {**message, "reply": reply})
        return await asyncio.wait_for(layer.receive(reply), timeout)

    return async_to_sync(go)()


def pcap_bytes(size: int) -> bytes:
    """A pcap file of about `size` bytes: ethernet frames of 1514 bytes, as tcpdump writes them."""
    frame = bytes(range(256)) * 6
    frame = frame[:1514]
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    n = 0
    while sum(map(len, out)) < size:
        out.append(struct.pack("<IIII", 1700000000 + n // 1000, n % 1000, len(frame), len(frame)) + frame)
        n += 1
    return b"".join(out)


@pytest.fixture(scope="module")
def sim_host(stream_agent, topolab_subprocess_env, test_tmpdir, spawn):
    """The stream agent of simulated host simb: its own name, name tag and capture directory (root's, 0700 but
    for tcpdump's way in, 0711). Yields that directory; stopped after the module."""
    # outside test_tmpdir (0700): tcpdump, dropped to the lab's uid, must pass through to the file the agent made
    directory = Path(tempfile.mkdtemp(prefix="topolab-test-captures-simb-"))
    directory.chmod(0o711)
    env = {**topolab_subprocess_env, "TOPOLAB_HOST": SIM, "TOPOLAB_HOST_TAG": SIM_TAG,
           "TOPOLAB_CAPTURE_DIR": str(directory)}
    log_path = test_tmpdir / "stream-agent-simb.log"
    proc = spawn([sys.executable, "-m", "webapp.agent"], log_path=log_path, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                assert async_to_sync(services.ask_agent)({"type": "agent.ping"}, channel=conf.agent_channel(SIM),
                                                         timeout=1)["host"] == SIM
                break
            except services.AgentUnavailable:
                assert time.monotonic() < deadline, log_path.read_text()
        yield directory, env, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def web_reads_no_capture_dir(settings, tmp_path):
    """The web tier (this process) looks for capture files in a directory that does not exist."""
    settings.CAPTURE_DIR = tmp_path / "the-web-tier-has-no-capture-dir"
    yield


@pytest.fixture
def lab(olga):
    """Olga's lab deployed on this host (netops.engine.up), destroyed after the test (kernel lock held)."""
    with KERNEL_LOCK.held():
        lab = Lab.objects.create(owner=olga, name="pcaphost", document=DOC)
        engine.up(parse_document(DOC), lab=lab.lab_id)
        try:
            yield lab
        finally:
            engine.down(lab.lab_id)


@pytest.fixture
def sim_lab(olga, sim_host, tmp_path):
    """Olga's lab deployed on simulated host simb (`python -m netops up` with its name tag), destroyed after."""
    _, env, _ = sim_host
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(DOC))
    with KERNEL_LOCK.held():
        lab = Lab.objects.create(owner=olga, name="pcaphost-b", document=DOC)
        up = subprocess.run([sys.executable, "-m", "netops", "up", str(path), "--lab", lab.lab_id], env=env,
                            capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stdout + up.stderr
        try:
            yield lab
        finally:
            down = subprocess.run([sys.executable, "-m", "netops", "down", "--lab", lab.lab_id], env=env,
                                  capture_output=True, text=True, timeout=120)
            assert down.returncode == 0, down.stdout + down.stderr


def ping_until_captured(namespace: str, cap_id: int, at_least: int = 6, timeout: float = 30) -> None:
    """Ping r1 from `namespace` until the capture counted `at_least` packets (tcpdump may start listening a little
    after its start was answered)."""
    deadline = time.monotonic() + timeout
    while Capture.objects.get(pk=cap_id).packets < at_least:
        assert time.monotonic() < deadline, f"capture {cap_id} saw fewer than {at_least} packets"
        done = netns_exec(namespace, ["ping", "-c", "3", "-i", "0.2", "10.0.1.254"])
        assert done.returncode == 0, done.stdout + done.stderr
        time.sleep(0.5)


def backlog_of(user, cap: Capture) -> dict:
    """The first message of the capture's live list: its backlog."""
    client = signed_in(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def go() -> dict:
        comm = WebsocketCommunicator(application, f"/ws/labs/{cap.lab_id}/captures/{cap.pk}/", headers=[
            (b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie)])
        assert (await comm.connect(timeout=10))[0]
        try:
            return json.loads(await comm.receive_from(timeout=20))
        finally:
            await comm.disconnect()

    return async_to_sync(go)()


# ---------------------------------------------------------------------------------------------- this host


@pytest.mark.kernel
def test_a_real_capture_downloads_byte_identical_to_the_agents_file(stream_agent, lab, olga, mallory):
    client = signed_in(olga)
    answer = client.post(f"/api/labs/{lab.pk}/captures/", {"link": 1, "filter": "icmp"},
                         content_type="application/json")
    assert answer.status_code == 201, answer.content
    cap = answer.json()
    assert Capture.objects.get(pk=cap["id"]).host == django_settings.TOPOLAB_HOST  # from the agent's answer
    # tcpdump may start listening a little after its start was answered (CI missed some of one round of pings)
    ping_until_captured(naming.node_namespace(lab.lab_id, "h1"), cap["id"])
    stopped = client.post(f"/api/labs/{lab.pk}/captures/{cap['id']}/stop/").json()
    assert stopped["status"] == "stopped", stopped

    path = conf.capture_path(cap["id"])
    on_disk = path.read_bytes()
    mode = path.stat().st_mode
    assert mode & 0o077 == 0, f"{oct(mode)}: the pcap is root's and tcpdump's only, not the web tier's group's"
    code, headers, body = download(client, cap["download"])
    assert code == 200, body[:500]
    assert body == on_disk and len(on_disk) == stopped["size"] > 24
    assert headers["Content-Type"] == "application/vnd.tcpdump.pcap"
    assert headers["Content-Length"] == str(len(on_disk))
    assert headers["Content-Disposition"] == f'attachment; filename="{lab.lab_id}-capture-{cap["id"]}.pcap"'

    backlog = backlog_of(olga, Capture.objects.get(pk=cap["id"]))
    assert backlog["backlog"] and "message" not in backlog
    assert backlog["packets"] == [p.as_dict() for p in netcapture.read_pcap(path)]

    # another user's capture id: 404, under the owner's lab or under a lab of the stranger's own
    stranger = signed_in(mallory)
    theirs = Lab.objects.create(owner=mallory, name="mine", document=DOC)
    assert download(stranger, cap["download"])[0] == 404
    assert download(stranger, f"/api/labs/{theirs.pk}/captures/{cap['id']}/pcap/")[0] == 404
    assert download(Client(), cap["download"])[0] in (401, 403)


# ---------------------------------------------------------------------------------------------- another host


def test_the_stream_agent_refuses_crafted_reads(sim_host, olga):
    directory, *_ = sim_host
    lab = Lab.objects.create(owner=olga, name="crafted", document=DOC)
    here = Capture.objects.create(lab=lab, link=0, status="stopped", max_bytes=1, max_seconds=1,
                                  host=django_settings.TOPOLAB_HOST)
    there = Capture.objects.create(lab=lab, link=0, status="stopped", max_bytes=1, max_seconds=1, host=SIM)
    (directory / f"capture-{here.pk}.pcap").write_bytes(b"not simb's capture")  # on simb's disk, yet not simb's
    (directory / f"capture-{there.pk}.pcap").write_bytes(pcap_bytes(100))
    (directory / "secret").write_bytes(b"secret")
    read = {"type": "capture.read", "offset": 0, "size": 1 << 20}

    assert ask(SIM, {**read, "capture": there.pk})["data"] == pcap_bytes(100)  # its own: served
    for capture, says in [(here.pk, f"not on host {SIM}"), ("../secret", "not a capture id"),
                          (str(there.pk), "not a capture id"), (f"{there.pk}/../../secret", "not a capture id"),
                          (True, "not a capture id"), (2**64 - 1, "not a capture id"), (-5, "not a capture id"), (None, "not a capture id"),
                          (there.pk + 1000, "no such capture")]:
        answer = ask(SIM, {**read, "capture": capture})
        assert answer["ok"] is False and says in answer["message"] and "data" not in answer, (capture, answer)
    for offset, size in [(-1, 10), ("0", 10), (0, 0), (0, "all")]:
        answer = ask(SIM, {**read, "capture": there.pk, "offset": offset, "size": size})
        assert answer["ok"] is False and "data" not in answer, (offset, size, answer)
    assert ask(SIM, {"type": "capture.backlog", "capture": "../secret", "last": 10})["ok"] is False
    assert ask(SIM, {"type": "capture.backlog", "capture": here.pk, "last": 10})["ok"] is False
    # a symlink in place of the file is not followed
    (directory / f"capture-{there.pk}.pcap").unlink()
    (directory / f"capture-{there.pk}.pcap").symlink_to(directory / "secret")
    answer = ask(SIM, {**read, "capture": there.pk})
    assert answer["ok"] is False and "data" not in answer, answer


# ---------------------------------------------------------------------------------------------- failures


def test_no_stream_agent_on_the_captures_host_is_a_clear_error_within_the_timeout(olga, settings,
                                                                                  web_reads_no_capture_dir):
    settings.PCAP_TIMEOUT = 2
    lab = Lab.objects.create(owner=olga, name="nohost", document=DOC)
    cap = Capture.objects.create(lab=lab, link=0, status="stopped", max_bytes=1, max_seconds=1, host="gone")
    started = time.monotonic()
    code, _, body = download(signed_in(olga), f"/api/labs/{lab.pk}/captures/{cap.pk}/pcap/")
    took = time.monotonic() - started
    assert code == 503 and 1.9 <= took < 4, (code, took)
    message = json.loads(body)["errors"][0]["message"]
    assert f"capture {cap.pk}" in message and "host gone" in message and "did not answer within 2 s" in message
    backlog = backlog_of(olga, cap)
    assert backlog["packets"] == [] and f"capture {cap.pk}" in backlog["message"]


def test_a_capture_whose_file_is_gone_or_that_never_ran_is_a_404_naming_it(sim_host, olga,
                                                                          web_reads_no_capture_dir):
    lab = Lab.objects.create(owner=olga, name="gone", document=DOC)
    gone = Capture.objects.create(lab=lab, link=0, status="stopped", max_bytes=1, max_seconds=1, host=SIM)
    never = Capture.objects.create(lab=lab, link=0, status="failed", max_bytes=1, max_seconds=1)
    client = signed_in(olga)
    for cap, says in [(gone, f"capture {gone.pk}: its pcap file is gone from host {SIM}"),
                      (never, f"capture {never.pk} has no pcap file")]:
        code, _, body = download(client, f"/api/labs/{lab.pk}/captures/{cap.pk}/pcap/")
        assert code == 404 and says in json.loads(body)["errors"][0]["message"], body


def test_a_20_mb_pcap_streams_from_the_other_hosts_agent(sim_host, olga, web_reads_no_capture_dir):
    directory, *_ = sim_host
    lab = Lab.objects.create(owner=olga, name="big", document=DOC)
    cap = Capture.objects.create(lab=lab, link=0, status="stopped", max_bytes=1, max_seconds=1, host=SIM)
    data = pcap_bytes(20 * 1024 * 1024)
    path: Path = directory / f"capture-{cap.pk}.pcap"
    path.write_bytes(data)
    try:
        client = signed_in(olga)
        started = time.monotonic()
        code, headers, body = download(client, f"/api/labs/{lab.pk}/captures/{cap.pk}/pcap/")
        took = time.monotonic() - started
        # the sync test client (as tests/webapp/test_consoles.py downloads): its first chunk and the rest are
        # fetched in two event loops one after the other
        synced = client.get(f"/api/labs/{lab.pk}/captures/{cap.pk}/pcap/")
        rest = async_to_sync(joined)(synced.streaming_content)
    finally:
        path.unlink()
    assert code == 200 and headers["Content-Length"] == str(len(data)) and body == data
    assert synced.status_code == 200 and rest == data
    print(f"\n20 MB pcap download through the stream agent of another host: {len(data) / 1e6:.1f} MB in "
          f"{took:.2f} s = {len(data) / 1e6 / took:.0f} MB/s")


def test_a_restarted_stream_agent_closes_only_its_own_hosts_captures(olga, topolab_subprocess_env, test_tmpdir,
                                                                     spawn):
    lab = Lab.objects.create(owner=olga, name="orphans", document=DOC)
    mine, theirs = (Capture.objects.create(lab=lab, link=0, status="running", max_bytes=1, max_seconds=1, host=h)
                    for h in ("simd", "simc"))
    log_path = test_tmpdir / "stream-agent-simd.log"
    proc = spawn([sys.executable, "-m", "webapp.agent"], log_path=log_path,
                 env={**topolab_subprocess_env, "TOPOLAB_HOST": "simd", "TOPOLAB_HOST_TAG": "sd"})
    try:
        deadline = time.monotonic() + 30
        while True:  # it answers once it has forgotten its orphans
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            try:
                async_to_sync(services.ask_agent)({"type": "agent.ping"}, channel=conf.agent_channel("simd"),
                                                  timeout=1)
                break
            except services.AgentUnavailable:
                pass
    finally:
        proc.terminate()
        proc.wait(20)
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.status, mine.message) == ("stopped", "the agent restarted")
    assert theirs.status == "running", "another host's capture runs on under its own agent"


@pytest.mark.kernel
def test_a_capture_on_another_host_downloads_from_that_hosts_agent(sim_host, sim_lab, olga, mallory,
                                                                   web_reads_no_capture_dir):
    directory, *_ = sim_host
    cap = services.create_capture(olga, sim_lab, {"link": 1, "node": "", "interface": "", "filter": "icmp"})
    reply = async_to_sync(services.ask_agent)(services.start_message(cap), channel=conf.agent_channel(SIM))
    cap = services.apply_start_reply(cap, reply)
    assert cap.status == "running" and cap.host == SIM, (cap.status, cap.message)
    try:
        ping_until_captured(f"tl{SIM_TAG}-{sim_lab.lab_id}-h1", cap.pk)
    except AssertionError:
        raise AssertionError(sim_host[2].read_text()[-3000:]) from None
    client = signed_in(olga)
    assert client.post(f"/api/labs/{sim_lab.pk}/captures/{cap.pk}/stop/").json()["status"] == "stopped"

    on_b = (directory / f"capture-{cap.pk}.pcap").read_bytes()
    assert not conf.capture_path(cap.pk).exists()  # the web tier has no such file
    code, _, body = download(client, f"/api/labs/{sim_lab.pk}/captures/{cap.pk}/pcap/")
    assert code == 200, body[:500]
    assert body == on_b and len(netcapture.read_pcap(directory / f"capture-{cap.pk}.pcap")) >= 6
    backlog = backlog_of(olga, cap)
    assert len(backlog["packets"]) >= 6 and "message" not in backlog
    assert download(signed_in(mallory), f"/api/labs/{sim_lab.pk}/captures/{cap.pk}/pcap/")[0] == 404


