"""Link conditions (model.LinkConditions) on the egress of one interface inside a namespace.

- rate: a tbf root qdisc.
- loss: nft, a netdev `egress` chain bound to the device in the namespace's table `netdev topolab_lc` (tagged),
  `numgen random mod 10000 < k drop`. The egress hook sees bridged frames too (fabric veths are bridge ports),
  which an inet postrouting chain would not.
- delay/jitter: sch_netem when the kernel has it (probed once in a throwaway anonymous namespace). The CI kernel
  lacks it; then the engine carries delay on links with a host/router end through a userspace relay in the fabric
  (netops.delayd, planned by netops.plan) and calls `apply()` with rate and loss only. Asked for delay without
  netem, `apply()` raises a permanent ApplyError naming the link: a condition is never silently dropped.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math

from . import naming, procs
from .errors import ApplyError
from .model import Link, LinkConditions
from .nft import check_comment, check_ifname, list_tables

TABLE = "topolab_lc"
FAMILY = "netdev"
LOSS_SCALE = 10000  # loss resolution: 0.01 %
TBF_LATENCY_MS = 100  # longest a packet may wait in the tbf queue before being dropped


@functools.cache
def supports_delay() -> bool:
    """Whether the kernel has sch_netem; probed once on `lo` of an anonymous namespace that dies with the probe."""
    done = procs.run(["unshare", "--net", "--", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
                     check=False)
    return done.returncode == 0


def _number(value: object, what: str, element: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not lo <= value <= hi:
        raise ApplyError(f"{what} {value!r} must be a number in [{lo}, {hi}]", element=element)
    return float(value)


def tc_argv(ifname: str, cond: LinkConditions, element: str = "", *, netem: bool) -> list[list[str]]:
    """The tc commands (pure) putting delay/jitter (netem) and rate (tbf) on the root of `ifname`; [] if neither."""
    check_ifname(ifname, element)
    cmds: list[list[str]] = []
    delay = cond.delay_ms is not None or cond.jitter_ms is not None
    tbf: list[str] = []
    if cond.rate_bps is not None:
        if isinstance(cond.rate_bps, bool) or not isinstance(cond.rate_bps, int) or cond.rate_bps < 8:
            raise ApplyError(f"rate {cond.rate_bps!r} must be an int of bits per second >= 8", element=element)
        # the bucket must hold at least one full-size frame and ~10 ms of traffic
        burst = max(3200, cond.rate_bps // 8 // 100)
        tbf = ["tbf", "rate", f"{cond.rate_bps}bit", "burst", str(burst), "latency", f"{TBF_LATENCY_MS}ms"]
    if delay:
        if not netem:
            raise ApplyError("delay needs sch_netem, which this kernel lacks", element=element, permanent=True)
        d = _number(cond.delay_ms or 0.0, "delay_ms", element, 0, 60_000)
        netem_args = ["netem", "delay", f"{d:g}ms"]
        if cond.jitter_ms is not None:
            netem_args += [f"{_number(cond.jitter_ms, 'jitter_ms', element, 0, 60_000):g}ms"]
        cmds.append(["tc", "qdisc", "replace", "dev", ifname, "root", "handle", "1:", *netem_args])
        if tbf:
            cmds.append(["tc", "qdisc", "replace", "dev", ifname, "parent", "1:1", "handle", "10:", *tbf])
    elif tbf:
        cmds.append(["tc", "qdisc", "replace", "dev", ifname, "root", "handle", "1:", *tbf])
    return cmds


def loss_threshold(loss_pct: float, element: str = "") -> int:
    return round(_number(loss_pct, "loss_pct", element, 0, 100) * LOSS_SCALE / 100)


def _chain(ifname: str) -> str:
    return "lc_" + hashlib.sha256(ifname.encode()).hexdigest()[:10]


def loss_ruleset(lab: str, link: Link, ifname: str, loss_pct: float | None) -> str:
    """nft commands (pure) replacing this interface's egress loss chain; with loss None, removing it."""
    naming.check_lab_id(lab)
    element = link.path
    check_ifname(ifname, element)
    chain = _chain(ifname)
    spec = (f'{{ type filter hook egress device "{ifname}" priority 0; policy accept; '
            f'comment "{check_comment(naming.tag(lab, link.path, ifname))}" ; }}')
    lines = [
        f'add table {FAMILY} {TABLE} {{ comment "{check_comment(naming.tag(lab, "lc"))}" ; }}',
        f"add chain {FAMILY} {TABLE} {chain} {spec}",
    ]
    if loss_pct is None:
        lines.append(f"delete chain {FAMILY} {TABLE} {chain}")
    else:
        lines += [
            f"flush chain {FAMILY} {TABLE} {chain}",
            f"add rule {FAMILY} {TABLE} {chain} numgen random mod {LOSS_SCALE} < "
            f"{loss_threshold(loss_pct, element)} drop",
        ]
    return "\n".join(lines) + "\n"


def _has_root_qdisc(namespace: str, ifname: str) -> bool:
    out = procs.run(["tc", "-j", "qdisc", "show", "dev", ifname], namespace=namespace).stdout
    return any(q.get("root") and q.get("kind") not in ("noqueue", "pfifo_fast", "mq")
               and q.get("handle") == "1:" for q in json.loads(out or b"[]"))


def _our_table(lab: str, namespace: str, element: str) -> bool:
    for t in list_tables(namespace):
        if (t.family, t.name) == (FAMILY, TABLE):
            if t.lab != lab:
                raise ApplyError(f"nft table {FAMILY} {TABLE} in {namespace} is not this lab's", element=element)
            return True
    return False


def loss_interfaces(namespace: str, ifnames: list[str] | set[str]) -> set[str]:
    """Which of `ifnames` have their loss chain, with its drop rule, in `namespace` (one `nft -j` run)."""
    done = procs.run(["nft", "-j", "list", "table", FAMILY, TABLE], namespace=namespace, check=False)
    if done.returncode != 0:  # no table: no loss chain
        return set()
    with_rules = {item["rule"]["chain"] for item in json.loads(done.stdout or b"{}").get("nftables", [])
                  if "rule" in item and item["rule"].get("table") == TABLE}
    return {name for name in ifnames if _chain(name) in with_rules}


def apply(lab: str, link: Link, namespace: str, ifname: str) -> None:
    """Make the egress of `ifname` in `namespace` match `link.conditions` (idempotent; unset conditions removed)."""
    cond = link.conditions
    element = link.path
    cmds = tc_argv(ifname, cond, element, netem=supports_delay() if (cond.delay_ms or cond.jitter_ms) else False)
    if cmds:
        for cmd in cmds:
            procs.run(cmd, namespace=namespace, element=element)
    elif _has_root_qdisc(namespace, ifname):
        procs.run(["tc", "qdisc", "del", "dev", ifname, "root"], namespace=namespace, element=element)
    if cond.loss_pct is not None or _our_table(lab, namespace, element):
        procs.run(["nft", "-f", "-"], namespace=namespace, element=element,
                  input=loss_ruleset(lab, link, ifname, cond.loss_pct).encode())


def clear(lab: str, link: Link, namespace: str, ifname: str) -> None:
    """Remove every condition from the egress of `ifname` (idempotent)."""
    apply(lab, Link(link.index, link.a, link.b, LinkConditions()), namespace, ifname)
