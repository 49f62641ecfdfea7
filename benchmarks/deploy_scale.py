"""Deploy/destroy scale benchmark: the engine against the per-operation `ip` baseline, in the same run.

For each N in --sizes: N hosts with one veth each on one bridge, deployed and destroyed through engine.up/down;
then the same N-host work done the naive way (one `ip` process per operation, as a shell script would) and
destroyed with `ip netns del` per namespace. Then a chain of --chain routers in a line, deployed through the
engine, with a ping from the first to the last. Prints wall times, ratios and the engine's peak RSS.

Run as root:  .venv/bin/python benchmarks/deploy_scale.py --sizes 10,100,500 --chain 20
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netops import engine, naming  # noqa: E402
from netops.topology import parse_document  # noqa: E402


def hosts_doc(n: int) -> dict:
    nodes: dict = {"sw": {"kind": "bridge"}}
    links = []
    for i in range(n):
        nodes[f"h{i}"] = {"kind": "host", "interfaces": {"eth0": {"address": f"10.{i // 250}.{i % 250}.1/8"}}}
        links.append({"endpoints": [f"h{i}:eth0", "sw"]})
    return {"version": 1, "name": f"scale{n}", "nodes": nodes, "links": links}


def chain_doc(n: int) -> dict:
    """Routers r0..r{n-1} in a line; link i is 10.200.i.0/24 between r{i} (.1) and r{i+1} (.2); static routes."""
    nodes: dict = {}
    links = []
    for i in range(n):
        ifaces = {}
        if i > 0:
            ifaces["left"] = {"address": f"10.200.{i - 1}.2/24"}
        if i < n - 1:
            ifaces["right"] = {"address": f"10.200.{i}.1/24"}
        routes = []
        if i < n - 1:
            routes.append({"to": "10.200.0.0/16", "via": f"10.200.{i}.2"}) if i == 0 else None
        nodes[f"r{i}"] = {"kind": "router", "interfaces": ifaces, "routes": routes}
        if i < n - 1:
            links.append({"endpoints": [f"r{i}:right", f"r{i + 1}:left"]})
    # specific routes each way: r_i reaches every network to its right via r_{i+1} and to its left via r_{i-1}
    for i in range(n):
        routes = []
        for j in range(n - 1):
            if j > i and i < n - 1:
                routes.append({"to": f"10.200.{j}.0/24", "via": f"10.200.{i}.2"})
            if j < i - 1:
                routes.append({"to": f"10.200.{j}.0/24", "via": f"10.200.{i - 1}.1"})
        nodes[f"r{i}"]["routes"] = routes
    return {"version": 1, "name": f"chain{n}", "nodes": nodes, "links": links}


def run_ip(argv: list[str]) -> None:
    subprocess.run(["ip", *argv], check=True)


def naive(n: int, prefix: str) -> tuple[float, float]:
    """One `ip` process per operation, as a shell script would; then `ip netns del` per namespace."""
    t0 = time.monotonic()
    fabric = f"{prefix}f"
    run_ip(["netns", "add", fabric])
    run_ip(["-n", fabric, "link", "add", "br0", "type", "bridge"])
    run_ip(["-n", fabric, "link", "set", "br0", "up"])
    for i in range(n):
        ns = f"{prefix}{i}"
        run_ip(["netns", "add", ns])
        run_ip(["-n", fabric, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0", "netns", ns])
        run_ip(["-n", fabric, "link", "set", f"v{i}", "master", "br0"])
        run_ip(["-n", fabric, "link", "set", f"v{i}", "up"])
        run_ip(["-n", ns, "addr", "add", f"10.{i // 250}.{i % 250}.1/8", "dev", "eth0"])
        run_ip(["-n", ns, "link", "set", "eth0", "up"])
        run_ip(["-n", ns, "link", "set", "lo", "up"])
    deploy = time.monotonic() - t0
    t0 = time.monotonic()
    for i in range(n):
        run_ip(["netns", "del", f"{prefix}{i}"])
    run_ip(["netns", "del", fabric])
    return deploy, time.monotonic() - t0


def ping(ns: str, address: str) -> bool:
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "--", "ping", "-c", "1", "-W", "2", address],
                          capture_output=True).returncode == 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10,100,500")
    ap.add_argument("--chain", type=int, default=20)
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    os.environ.setdefault("TOPOLAB_RUN_DIR", tempfile.mkdtemp(prefix="topolab-bench-"))
    print(f"machine: {platform.node()} {platform.machine()} kernel {platform.release()}, {os.cpu_count()} cpus, "
          f"python {platform.python_version()}")
    print(f"{'N':>5} {'engine up':>10} {'naive up':>10} {'ratio':>6} {'engine down':>12} {'netns del':>10} {'ratio':>6}")
    for n in [int(x) for x in args.sizes.split(",")]:
        topo = parse_document(hosts_doc(n))
        lab = f"bs{n}"[:8]
        t0 = time.monotonic()
        engine.up(topo, lab)
        up_s = time.monotonic() - t0
        assert ping(naming.node_namespace(lab, "h0"), f"10.{(n - 1) // 250}.{(n - 1) % 250}.1"), "h0 cannot ping"
        t0 = time.monotonic()
        engine.down(lab)
        down_s = time.monotonic() - t0
        if args.no_baseline:
            print(f"{n:>5} {up_s:>9.2f}s {'-':>10} {'-':>6} {down_s:>11.2f}s")
            continue
        naive_up, naive_down = naive(n, f"tlbench{n}x")
        print(f"{n:>5} {up_s:>9.2f}s {naive_up:>9.2f}s {naive_up / up_s:>5.1f}x {down_s:>11.2f}s "
              f"{naive_down:>9.2f}s {naive_down / down_s:>5.1f}x", flush=True)
    if args.chain:
        topo = parse_document(chain_doc(args.chain))
        lab = "bchain"
        t0 = time.monotonic()
        engine.up(topo, lab)
        up_s = time.monotonic() - t0
        last = f"10.200.{args.chain - 2}.2"
        t1 = time.monotonic()
        ok = ping(naming.node_namespace(lab, "r0"), last)
        ping_s = time.monotonic() - t1
        t0 = time.monotonic()
        engine.down(lab)
        print(f"chain of {args.chain} routers: up {up_s:.2f}s, r0 -> {last} ping {'ok' if ok else 'FAILED'} "
              f"({ping_s:.2f}s), down {time.monotonic() - t0:.2f}s")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"engine peak RSS: {rss:.1f} MB (this process; the naive baseline runs in child processes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
