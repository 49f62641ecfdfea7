"""Deploy latency through the whole stack: the seed lab's dispatch and DHCP leases, and a 100-node lab.

Starts its own private Redis, database, Celery agent (root) and daphne in a temp dir, deploys labs through the REST
API while a WebSocket client (the `websockets` package, as a browser would) listens, then destroys them.

The seed lab (examples/seed-lab.yaml: router with DHCP and NAT, switch, h1, h2 on DHCP, vm1 on DHCP, uplink to a
host bridge this script makes and allows), `--repeat` times. Prints per deploy:
  - API call -> run created (the run row's `created`) -> first event (run.started, its `ts`)
  - h2's DHCP client start (its `run.step` event) -> h2 running (the leased address is on h2's eth0)
  - API call -> vm1's lease in r1's dnsmasq lease file (read by this script every 10 ms) and the step that boots it
Then the lab of N hosts on one bridge (`--nodes`, 0 skips it):
  - API call -> last `node.state: running` received over the WebSocket (seconds)
  - event latency p50/p95/max: receive time minus the event's `ts` (stamped by the agent when stored)
Usage: sudo flock /run/topolab-kernel-tests.lock .venv/bin/python benchmarks/deploy_latency.py [--repeat 3] [--nodes 100]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "examples" / "seed-lab.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def document(count: int) -> dict:
    nodes: dict = {"sw": {"kind": "bridge"}}
    links = []
    for i in range(1, count):
        nodes[f"h{i}"] = {"kind": "host", "interfaces": {"eth0": {"address": f"10.0.{i // 250}.{i % 250 + 1}/16"}}}
        links.append({"endpoints": [f"h{i}:eth0", "sw"]})
    return {"version": 1, "name": f"bench{count}", "nodes": nodes, "links": links}


def seed_document(bridge: str) -> dict:
    """The seed lab with its uplink on `bridge` (a host bridge this script made and allows)."""
    doc = yaml.safe_load(SEED.read_text())
    doc["nodes"]["wan"]["bridge"] = bridge
    return doc


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {what}")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100, help="nodes in the big lab (one bridge + hosts; 0: none)")
    parser.add_argument("--repeat", type=int, default=3, help="deploys of the seed lab (0: none)")
    parser.add_argument("--timeline", action="store_true", help="print every event of the seed lab's deploys")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir (logs of redis, worker, daphne)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the agent needs root")

    tmp = Path(tempfile.mkdtemp(prefix="topolab-bench-"))
    tmp.chmod(0o711)  # the lab's processes (its own uids) reach their cell dir under tmp/run
    bridge = "tlbench" + os.urandom(3).hex()
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
    procs: list[subprocess.Popen] = []
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="webapp.settings", TOPOLAB_DB=str(tmp / "db.sqlite3"),
               TOPOLAB_REDIS_URL=f"unix://{tmp / 'redis.sock'}", TOPOLAB_SECRET_KEY="bench-" + os.urandom(16).hex(),
               TOPOLAB_RUN_DIR=str(tmp / "run"), TOPOLAB_AGENT_QUEUE="agent",
               TOPOLAB_QUOTA_USER_NODES="0", TOPOLAB_QUOTA_USER_RUNNING_LABS="0", TOPOLAB_UPLINK_BRIDGES=bridge,
               TOPOLAB_THROTTLE_DEPLOY="1000/minute",
               PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore::celery.platforms.SecurityWarning")
    os.environ.update(env)

    def spawn(argv: list[str], name: str) -> subprocess.Popen:
        log = open(tmp / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        return proc

    try:
        spawn(["redis-server", "--port", "0", "--unixsocket", str(tmp / "redis.sock"), "--save", "",
               "--appendonly", "no", "--dir", str(tmp)], "redis")
        wait_until(lambda: (tmp / "redis.sock").exists(), 10, "redis")

        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.contrib.sessions.backends.db import SessionStore
        from django.core.management import call_command
        from rest_framework.authtoken.models import Token

        from webapp.labs.models import Lab

        call_command("migrate", verbosity=0)
        # staff: may attach the seed lab's uplink to the allowed bridge
        user = get_user_model().objects.create_user("bench", password=os.urandom(8).hex(), is_staff=True)
        token = Token.objects.create(user=user).key
        session = SessionStore()
        session["_auth_user_id"] = str(user.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = user.get_session_auth_hash()
        session.create()
        lab = Lab.objects.create(owner=user, name="bench", document=document(args.nodes))
        seed = Lab.objects.create(owner=user, name="seed", document=seed_document(bridge))

        from webapp.celery import app

        app.conf.update(broker_url=f"redis+socket://{tmp / 'redis.sock'}",
                        result_backend=f"redis+socket://{tmp / 'redis.sock'}")
        spawn([sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "agent", "-n", "bench@localhost",
               "--concurrency", "2", "--loglevel", "INFO" if args.keep_logs else "WARNING", "--without-gossip",
               "--without-mingle"], "worker")
        wait_until(lambda: bool(app.control.ping(destination=["bench@localhost"], timeout=0.5)), 60, "worker")
        port = free_port()
        spawn([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "webapp.asgi:application"], "daphne")
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                return True
            except OSError:
                return False

        wait_until(up, 30, "daphne")

        def post(path: str) -> dict:
            req = urllib.request.Request(f"{base}{path}", method="POST", headers={"Authorization": f"Token {token}"})
            with urllib.request.urlopen(req, timeout=10) as response:
                return json.loads(response.read())

        if args.repeat:
            # The KVM-or-TCG decision is made once per host boot and cached in the run root (here a fresh one):
            # made here, before the timed deploys, as it is on a host that has run a VM since it booted.
            from netops import qemu

            t = time.monotonic()
            decision = qemu.accel_info()
            print(f"accelerator: {decision['accel']} ({decision['reason']}; decided in {time.monotonic() - t:.1f} s)")
        for i in range(args.repeat):
            r = asyncio.run(measure_seed(base, port, session.session_key, seed, post))
            if args.timeline:
                for e in r["events"]:
                    print(f"  {e['ts'] - r['t0']:7.3f} {e['type']} {e.get('node', '')} {e.get('state', '')} "
                          f"{e.get('message', '')}")
            print(f"seed lab deploy {i + 1}: API call -> run created {r['created_ms']:.0f} ms -> run.started "
                  f"{r['dispatch_ms']:.0f} ms (API call -> run.started {r['api_started_ms']:.0f} ms); "
                  f"h2 DHCP client start -> lease {r['h2_lease_s']:.2f} s; "
                  f"Deploy -> vm1 lease {r['vm_lease_s']:.2f} s (its 'start VM' step at {r['vm_step_s']:.2f} s); "
                  f"all running {r['deploy_s']:.2f} s; destroy {r['destroy_s']:.2f} s", flush=True)
        if not args.nodes:
            return
        result = asyncio.run(measure(base, port, session.session_key, lab.pk, post, args.nodes))
        n = len(result["latencies"])
        lat = sorted(result["latencies"])
        print(f"lab of {args.nodes} nodes ({lab.lab_id}), {result['events']} events over the WebSocket")
        print(f"deploy: API call -> last node.state running: {result['deploy_s']:.2f} s "
              f"(API answered 202 in {result['api_ms']:.0f} ms)")
        print(f"event latency agent -> browser: p50 {statistics.median(lat) * 1000:.1f} ms, "
              f"p95 {lat[int(0.95 * (n - 1))] * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms (n={n})")
        print(f"destroy: API call -> run.finished: {result['destroy_s']:.2f} s")
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        subprocess.run(["ip", "link", "del", bridge], check=False)
        if args.keep_logs:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def lease_seen(lab_id: str, mac: str, deadline: float) -> float | None:
    """When `mac` first shows in r1's dnsmasq lease file (read every 10 ms as root), or None by `deadline`."""
    from netops import cell, dnsmasq
    from netops.errors import ApplyError

    path = dnsmasq.files(lab_id, "r1", "eth0")["leases"]
    while time.time() < deadline:
        try:
            text = cell.read_text(lab_id, path) or ""
        except (ApplyError, OSError):  # the cell is not made yet
            text = ""
        if any(le.mac == mac for le in dnsmasq.parse_leases(text)):
            return time.time()
        time.sleep(0.01)
    return None


