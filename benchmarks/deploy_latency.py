"""Deploy latency through the whole stack: the seed lab's dispatch and DHCP leases, and a 100-node lab.

Starts its own private Redis, database, Celery agent (root) and daphne in a temp dir (benchmarks/stack.py), deploys
labs through the REST API while a WebSocket client (the `websockets` package, as a browser would) listens, then
destroys them.

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
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from stack import Stack  # noqa: E402 - the private stack, shared with soak.py


def document(count: int) -> dict:
    nodes: dict = {"sw": {"kind": "bridge"}}
    links = []
    for i in range(1, count):
        nodes[f"h{i}"] = {"kind": "host", "interfaces": {"eth0": {"address": f"10.0.{i // 250}.{i % 250 + 1}/16"}}}
        links.append({"endpoints": [f"h{i}:eth0", "sw"]})
    return {"version": 1, "name": f"bench{count}", "nodes": nodes, "links": links}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100, help="nodes in the big lab (one bridge + hosts; 0: none)")
    parser.add_argument("--repeat", type=int, default=3, help="deploys of the seed lab (0: none)")
    parser.add_argument("--timeline", action="store_true", help="print every event of the seed lab's deploys")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir (logs of redis, worker, daphne)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the agent needs root")

    with Stack(bridges=1, keep_logs=args.keep_logs) as stack:
        from pipeline import seed_lab

        lab = stack.create_lab("bench", document(args.nodes))
        seed = stack.create_lab("seed", seed_lab(stack.bridges[0], vm=True))
        base, port, post = stack.base, stack.port, stack.post
        session_key = stack.session_key
        if args.repeat:
            # The KVM-or-TCG decision is made once per host boot and cached in the run root (here a fresh one):
            # made here, before the timed deploys, as it is on a host that has run a VM since it booted.
            from netops import qemu

            t = time.monotonic()
            decision = qemu.accel_info()
            print(f"accelerator: {decision['accel']} ({decision['reason']}; decided in {time.monotonic() - t:.1f} s)")
        for i in range(args.repeat):
            r = asyncio.run(measure_seed(base, port, session_key, seed, post))
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
        result = asyncio.run(measure(base, port, session_key, lab.pk, post, args.nodes))
        n = len(result["latencies"])
        lat = sorted(result["latencies"])
        print(f"lab of {args.nodes} nodes ({lab.lab_id}), {result['events']} events over the WebSocket")
        print(f"deploy: API call -> last node.state running: {result['deploy_s']:.2f} s "
              f"(API answered 202 in {result['api_ms']:.0f} ms)")
        print(f"event latency agent -> browser: p50 {statistics.median(lat) * 1000:.1f} ms, "
              f"p95 {lat[int(0.95 * (n - 1))] * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms (n={n})")
        print(f"destroy: API call -> run.finished: {result['destroy_s']:.2f} s")


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
