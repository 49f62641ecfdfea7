"""Resources under pressure (issue 17, part 5): a capture left running during a flood never holds more than its
limit on disk; with the capture directory's file system full, a capture fails with a clear message and the lab
keeps running; a node that hits its memory limit loses its own process, nothing of the other nodes.

Real parts: a deployed lab (netops.engine), the real stream agent (`python -m webapp.agent`, root) that runs
tcpdump in the lab's cell, the API through Django's test client, a tmpfs the test mounts over this run's capture
directory (and unmounts), and a Python loop in a node's cgroup.
"""
from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from support import KERNEL_LOCK

from netops import engine, naming, procs
from netops.kernel import cgroups
from netops.topology import parse_document
from webapp.consoles import conf
from webapp.consoles.models import Capture
from webapp.labs.models import Lab

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (real namespaces, mounts, cgroups)"),
]

DOC = {
    "version": 1,
    "name": "resources",
    "nodes": {
        "r1": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.1.254/24",
                                                          "dhcp_server": {"range": "10.0.1.100-10.0.1.150"}}}},
        "br-in": {"kind": "bridge"},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}},
               "routes": [{"to": "default", "via": "10.0.1.254"}], "limits": {"memory": "48M"}},
        "h2": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.2/24"}}},
    },
    "links": [{"endpoints": ["r1:eth0", "br-in"]}, {"endpoints": ["h1:eth0", "br-in"]},
              {"endpoints": ["h2:eth0", "br-in"]}],
}


@pytest.fixture
def owner():
    return get_user_model().objects.create_user(f"res{os.getpid()}", password="pw-resources-123")


@pytest.fixture
def lab(owner):
    """The lab, deployed for the test and destroyed after it, leaving no process (kernel lock held)."""
    with KERNEL_LOCK.held():
        lab = Lab.objects.create(owner=owner, name="resources", document=DOC)
        engine.up(parse_document(DOC), lab=lab.lab_id)
        try:
            yield lab
        finally:
            engine.down(lab.lab_id)
            assert procs.find(lab.lab_id) == []


def api(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def wait_stopped(cap_id: int, timeout: float = 30) -> Capture:
    deadline = time.monotonic() + timeout
    while Capture.objects.get(pk=cap_id).status in Capture.ACTIVE:
        assert time.monotonic() < deadline, "the capture did not stop"
        time.sleep(0.1)
    return Capture.objects.get(pk=cap_id)


def ping(lab: Lab, node: str, address: str, *extra: str, count: int = 2) -> subprocess.CompletedProcess:
    return procs.run(["ping", "-q", "-c", str(count), "-W", "1", *extra, address],
                     namespace=naming.node_namespace(lab.lab_id, node), timeout=120, check=False)


def all_running(lab: Lab) -> dict[str, str]:
    return {n: s["state"] for n, s in engine.status(lab.lab_id).as_dict()["nodes"].items()}


# ---------------------------------------------------------------------------------------------- capture size


def test_a_capture_left_running_in_a_flood_never_holds_more_than_its_limit(stream_agent, lab, owner, settings,
                                                                            chaos_figures):
    limit = 100_000
    settings.CAPTURE_MAX_BYTES = limit
    answer = api(owner).post(f"/api/labs/{lab.pk}/captures/", {"link": 1}, content_type="application/json")
    assert answer.status_code == 201, answer.content
    cap = answer.json()
    path = conf.capture_path(cap["id"])
    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, path.stat().st_size)
            except FileNotFoundError:
                pass
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        # about 4 MB of 1 kB pings at once (forty times the limit), faster than the agent's tail reads
        started = time.monotonic()
        flood = ping(lab, "h1", "10.0.1.254", "-f", "-s", "1000", count=2000)
        print(f"flood: {time.monotonic() - started:.1f} s, {flood.stdout.decode().strip().splitlines()[-2:]}")
        assert flood.returncode == 0, flood.stderr
        stopped = wait_stopped(cap["id"])
        size_at_stop = path.stat().st_size
        # left running: more traffic after the stop adds nothing to the file
        ping(lab, "h1", "10.0.1.254", "-f", "-s", "1000", count=500)
        time.sleep(0.5)
    finally:
        done.set()
        watcher.join()
    over = max(0, peak - limit)
    chaos_figures.add("resources: capture in a flood", faults=1, recovered=int(over == 0), leaks=int(over > 0))
    print(f"capture limit {limit} B: peak file size {peak} B during a 4 MB flood, {size_at_stop} B at the stop "
          f"({stopped.message})")
    assert stopped.status == "stopped" and stopped.message == f"size limit reached ({limit} bytes)"
    assert peak <= limit, f"the file held {peak} bytes, {over} past its limit"
    assert path.stat().st_size == size_at_stop <= limit
    assert procs.find(lab.lab_id, f"capture:{cap['id']}") == []


# ---------------------------------------------------------------------------------------------- full disk