async def measure_seed(base: str, port: int, session_key: str, lab, post) -> dict:
    """One deploy and destroy of the seed lab, with the timestamps of the issue's three waits."""
    import websockets

    from webapp.runs.models import Run

    mac = lab.document["nodes"]["vm1"]["interfaces"]["eth0"]["mac"].lower()
    uri = f"ws://127.0.0.1:{port}/ws/labs/{lab.pk}/"
    async with websockets.connect(uri, additional_headers={"Cookie": f"sessionid={session_key}"},
                                  origin=base, max_size=None) as ws:
        snapshot = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "resume", "after": snapshot["seq"]}))
        seen: list[dict] = []

        async def until(predicate) -> dict:
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 300))
                seen.append(event)
                if event["type"] == "run.failed":
                    raise SystemExit(f"run failed: {event}")
                if predicate(event):
                    return event

        t0 = time.time()
        lease = asyncio.ensure_future(asyncio.to_thread(lease_seen, lab.lab_id, mac, t0 + 120))
        run = await asyncio.to_thread(post, f"/api/labs/{lab.pk}/deploy")
        started = await until(lambda e: e["type"] == "run.started" and e["run"] == run["id"])
        finished = await until(lambda e: e["type"] == "run.finished" and e["run"] == run["id"])
        vm_lease = await lease
        if vm_lease is None:
            raise SystemExit("vm1 got no lease within 120 s")
        created = (await asyncio.to_thread(lambda: Run.objects.get(pk=run["id"]).created)).timestamp()

        def ts(predicate) -> float:
            return next(e["ts"] for e in seen if predicate(e))

        h2_client = ts(lambda e: e["type"] == "run.step" and e.get("node") == "h2" and "DHCP client" in
                       e.get("message", ""))
        h2_up = ts(lambda e: e["type"] == "node.state" and e.get("node") == "h2" and e.get("state") == "running")
        vm_step = ts(lambda e: e["type"] == "run.step" and e.get("node") == "vm1" and e.get("message") == "start VM")
        last_running = max(e["ts"] for e in seen if e["type"] == "node.state" and e.get("state") == "running")
        t1 = time.time()
        destroy = await asyncio.to_thread(post, f"/api/labs/{lab.pk}/destroy")
        await until(lambda e: e["type"] in ("run.finished", "run.failed") and e["run"] == destroy["id"])
        return {"created_ms": (created - t0) * 1000, "dispatch_ms": (started["ts"] - created) * 1000,
                "api_started_ms": (started["ts"] - t0) * 1000, "h2_lease_s": h2_up - h2_client,
                "vm_lease_s": vm_lease - t0, "vm_step_s": vm_step - t0, "deploy_s": last_running - t0,
                "finished_s": finished["ts"] - t0, "destroy_s": time.time() - t1, "events": seen, "t0": t0}


