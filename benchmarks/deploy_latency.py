"""Deploy latency of a 100-node lab through the whole stack, and worker -> browser event latency.

Starts its own private Redis, database, Celery agent (root) and daphne in a temp dir, deploys a lab of N hosts on
one bridge through the REST API while a WebSocket client (the `websockets` package, as a browser would) listens,
then destroys it. Prints:
  - API call -> last `node.state: running` received over the WebSocket (seconds)
  - event latency p50/p95/max: receive time minus the event's `ts` (stamped by the agent when stored)
Usage: sudo .venv/bin/python benchmarks/deploy_latency.py [--nodes 100]
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

REPO = Path(__file__).resolve().parents[1]


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


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {what}")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100, help="nodes in the lab (one bridge + hosts)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the agent needs root")

    tmp = Path(tempfile.mkdtemp(prefix="topolab-bench-"))
    procs: list[subprocess.Popen] = []
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="webapp.settings", TOPOLAB_DB=str(tmp / "db.sqlite3"),
               TOPOLAB_REDIS_URL=f"unix://{tmp / 'redis.sock'}", TOPOLAB_SECRET_KEY="bench-" + os.urandom(16).hex(),
               TOPOLAB_RUN_DIR=str(tmp / "run"), TOPOLAB_AGENT_QUEUE="agent",
               TOPOLAB_QUOTA_USER_NODES="0", TOPOLAB_QUOTA_USER_RUNNING_LABS="0",
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
        user = get_user_model().objects.create_user("bench", password=os.urandom(8).hex())
        token = Token.objects.create(user=user).key
        session = SessionStore()
        session["_auth_user_id"] = str(user.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = user.get_session_auth_hash()
        session.create()
        lab = Lab.objects.create(owner=user, name="bench", document=document(args.nodes))

        from webapp.celery import app

        app.conf.update(broker_url=f"redis+socket://{tmp / 'redis.sock'}",
                        result_backend=f"redis+socket://{tmp / 'redis.sock'}")
        spawn([sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "agent", "-n", "bench@localhost",
               "--concurrency", "2", "--loglevel", "WARNING", "--without-gossip", "--without-mingle"], "worker")
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
        shutil.rmtree(tmp, ignore_errors=True)


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
