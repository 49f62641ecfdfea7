"""Deploy/destroy scale benchmark: the engine against the per-operation `ip` baseline, in the same run.

For each N in --sizes: N hosts with one veth each on one bridge, deployed and destroyed through engine.up/down
(with the engine's time per kind of step); then the same N-host work done the naive way, a bash script with one
`ip` process per operation (or, --baseline spawn, each `ip` spawned from Python), destroyed with `ip netns del` per
namespace. Then a chain of --chain routers in a line, deployed through the engine, with a ping from the first to
the last. Every timed deploy starts on a settled machine (--settle, see settle()). Prints wall times, ratios and
the engine's peak RSS. docs/performance.md has the figures and what they mean.

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

from netops import engine, naming
from netops.topology import parse_document


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


def _cpu_busy(window: float = 0.2) -> float:
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait
    (t0, i0) = sample()
    time.sleep(window)
    (t1, i1) = sample()
    return 1 - (i1 - i0) / max(1, t1 - t0)


_last_delete = time.monotonic()  # anything may have deleted namespaces just before we started


def settle(seconds: float) -> None:
    """Start a timed deploy on a quiet machine, the same for the engine and the baseline: `seconds` after the last
    mass delete and once the CPUs are idle.

    Why: the kernel frees deleted namespaces in a work queue for about 0.5 s after 500 are removed, and where /run is
    ext4 without a journal (this VM) the file system will not reuse an inode freed in the last 30-35 s: creating a
    file in /run/netns, which `ip netns add` and the engine both do for every namespace, then scans past every
    recently freed inode (measured: 0.8 ms per file right after a run of the benchmark, under 0.3 ms settled).
    Whichever side ran second would otherwise pay for the other side's destroy."""
    time.sleep(max(0.0, _last_delete + seconds - time.monotonic()))
    deadline = time.monotonic() + 30
    while _cpu_busy() > 0.10 and time.monotonic() < deadline:
        pass


def deleted() -> None:
    global _last_delete
    _last_delete = time.monotonic()


