"""A lab across simulated hosts against the same lab on one host, through the API, in the same run (issue 13).

One switch with --per-host hosts on each of --hosts simulated hosts (the switch spans them all: one VXLAN tunnel
per host), deployed through the REST API of a private stack (benchmarks/stack.py: Redis, SQLite, daphne) on which
each simulated host is a real Celery agent as tests/webapp/test_multihost.py runs them: its own TOPOLAB_HOST,
TOPOLAB_HOST_TAG, queue and underlay namespace on tests/support.py's Underlay, announcing itself by heartbeat. The
web tier places the lab and sends each host its part; a WebSocket client listens to the lab's events as a browser
would. Prints, for the deploy and the destroy: API call -> run.finished (the event's time, stamped by the agent),
each host's part (its run.part events: start and end after the API call), the events stored and those the
WebSocket received with their latency; and a ping from the first host's first node to the last host's last node
(the far end, across two tunnels and the underlay).

Placement: automatic placement keeps a switch's nodes on one host while one has room for all of them (netops.
placement rule 4: 16 MiB a host node against each host's memory from its heartbeat) and spills them over the hosts
by room otherwise. The script prints what it does with this lab; when that is not --per-host on each host (or with
--pin) the nodes are pinned (`host:` keys), the first --per-host to host a, the next to b, ... Then the simulated hosts are stopped and one agent (host `one`) is started
as the only host: the same lab without `host:` keys goes to it as a lab on one host, where the 1500-port switch is
a tree of bridges (netops.wiring.switch_bridge). Timed the same way, pinged the same way, destroyed.

Everything it made is removed also after a failure: the labs through the API while the agents run, then whatever
is left by `python -m netops down` with each host's tag, the underlay, the stack. The machine's kernel inventory
(tests/support.py kernel_inventory) must be as before; a difference is printed and fails the run (exit 1).

On 2 cores the simulated hosts share the CPUs; on real hosts each part has its own.

Run as root:  flock /run/topolab-kernel-tests.lock .venv/bin/python benchmarks/deploy_multihost.py --hosts 3 --per-host 500
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter

from stack import REPO, Stack, wait_until  # benchmarks/stack.py: the private stack, shared with deploy_latency.py

sys.path.insert(0, str(REPO / "tests"))
from support import Underlay, kernel_inventory, netns_exec  # tests/support.py: the tests' simulated hosts

HOST_NAMES = "abcdefgh"
ONE = "one"  # the one host of the second deploy (its name and host tag)
BEAT, DOWN_AFTER = "1", "30"  # a loaded SQLite writer delays a heartbeat by seconds: not a host down


def lab_doc(hosts: int, per_host: int, pin: bool) -> dict:
    """One switch and hosts*per_host hosts on it; with `pin`, the first per_host on host a, the next on b, ..."""
    nodes: dict = {"sw": {"kind": "bridge"}}
    links = []
    for h in range(hosts):
        for i in range(per_host):
            n = h * per_host + i
            name = f"n{n}"
            nodes[name] = {"kind": "host", "interfaces": {"eth0": {"address": f"10.{n // 250}.{n % 250}.1/8"}}}
            if pin:
                nodes[name]["host"] = HOST_NAMES[h]
            links.append({"endpoints": [f"{name}:eth0", "sw"]})
    return {"version": 1, "name": f"multi{hosts}x{per_host}", "nodes": nodes, "links": links}


def far_address(total: int) -> str:
    return f"10.{(total - 1) // 250}.{(total - 1) % 250}.1"


def hosts_up(names: list[str]) -> bool:
    from webapp.hosts.models import Host

    rows = {h.name: h for h in Host.objects.filter(name__in=names)}
    return all(n in rows and rows[n].up for n in names)


def automatic_placement(doc: dict) -> Counter:
    """How many nodes the web tier's automatic placement would put on each host that is up now."""
    from netops.placement import Seat, place
    from netops.topology import parse_document
    from webapp.hosts.models import Host
    from webapp.runs.parts import free_mib

    hosts = list(Host.objects.all())
    result = place(parse_document(doc), [Seat(h.name, free_mib(h), h.up) for h in hosts])
    return Counter(result.hosts.values())


