"""Soak: N labs deployed, used and destroyed through the whole stack, over and over, for --minutes.

The stack is benchmarks/stack.py's (private Redis and database, the Celery agent with beat as `make run` has it,
the stream agent, daphne), each lab the seed lab (tests/pipeline.py's seed_lab: examples/seed-lab.yaml, its uplink on a
host bridge of its own; vm1 only with --vm). A cycle: every lab's deploy posted at once and waited for; then per lab
its status (asked for all labs at once), a console on h1 (a WebSocket as the page opens it: the prompt, a command,
its answer), a capture of h1's eth0 while h1 pings r1 (started, stopped, its pcap downloaded); then every destroy at
once. The prune of old run events runs every minute (beat, TOPOLAB_PRUNE_INTERVAL).

Every --every cycles it prints the RSS and open descriptors of the agent (worker and pool), the stream agent and
daphne, Redis's used memory, the database's rows (all tables), and the runs and run events stored; at the end the
first and last of these with their difference, and what the kernel inventory (tests/support.kernel_inventory and
the agent's run dir) has that it had not before the first deploy, or lost.

Usage: sudo flock /run/topolab-kernel-tests.lock .venv/bin/python benchmarks/soak.py [--labs 3] [--minutes 10]
(`make soak`; exit status 1 when a cycle failed or the kernel inventory differs at the end)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from stack import Stack  # noqa: E402 - the benchmarks' private stack
from support import process_group, usage  # noqa: E402 - the chaos cycles' measures, shared

PRUNE_INTERVAL = 60  # seconds: beat's prune of old run events (an hour under `make run`)


def figures(stack: Stack) -> dict[str, float]:
    """One line of the soak's measures."""
    import redis
    from django.db import connection

    from webapp.runs.models import Run, RunEvent

    found: dict[str, float] = {}
    for pid in process_group(stack.named["worker"].pid):  # the agent's processes one by one (main, pool, beat)
        found[f"agent {pid} RSS MiB"] = round(usage([pid])[0] / 1024, 1)
    for name, pids in (("agent", process_group(stack.named["worker"].pid)),
                       ("stream agent", [stack.named["stream-agent"].pid]), ("daphne", [stack.named["daphne"].pid])):
        rss, fds = usage(pids)
        found[f"{name} RSS MiB"], found[f"{name} fds"] = round(rss / 1024, 1), fds
    server = redis.Redis(unix_socket_path=stack.env["TOPOLAB_REDIS_URL"].removeprefix("unix://"))
    found["Redis MiB"] = round(int(server.info("memory")["used_memory"]) / 2**20, 2)
    found["Redis keys"] = int(server.dbsize())
    with connection.cursor() as cursor:
        rows = 0
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT COUNT(*) FROM "{table}"')
            rows += cursor.fetchone()[0]
    found["DB rows"], found["runs"], found["events"] = rows, Run.objects.count(), RunEvent.objects.count()
    return found


async def console(stack: Stack, lab_pk: int, word: str) -> None:
    """A console on h1 as the page opens one: the prompt, a command, its answer, closed."""
    import websockets

    uri = f"ws://127.0.0.1:{stack.port}/ws/labs/{lab_pk}/console/h1/"
    async with websockets.connect(uri, additional_headers=stack.ws_headers(), origin=stack.base) as ws:
        out = b""

        async def until(needle: bytes) -> None:
            nonlocal out
            while needle not in out:
                message = await asyncio.wait_for(ws.recv(), 20)
                if isinstance(message, bytes):
                    out += message
                elif json.loads(message).get("state") == "closed":
                    raise RuntimeError(f"console of lab {lab_pk}: {message}")

        await until(b"$ ")
        await ws.send(f"echo {word}-$((6*7))\n".encode())
        await until(f"{word}-42".encode())


def use(stack: Stack, lab, cycle: int) -> None:
    """A console and a capture on a deployed lab."""
    from pipeline import ns_exec

    asyncio.run(console(stack, lab.pk, f"soak{cycle}"))
    cap = stack.post(f"/api/labs/{lab.pk}/captures/", body={"node": "h1", "interface": "eth0", "filter": "icmp"})
    path = f"/api/labs/{lab.pk}/captures/{cap['id']}"
    deadline = time.monotonic() + 20
    while stack.get(path)["packets"] < 4:  # tcpdump may start listening a moment after the 201; the agent counts
        if time.monotonic() > deadline:  # what it wrote every 0.25 s
            raise RuntimeError(f"lab {lab.pk}: the capture saw no pings: {stack.get(path)}")
        if ns_exec(f"tl-{lab.lab_id}-h1", "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.0.1.254").returncode:
            raise RuntimeError(f"lab {lab.pk}: h1 does not reach r1")
    stopped = stack.post(f"{path}/stop/")
    if stopped["status"] != "stopped" or stopped["packets"] < 4:
        raise RuntimeError(f"lab {lab.pk}: capture {stopped}")
    if len(stack.get(cap["download"])) < 24 + 4 * 16:  # the pcap header and four records at least
        raise RuntimeError(f"lab {lab.pk}: the pcap is short")


