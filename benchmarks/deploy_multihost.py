"""A lab across simulated hosts against the same lab on one host, in the same run (issue 13's benchmark).

One switch with --per-host hosts on each of --hosts simulated hosts (so the switch spans them all, one VXLAN tunnel
per host), each host deployed by its own agent process (`python -m netops up FILE --span FILE --host NAME`, with
TOPOLAB_HOST_TAG and an underlay namespace of its own on a test underlay bridge, as tests/kernel/test_vxlan.py
does), all hosts at once; then the same lab (same node count, one switch) on one host with `python -m netops up`.
Prints both wall times, each host's own time, and a ping from the first host's first node to the last host's last
node (the far end, across the underlay). Destroys everything it made, also after a failure.

What this measures is the kernel side (netops), not the web tier: each host's part is what its Celery agent runs
for a run across hosts. On 2 cores the simulated hosts share the CPUs; on real hosts they work in parallel. The
1500 nodes on one switch on one host need the switch as a tree of bridges (netops.wiring.switch_bridge); on each
simulated host its 500 fit one bridge.

Run as root:  .venv/bin/python benchmarks/deploy_multihost.py --hosts 3 --per-host 500
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from support import Underlay, netns_exec  # noqa: E402 - the tests' simulated-host underlay, shared

HOST_NAMES = "abcdefgh"


def lab_doc(hosts: int, per_host: int) -> tuple[dict, dict[str, str]]:
    nodes: dict = {"sw": {"kind": "bridge"}}
    links, placement = [], {}
    for h in range(hosts):
        for i in range(per_host):
            n = h * per_host + i
            name = f"n{n}"
            nodes[name] = {"kind": "host", "interfaces": {"eth0": {"address": f"10.{n // 250}.{n % 250}.1/8"}}}
            links.append({"endpoints": [f"{name}:eth0", "sw"]})
            placement[name] = HOST_NAMES[h]
    return {"version": 1, "name": f"multi{hosts}x{per_host}", "nodes": nodes, "links": links}, placement


def agent(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "netops", *argv], capture_output=True, text=True, cwd=REPO, env=env,
                       timeout=1800)
    return time.perf_counter() - t, r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=3)
    ap.add_argument("--per-host", type=int, default=500)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    names = list(HOST_NAMES[:args.hosts])
    doc, placement = lab_doc(args.hosts, args.per_host)
    total = args.hosts * args.per_host
    tmp = Path(tempfile.mkdtemp(prefix="topolab-multihost-"))
    doc_file, span_file = tmp / "lab.json", tmp / "span.json"
    doc_file.write_text(json.dumps(doc))
    lab = "mh" + uuid.uuid4().hex[:5]
    underlay = Underlay(names)
    envs = {h: {**os.environ, "TOPOLAB_HOST_TAG": h, "TOPOLAB_UNDERLAY_NETNS": underlay.underlay[h],
                "TOPOLAB_RUN_DIR": str(tmp / "run")} for h in names}
    span_file.write_text(json.dumps({"placement": placement, "underlays": underlay.address, "vnis": {"sw": 4242}}))
    one_env = {**os.environ, "TOPOLAB_RUN_DIR": str(tmp / "run")}
    one_lab = "oh" + uuid.uuid4().hex[:5]
    failed = False
    try:
        print(f"{total} nodes on one switch: {args.hosts} simulated hosts x {args.per_host}, then one host")
        t0 = time.perf_counter()
        with ThreadPoolExecutor(len(names)) as pool:
            results = dict(zip(names, pool.map(lambda h: agent(
                ["up", str(doc_file), "--lab", lab, "--span", str(span_file), "--host", h], envs[h]), names), strict=True))
        across = time.perf_counter() - t0
        for h, (seconds, r) in results.items():
            print(f"  host {h}: {seconds:7.2f} s  ({args.per_host} nodes{'' if r.returncode == 0 else ', FAILED'})")
            if r.returncode != 0:
                failed = True
                print(r.stdout[-2000:], r.stderr[-2000:], file=sys.stderr)
        first = f"tl{names[0]}-{lab}-n0"  # on the first host; the far end is the last node, on the last host
        far = f"10.{(total - 1) // 250}.{(total - 1) % 250}.1"
        t = time.perf_counter()
        ping = netns_exec(first, ["ping", "-c", "1", "-W", "5", far])
        ping_s = time.perf_counter() - t
        print(f"across {args.hosts} hosts: {across:7.2f} s wall; far-end ping {first} -> {far}: "
              f"{'ok' if ping.returncode == 0 else 'FAILED'} ({ping_s * 1000:.0f} ms with ARP)")
        failed |= ping.returncode != 0
        seconds, r = agent(["up", str(doc_file), "--lab", one_lab], one_env)
        print(f"one host:          {seconds:7.2f} s wall{'' if r.returncode == 0 else ' FAILED'}")
        if r.returncode != 0:
            failed = True
            print(r.stdout[-2000:], r.stderr[-2000:], file=sys.stderr)
        else:
            print(f"ratio one host / across hosts: {seconds / across:.2f}")
    finally:
        for h in names:
            agent(["down", "--lab", lab, "--span", str(span_file), "--host", h], envs[h])
        agent(["down", "--lab", one_lab], one_env)
        underlay.remove()
        subprocess.run(["rm", "-rf", "--one-file-system", str(tmp)], check=False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