async def timed_run(stack: Stack, lab_pk: int, action: str, timeout: float) -> dict:
    """POST the lab's deploy or destroy with a WebSocket listening; once the run has ended (polled in the
    database), wait briefly for the stream's run.finished. Returns times relative to the API call."""
    from asgiref.sync import sync_to_async

    from webapp.runs.models import Run, RunEvent

    async with stack.websocket(lab_pk) as ws:
        snapshot = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "resume", "after": snapshot["seq"]}))
        received: list[tuple[float, dict]] = []

        async def listen() -> None:
            while True:
                event = json.loads(await ws.recv())
                received.append((time.time(), event))

        listener = asyncio.ensure_future(listen())
        t0 = time.time()
        answer = await asyncio.to_thread(stack.post, f"/api/labs/{lab_pk}/{action}", 120)
        api_s = time.time() - t0

        def ended() -> Run | None:
            run = Run.objects.get(pk=answer["id"])
            return None if run.active else run

        deadline = time.monotonic() + timeout
        while (run := await sync_to_async(ended)()) is None:
            if time.monotonic() > deadline:
                raise SystemExit(f"{action} run {answer['id']} not finished after {timeout:.0f} s")
            await asyncio.sleep(0.2)
        seen = time.time()
        stream_end = time.monotonic() + 10
        while not any(e.get("type") in ("run.finished", "run.failed") and e.get("run") == run.pk
                      for _, e in received) and time.monotonic() < stream_end:
            await asyncio.sleep(0.1)
        listener.cancel()
        events = await sync_to_async(lambda: [e.as_message() for e in RunEvent.objects.filter(run_id=run.pk)
                                              .order_by("seq")])()
    mine = [(t, e) for t, e in received if e.get("run") == run.pk]
    end = next((e["ts"] for e in events if e["type"] in ("run.finished", "run.failed")), seen)
    parts: dict[str, dict] = {}
    for e in events:
        if e["type"] == "run.part":
            parts.setdefault(e["host"], {})[e["state"]] = e["ts"] - t0
    return {"run": run, "api_s": api_s, "total_s": end - t0, "seen_s": seen - t0, "parts": parts,
            "stored": len(events), "received": len(mine), "latencies": sorted(t - e["ts"] for t, e in mine),
            "types": Counter(e["type"] for e in events)}


def report(label: str, r: dict) -> None:
    run = r["run"]
    print(f"{label}: {r['total_s']:7.2f} s API call -> run {run.status} (API answered in {r['api_s'] * 1000:.0f} ms)")
    for host, p in sorted(r["parts"].items()):
        start, end = p.get("running"), p.get("succeeded", p.get("failed"))
        if start is not None and end is not None:
            print(f"    host {host}: part {start:6.2f} -> {end:6.2f} s ({end - start:6.2f} s)")
    lat = r["latencies"]
    shown = (f"latency p50 {statistics.median(lat) * 1000:.0f} ms, p95 {lat[int(0.95 * (len(lat) - 1))] * 1000:.0f} ms,"
             f" max {lat[-1] * 1000:.0f} ms") if lat else "none received"
    types = ", ".join(f"{k} {v}" for k, v in r["types"].most_common())
    print(f"    events: {r['stored']} stored ({types}); {r['received']} over the WebSocket, {shown}")
    if run.status != "succeeded":
        print(f"    FAILED: {run.error}", file=sys.stderr)


def ping(ns: str, address: str) -> str:
    t = time.perf_counter()
    r = netns_exec(ns, ["ping", "-c", "1", "-W", "5", address])
    ms = (time.perf_counter() - t) * 1000
    return f"far-end ping {ns} -> {address}: {'ok' if r.returncode == 0 else 'FAILED'} ({ms:.0f} ms with ARP)"


def netops_down(stack: Stack, lab_id: str, tag: str, underlay_ns: str | None, span: dict | None, host: str | None):
    """Remove what is left of `lab_id` under host tag `tag` without the web tier (after a failure)."""
    env = {**stack.env, "TOPOLAB_HOST_TAG": tag}
    if underlay_ns:
        env["TOPOLAB_UNDERLAY_NETNS"] = underlay_ns
    argv = [sys.executable, "-m", "netops", "down", "--lab", lab_id]
    if span and host:
        path = stack.tmp / f"span-{lab_id}.json"
        path.write_text(json.dumps({k: v for k, v in span.items() if k != "local"}))
        argv += ["--span", str(path), "--host", host]
    r = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    if r.returncode != 0:
        print(f"netops down {lab_id} on {tag}: {r.stdout[-1500:]} {r.stderr[-1500:]}", file=sys.stderr)