async def measure(base: str, port: int, session_key: str, lab_pk: int, post, nodes: int) -> dict:
    import websockets

    uri = f"ws://127.0.0.1:{port}/ws/labs/{lab_pk}/"
    async with websockets.connect(uri, additional_headers={"Cookie": f"sessionid={session_key}"},
                                  origin=base, max_size=None) as ws:
        snapshot = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "resume", "after": snapshot["seq"]}))
        latencies: list[float] = []
        events = 0

        async def until(predicate) -> float:
            nonlocal events
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 300))
                received = time.time()
                events += 1
                latencies.append(received - event["ts"])
                if predicate(event):
                    return received

        t0 = time.time()
        run = await asyncio.to_thread(post, f"/api/labs/{lab_pk}/deploy")
        api_ms = (time.time() - t0) * 1000
        running: set[str] = set()

        def all_running(e: dict) -> bool:
            if e["type"] == "node.state" and e.get("state") == "running":
                running.add(e["node"])
            if e["type"] == "run.failed":
                raise SystemExit(f"deploy failed: {e}")
            return len(running) == nodes

        last_running = await until(all_running)
        await until(lambda e: e["type"] in ("run.finished", "run.failed") and e["run"] == run["id"])
        t1 = time.time()
        destroy = await asyncio.to_thread(post, f"/api/labs/{lab_pk}/destroy")
        await until(lambda e: e["type"] in ("run.finished", "run.failed") and e["run"] == destroy["id"])
        return {"deploy_s": last_running - t0, "api_ms": api_ms, "latencies": latencies, "events": events,
                "destroy_s": time.time() - t1}


if __name__ == "__main__":
    main()