class Phases:
    """Wall time per kind of step of one engine.up, from its run.step events (each step lasts until the next)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._action: str | None = None
        self._since = time.monotonic()

    def __call__(self, event) -> None:
        if event.type == "run.step":
            self.stop()
            self._action = event.data.get("action")

    def stop(self) -> None:
        now = time.monotonic()
        if self._action:
            self.seconds[self._action] = self.seconds.get(self._action, 0.0) + now - self._since
        self._action, self._since = None, now

    def __str__(self) -> str:
        return ", ".join(f"{action} {s:.2f}s" for action, s in self.seconds.items() if s >= 0.005)


def naive_scripts(n: int, prefix: str) -> tuple[str, str]:
    """The shell scripts a person would write for the same N-host lab: one `ip` per operation; `ip netns del` each."""
    fabric = f"{prefix}f"
    up = [f"ip netns add {fabric}", f"ip -n {fabric} link add br0 type bridge", f"ip -n {fabric} link set br0 up"]
    for i in range(n):
        ns = f"{prefix}{i}"
        up += [f"ip netns add {ns}",
               f"ip -n {fabric} link add v{i} type veth peer name eth0 netns {ns}",
               f"ip -n {fabric} link set v{i} master br0",
               f"ip -n {fabric} link set v{i} up",
               f"ip -n {ns} addr add 10.{i // 250}.{i % 250}.1/8 dev eth0",
               f"ip -n {ns} link set eth0 up",
               f"ip -n {ns} link set lo up"]
    down = [f"ip netns del {prefix}{i}" for i in range(n)] + [f"ip netns del {fabric}"]
    return "\n".join(["set -e", *up, ""]), "\n".join(["set -e", *down, ""])


def run_naive(script: str, how: str) -> float:
    """Run one baseline script and return its wall time: with bash (`sh`, as written) or each line spawned
    straight from Python (`spawn`: no shell, posix_spawn of `ip`, slightly cheaper per process)."""
    if how == "sh":
        with tempfile.NamedTemporaryFile("w", prefix="topolab-baseline-", suffix=".sh") as f:
            f.write(script)
            f.flush()
            t0 = time.monotonic()
            subprocess.run(["bash", f.name], check=True)
            return time.monotonic() - t0
    t0 = time.monotonic()
    for line in script.splitlines()[1:]:
        if line:
            subprocess.run(line.split(), check=True)
    return time.monotonic() - t0


def naive(n: int, prefix: str, settle_s: float, how: str) -> tuple[float, float]:
    """The same N-host work the naive way, then its destroy; wall times of both."""
    up, down = naive_scripts(n, prefix)
    settle(settle_s)
    deploy = run_naive(up, how)
    destroy = run_naive(down, how)
    deleted()
    return deploy, destroy


def ping(ns: str, address: str) -> bool:
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "--", "ping", "-c", "1", "-W", "2", address],
                          capture_output=True).returncode == 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10,100,500")
    ap.add_argument("--chain", type=int, default=20)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--baseline", choices=("sh", "spawn"), default="sh",
                    help="run the baseline as a bash script (default) or spawn each `ip` from Python")
    ap.add_argument("--settle", type=float, default=35.0,
                    help="seconds to wait after a mass delete before the next timed deploy (0: do not wait)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    os.environ.setdefault("TOPOLAB_RUN_DIR", tempfile.mkdtemp(prefix="topolab-bench-"))
    print(f"machine: {platform.node()} {platform.machine()} kernel {platform.release()}, {os.cpu_count()} cpus, "
          f"python {platform.python_version()}; baseline: {'bash script' if args.baseline == 'sh' else 'ip spawned per line'}, "
          f"settle {args.settle:.0f}s before each timed deploy")
    print(f"{'N':>5} {'engine up':>10} {'naive up':>10} {'ratio':>6} {'engine down':>12} {'netns del':>10} {'ratio':>6}")
    for n in [int(x) for x in args.sizes.split(",")]:
        topo = parse_document(hosts_doc(n))
        lab = f"bs{n}"[:8]
        settle(args.settle)
        phases = Phases()
        t0 = time.monotonic()
        try:
            engine.up(topo, lab, on_event=phases)
            up_s = time.monotonic() - t0
            phases.stop()
            assert ping(naming.node_namespace(lab, "h0"), f"10.{(n - 1) // 250}.{(n - 1) % 250}.1"), "h0 cannot ping"
        except BaseException:  # a failed deploy (or ^C) leaves nothing behind: destroy what it made, then fail
            engine.down(lab)
            raise
        t0 = time.monotonic()
        engine.down(lab)
        down_s = time.monotonic() - t0
        deleted()
        if args.no_baseline:
            print(f"{n:>5} {up_s:>9.2f}s {'-':>10} {'-':>6} {down_s:>11.2f}s")
        else:
            naive_up, naive_down = naive(n, f"tlbench{n}x", args.settle, args.baseline)
            print(f"{n:>5} {up_s:>9.2f}s {naive_up:>9.2f}s {naive_up / up_s:>5.1f}x {down_s:>11.2f}s "
                  f"{naive_down:>9.2f}s {naive_down / down_s:>5.1f}x", flush=True)
        print(f"      engine up by step: {phases}", flush=True)
    if args.chain:
        topo = parse_document(chain_doc(args.chain))
        lab = "bchain"
        settle(args.settle)
        t0 = time.monotonic()
        try:
            engine.up(topo, lab)
            up_s = time.monotonic() - t0
            last = f"10.200.{args.chain - 2}.2"
            t1 = time.monotonic()
            ok = ping(naming.node_namespace(lab, "r0"), last)
            ping_s = time.monotonic() - t1
        except BaseException:
            engine.down(lab)
            raise
        t0 = time.monotonic()
        engine.down(lab)
        print(f"chain of {args.chain} routers: up {up_s:.2f}s, r0 -> {last} ping {'ok' if ok else 'FAILED'} "
              f"({ping_s:.2f}s), down {time.monotonic() - t0:.2f}s")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"engine peak RSS: {rss:.1f} MB (this process; the naive baseline runs in child processes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