def leftovers(lab_id: str, tags: list[str]) -> bool:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return any(f"tl{t}-{lab_id}" in listed for t in tags)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=3)
    ap.add_argument("--per-host", type=int, default=500)
    ap.add_argument("--timeout", type=float, default=1200, help="seconds a deploy or destroy may take")
    ap.add_argument("--pin", action="store_true", help="pin the nodes (host: keys) even when automatic placement "
                    "splits them evenly")
    ap.add_argument("--keep-logs", action="store_true", help="keep the stack's temp dir (agents', daphne's logs)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    names = list(HOST_NAMES[:args.hosts])
    total = args.hosts * args.per_host
    before = kernel_inventory()
    failed = False
    underlay = Underlay(names)
    try:
        with Stack(keep_logs=args.keep_logs, prefix="topolab-multihost-") as stack:
            failed = bench(args, stack, underlay, names, total)
    except (SystemExit, KeyboardInterrupt) as exc:  # cleaned up by bench() and the stack; the inventory still says
        failed = True
        print(f"benchmark stopped: {exc!r}", file=sys.stderr)
    finally:
        underlay.remove()
    after = kernel_inventory()
    diff = {k: (sorted(set(before[k]) - set(after[k])), sorted(set(after[k]) - set(before[k])))
            for k in before if k != "nft ruleset" and before[k] != after[k]}
    if before["nft ruleset"] != after["nft ruleset"]:
        diff["nft ruleset"] = (["(changed)"], [])
    if diff:
        failed = True
        print("the machine's inventory differs from before:", file=sys.stderr)
        for k, (gone, new) in diff.items():
            print(f"  {k}: gone {gone}, new {new}", file=sys.stderr)
    else:
        print("inventory: as before")
    return 1 if failed else 0


def bench(args, stack: Stack, underlay: Underlay, names: list[str], total: int) -> bool:
    from webapp.hosts.models import Host
    from webapp.labs.models import Lab

    failed = False
    labs: list[tuple[Lab, list[str]]] = []  # (lab, the host tags it may have parts on)
    agents: dict[str, subprocess.Popen] = {}
    spans: dict[str, dict | None] = {}
    try:
        for h in names:
            agents[h] = stack.start_agent(f"sim-{h}", queue=f"agent-sim-{h}-{uuid.uuid4().hex[:6]}", env={
                "TOPOLAB_HOST": h, "TOPOLAB_HOST_TAG": h, "TOPOLAB_UNDERLAY_NETNS": underlay.underlay[h],
                "TOPOLAB_UNDERLAY_ADDRESS": underlay.address[h], "TOPOLAB_HEARTBEAT_INTERVAL": BEAT,
                "TOPOLAB_HOST_DOWN_AFTER": DOWN_AFTER})
        wait_until(lambda: hosts_up(names), 30, "the simulated hosts announced themselves")
        auto = automatic_placement(lab_doc(args.hosts, args.per_host, pin=False))
        even = dict(auto) == {h: args.per_host for h in names}
        print(f"{total} nodes on one switch: {args.hosts} simulated hosts x {args.per_host}, then one host; "
              f"automatic placement puts {dict(sorted(auto.items()))}: "
              + ("left to it" if even and not args.pin else "the nodes are pinned (host: keys)"))
        across = Lab.objects.create(owner=stack.user, name="across",
                                    document=lab_doc(args.hosts, args.per_host, pin=args.pin or not even))
        labs.append((across, names))
        r = asyncio.run(timed_run(stack, across.pk, "deploy", args.timeout))
        spans[across.lab_id] = r["run"].span
        split = dict(sorted(Counter((r["run"].span or {}).get("placement", {}).values()).items()))
        report(f"across {args.hosts} hosts {split}, deploy", r)
        failed |= r["run"].status != "succeeded"
        if not failed:  # the first host's first node -> the last host's last node
            placed = (r["run"].span or {}).get("placement", {})
            number = {h: sorted(int(n[1:]) for n, at in placed.items() if at == h) for h in names}
            line = ping(f"tl{names[0]}-{across.lab_id}-n{number[names[0]][0]}",
                        far_address(number[names[-1]][-1] + 1))
            print("    " + line)
            failed |= "FAILED" in line
        d = asyncio.run(timed_run(stack, across.pk, "destroy", args.timeout))
        report(f"across {args.hosts} hosts, destroy", d)
        failed |= d["run"].status != "succeeded"
        across_s = r["total_s"]

        for h in names:  # the simulated hosts leave; one host is the only one up
            stack.stop(agents.pop(h))
        Host.objects.filter(name__in=names).delete()
        agents[ONE] = stack.start_agent(ONE, queue="agent", env={
            "TOPOLAB_HOST": ONE, "TOPOLAB_HOST_TAG": ONE, "TOPOLAB_HEARTBEAT_INTERVAL": BEAT,
            "TOPOLAB_HOST_DOWN_AFTER": DOWN_AFTER})
        wait_until(lambda: hosts_up([ONE]), 30, "the one host announced itself")
        single = Lab.objects.create(owner=stack.user, name="one", document=lab_doc(args.hosts, args.per_host, False))
        labs.append((single, [ONE]))
        r = asyncio.run(timed_run(stack, single.pk, "deploy", args.timeout))
        report("one host, deploy", r)
        failed |= r["run"].status != "succeeded"
        if r["run"].status == "succeeded":
            line = ping(f"tl{ONE}-{single.lab_id}-n0", far_address(total))
            print("    " + line)
            failed |= "FAILED" in line
            print(f"ratio one host / across hosts: {r['total_s'] / across_s:.2f}")
        d = asyncio.run(timed_run(stack, single.pk, "destroy", args.timeout))
        report("one host, destroy", d)
        failed |= d["run"].status != "succeeded"
    except Exception as exc:  # noqa: BLE001 - any failure: reported, then everything is cleaned up below
        failed = True
        print(f"benchmark failed: {exc!r}", file=sys.stderr)
    finally:
        for proc in agents.values():
            stack.stop(proc)
        for lab, tags in labs:  # whatever the API did not remove
            if leftovers(lab.lab_id, tags):
                failed = True
                print(f"lab {lab.lab_id} left namespaces: removing them with netops down", file=sys.stderr)
                for tag in tags:
                    netops_down(stack, lab.lab_id, tag, underlay.underlay.get(tag), spans.get(lab.lab_id),
                                tag if tag in names else None)
    return failed


if __name__ == "__main__":
    sys.exit(main())