@pytest.fixture
def small_capture_dir():
    """A 256 KiB tmpfs over this run's capture directory; unmounted after the test (the run's own files return)."""
    directory = conf.capture_dir()
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0711", "topolab-chaos", str(directory)], check=True)
    try:
        yield directory
    finally:  # lazily: a tcpdump the test failed to stop may still hold its file (the lab's teardown stops it)
        subprocess.run(["umount", "--lazy", str(directory)], check=True)


def fill(directory, leave: int = 0) -> None:
    """Write a filler file until `leave` bytes (or nothing) are free."""
    with open(directory / f"filler-{time.monotonic_ns()}", "wb") as f:
        try:
            while os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize > leave:
                f.write(b"\0" * 4096)
                f.flush()
        except OSError:
            pass


def test_a_capture_on_a_full_file_system_fails_clearly_and_the_lab_keeps_running(stream_agent, lab, owner, settings,
                                                                                 small_capture_dir, chaos_figures):
    part = "resources: capture on a full disk"
    settings.CAPTURE_MAX_BYTES = 64_000
    client = api(owner)
    # full before the start: refused, saying so
    fill(small_capture_dir)
    chaos_figures.add(part, faults=1)
    answer = client.post(f"/api/labs/{lab.pk}/captures/", {"link": 1}, content_type="application/json")
    print(f"capture on a full file system: {answer.status_code} {answer.content[:300]!r}")
    assert answer.status_code == 400, answer.content
    message = answer.json()["errors"][0]["message"]
    assert message.startswith("no space for the capture") and "64000" in message, message
    chaos_figures.add(part, recovered=1)
    # full while it runs: ends by itself with tcpdump's own reason, and the lab keeps running
    for f in small_capture_dir.glob("filler-*"):
        f.unlink()
    chaos_figures.add(part, faults=1)
    answer = client.post(f"/api/labs/{lab.pk}/captures/", {"link": 1}, content_type="application/json")
    assert answer.status_code == 201, answer.content
    cap = answer.json()
    fill(small_capture_dir, leave=8192)
    assert ping(lab, "h1", "10.0.1.254", "-f", "-s", "1000", count=200).returncode == 0
    stopped = wait_stopped(cap["id"])
    print(f"file system full during the capture: {stopped.status} {stopped.message!r}")
    assert stopped.status == "stopped" and stopped.message == \
        "no space left on the capture's file system (it is full)", stopped.message
    assert not [p for p in procs.find(lab.lab_id) if p.role.startswith("capture:")]
    assert set(all_running(lab).values()) == {"running"}, all_running(lab)
    assert ping(lab, "h1", "10.0.1.254").returncode == 0
    chaos_figures.add(part, recovered=1)


# ---------------------------------------------------------------------------------------------- memory


def test_a_node_over_its_memory_limit_loses_its_own_process_only(lab, chaos_figures):
    chaos_figures.add("resources: node memory limit", faults=1)
    before = {p.role: p.pid for p in procs.find(lab.lab_id)}
    assert any(r.startswith("dnsmasq:r1:") for r in before), before
    sleeper = procs.spawn(["sleep", "300"], lab=lab.lab_id, role="chaos:h2-sleeper",
                          namespace=naming.node_namespace(lab.lab_id, "h2"))
    try:
        hog = procs.run_in_cell(["python3", "-c", "a = []\nwhile True:\n    a.append(bytearray(1 << 20))"],
                                lab=lab.lab_id, role="chaos:hog", namespace=naming.node_namespace(lab.lab_id, "h1"),
                                timeout=60)
        # SIGKILL, the OOM killer's (the cell's launcher passes it on as the status 247, -9 in a byte)
        assert hog.returncode in (-9, 247), (hog.returncode, hog.stderr[-500:])
        events = _memory_events(lab.lab_id)
        print(f"memory hog in h1 (limit 48M): killed; limit hits per node {events}")
        assert events.get("h1", 0) >= 1 and events.get("r1", 0) == 0 and events.get("h2", 0) == 0, events
        after = {p.role: p.pid for p in procs.find(lab.lab_id)}
        assert {r: p for r, p in after.items() if r in before} == before  # every other process, same pid
        assert after.get("chaos:h2-sleeper") == sleeper
        assert set(all_running(lab).values()) == {"running"}, all_running(lab)
        assert ping(lab, "h1", "10.0.1.2").returncode == 0
    finally:
        procs.stop_all(lab.lab_id, "chaos:h2-sleeper", timeout=5.0)
    chaos_figures.add("resources: node memory limit", recovered=1)


def _memory_events(lab_id: str) -> dict[str, int]:
    """How often each node's cgroup met its memory limit: oom_kill of memory.events (cgroup v2, hierarchical), or
    memory.failcnt (v1: the charges refused at the node's limit; v1 counts an OOM kill only in the leaf cgroup of
    the killed process, which is gone with it)."""
    base = cgroups._bases()["memory"] / lab_id
    counts = {}
    for node in ("r1", "h1", "h2"):
        if (base / node / "memory.events").exists():
            text = (base / node / "memory.events").read_text()
            counts[node] = int(dict(line.split() for line in text.splitlines()).get("oom_kill", 0))
        elif (base / node / "memory.failcnt").exists():
            counts[node] = int((base / node / "memory.failcnt").read_text())
    return counts