def cycle(stack: Stack, labs: list, i: int, pool: ThreadPoolExecutor) -> None:
    from pipeline import wait_run

    for kind in ("deploy", "destroy"):
        runs = [stack.post(f"/api/labs/{lab.pk}/{kind}")["id"] for lab in labs]
        for run_id in runs:
            run = wait_run(run_id, 300)
            if run.status != "succeeded":
                raise RuntimeError(f"cycle {i}: {kind} run {run_id}: {run.error}")
        if kind == "deploy":
            for answer in pool.map(lambda lab: stack.get(f"/api/labs/{lab.pk}/status"), labs):  # all at once
                if not answer["deployed"]:
                    raise RuntimeError(f"cycle {i}: status says not deployed: {answer}")
            for lab in labs:
                use(stack, lab, i)


def destroy(stack: Stack, labs: list) -> None:
    """After a failure: wait for what runs, then destroy every lab (so the inventory can be compared)."""
    from pipeline import wait_run

    from webapp.runs.models import Run

    for run in Run.objects.filter(status__in=Run.ACTIVE):
        wait_run(run.pk, 300)
    for lab in labs:
        wait_run(stack.post(f"/api/labs/{lab.pk}/destroy")["id"], 300)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labs", type=int, default=3, help="seed labs deployed at once (each on its own bridge)")
    parser.add_argument("--minutes", type=float, default=10, help="how long to go on (whole cycles)")
    parser.add_argument("--every", type=int, default=5, help="print the measures every this many cycles")
    parser.add_argument("--vm", action="store_true", help="with the seed lab's vm1 (a VM per lab)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir (logs of every service)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the agent needs root")

    with Stack(bridges=args.labs, keep_logs=args.keep_logs,
               env={"TOPOLAB_PRUNE_INTERVAL": str(PRUNE_INTERVAL)}) as stack:
        stack.start_agent("worker", beat=True)
        stack.start_stream_agent()
        from pipeline import inventory, leaks, seed_lab

        run_dir = stack.tmp / "run"
        labs = [stack.create_lab(f"soak{n}", seed_lab(bridge, vm=args.vm)) for n, bridge in enumerate(stack.bridges)]
        before = inventory(run_dir)
        print(f"soak: {args.labs} seed labs{' with their VM' if args.vm else ''}, {args.minutes:g} min, "
              f"the prune every {PRUNE_INTERVAL} s", flush=True)
        t0 = time.monotonic()
        lines: list[tuple[int, float, dict[str, float]]] = []
        failed = None
        n = 0
        with ThreadPoolExecutor(args.labs) as pool:
            while time.monotonic() - t0 < args.minutes * 60:
                n += 1
                try:
                    cycle(stack, labs, n, pool)
                except Exception as exc:  # noqa: BLE001 - reported, then the labs are destroyed and we stop
                    failed = f"cycle {n}: {type(exc).__name__}: {exc}"
                    print(failed, flush=True)
                    destroy(stack, labs)
                    break
                if n == 1 or n % args.every == 0:
                    lines.append((n, time.monotonic() - t0, figures(stack)))
                    print(f"cycle {n} at {lines[-1][1]:.0f} s: " +
                          ", ".join(f"{k} {v:g}" for k, v in lines[-1][2].items() if not k.startswith("agent ")
                                    or not k[6].isdigit()), flush=True)
        elapsed = time.monotonic() - t0
        if not lines or lines[-1][0] != n:
            lines.append((n, elapsed, figures(stack)))
        left = leaks(before, inventory(run_dir))
    (n0, _, first), (n1, _, last) = lines[0], lines[-1]
    print(f"\n{n} cycles of {args.labs} labs in {elapsed / 60:.1f} min ({elapsed / n:.1f} s a cycle); "
          f"after cycle {n0} -> after cycle {n1}:")
    for key in first:
        if key in last:  # an agent process that was not there at the end (none is recycled) is left out
            print(f"  {key:22} {first[key]:>10g} -> {last[key]:>10g}  ({last[key] - first[key]:+g})")
    print("kernel inventory at the end: " + ("as before the first deploy" if not left else "\n  ".join(["", *left])))
    if failed:
        print(f"FAILED: {failed}")
    return 1 if failed or left else 0


if __name__ == "__main__":
    sys.exit(main())
