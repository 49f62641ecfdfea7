"""OSPF convergence of a ring of N FRR routers: deploy time, time until every router has every loopback, FRR memory.

A ring r0 - r1 - ... - r(N-1) - r0 of point-to-point /30 links, each router with a /32 loopback announced in area 0
(hello 1 s, dead 4 s). Measured from the moment engine.up is called (pressing Deploy):
  - deploy: engine.up returns (namespaces, links, addresses, every FRR instance started and configured)
  - converged: every router's kernel table holds a route to every other router's loopback
  - memory: PSS and RSS of all FRR processes of the lab, divided by N (PSS shares the libraries fairly)
Prints one line per N and, with --markdown, a table row per N for docs/performance.md.
Usage: sudo flock /run/topolab-kernel-tests.lock .venv/bin/python benchmarks/ospf_converge.py [--sizes 10 50 100]
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netops import engine, frr, naming, procs
from netops.kernel import netns
from netops.kernel.netlink import NetlinkSocket
from netops.topology import parse_document


def loopback(i: int) -> str:
    return f"10.255.{i // 250}.{i % 250 + 1}"


def ring(n: int) -> dict:
    nodes: dict = {}
    links = []
    for i in range(n):
        left = ipaddress.ip_network("10.0.0.0/16").network_address + 4 * ((i - 1) % n)
        right = ipaddress.ip_network("10.0.0.0/16").network_address + 4 * i
        nodes[f"r{i}"] = {
            "kind": "router",
            "interfaces": {"eth0": {"address": f"{right + 1}/30"}, "eth1": {"address": f"{left + 2}/30"}},
            "routing": {"loopback": f"{loopback(i)}/32",
                        "ospf": {"areas": {0: {"interfaces": ["eth0", "eth1"], "passive": ["lo"]}},
                                 "hello": 1, "dead": 4}}}
        links.append({"endpoints": [f"r{i}:eth0", f"r{(i + 1) % n}:eth1"]})
    return {"version": 1, "name": f"ospf-ring-{n}", "nodes": nodes, "links": links}


def loopbacks_seen(spaces: netns.Namespaces, lab: str, n: int) -> int:
    """How many routers have a route to every other router's loopback."""
    wanted = {f"{loopback(i)}/32" for i in range(n)}
    done = 0
    for i in range(n):
        ns = naming.node_namespace(lab, f"r{i}")

        def routes(ns=ns) -> set[str]:
            with NetlinkSocket(ns) as nl:
                return {r.dst for r in nl.routes()}

        have = spaces.run_in(ns, routes)
        if len(wanted - have - {f"{loopback(i)}/32"}) == 0:
            done += 1
    return done


def memory(lab: str) -> tuple[float, float]:
    """(PSS, RSS) in MiB of every FRR process of the lab."""
    pss = rss = 0
    for proc in procs.find(lab):
        if not frr.is_frr_role(proc.role):
            continue
        with open(f"/proc/{proc.pid}/smaps_rollup") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key == "Pss":
                    pss += int(value.split()[0])
                elif key == "Rss":
                    rss += int(value.split()[0])
    return pss / 1024, rss / 1024


def run(n: int, timeout: float) -> dict:
    lab = f"bo{n}"
    topology = parse_document(ring(n))
    engine.down(lab)
    started = time.monotonic()
    try:
        result = engine.up(topology, lab)
        deployed = time.monotonic() - started
        converged = None
        with netns.Namespaces() as spaces:
            while time.monotonic() - started < timeout:
                if loopbacks_seen(spaces, lab, n) == n:
                    converged = time.monotonic() - started
                    break
                time.sleep(0.2)
        pss, rss = memory(lab)
        return {"n": n, "deploy": deployed, "converged": converged, "pss": pss / n, "rss": rss / n,
                "steps": len(result.steps)}
    finally:
        engine.down(lab)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (namespaces, FRR)")
    os.environ.setdefault("TOPOLAB_RUN_DIR", tempfile.mkdtemp(prefix="topolab-bench-ospf-"))
    rows = []
    for n in args.sizes:
        r = run(n, args.timeout)
        rows.append(r)
        conv = f"{r['converged']:.2f} s" if r["converged"] is not None else f"not within {args.timeout:.0f} s"
        print(f"N={n:4d}  deploy {r['deploy']:6.2f} s  every loopback everywhere {conv:>10}  "
              f"FRR memory per router: PSS {r['pss']:.1f} MiB, RSS {r['rss']:.1f} MiB", flush=True)
    if args.markdown:
        print("\n| Routers | Deploy | Every loopback in every table | FRR PSS per router | FRR RSS per router |")
        print("|---|---|---|---|---|")
        for r in rows:
            conv = f"{r['converged']:.1f} s" if r["converged"] is not None else "—"
            print(f"| {r['n']} | {r['deploy']:.1f} s | {conv} | {r['pss']:.1f} MiB | {r['rss']:.1f} MiB |")


if __name__ == "__main__":
    main()
