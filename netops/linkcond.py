"""Link conditions (model.LinkConditions) on the egress of one interface inside a namespace.

- rate: a tbf root qdisc, set over rtnetlink (netops.kernel.netlink, pyroute2's tbf encoding). Rates above what
  pyroute2 0.9.7's tbf can carry (its TCA_TBF_PARMS rate is 32-bit bytes per second, about 34 Gbit/s; it has no
  TCA_TBF_RATE64) go through `tc`, which has.
- loss: nft, a netdev `egress` chain bound to the device in the namespace's table `netdev topolab_lc` (tagged),
  `numgen random mod 10000 < k drop`. The egress hook sees bridged frames too (fabric veths are bridge ports),
  which an inet postrouting chain would not. Kept as `nft -f -` (argv): pyroute2 0.9.7's ready-made
  nftables expressions do not cover numgen, device hooks or comments (netops.nft says more).
- delay/jitter: sch_netem when the kernel has it (probed once in a throwaway anonymous namespace). The CI kernel
  lacks it; then the engine carries delay on links with a host/router end through a userspace relay in the fabric
  (netops.delayd, planned by netops.plan) and calls `apply()` with rate and loss only. Asked for delay without
  netem, `apply()` raises a permanent ApplyError naming the link: a condition is never silently dropped.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink.rtnl import TC_H_ROOT

from . import naming
from .errors import ApplyError
from .kernel import netlink as nl
from .kernel.host import HOST, Kernel
from .model import Link, LinkConditions
from .nft import check_comment, check_ifname, list_tables, load

TABLE = "topolab_lc"
FAMILY = "netdev"
LOSS_SCALE = 10000  # loss resolution: 0.01 %
TBF_LATENCY_MS = 100  # longest a packet may wait in the tbf queue before being dropped
TBF_MAX_NETLINK_BPS = 8 * 0xFFFFFFFF  # pyroute2's tbf rate field: u32 bytes per second
OURS = nl.tc_handle(1)  # the handle of our root qdisc, tc's "1:"


def supports_delay(kernel: Kernel = HOST) -> bool:
    """Whether the kernel has sch_netem (the real kernel probes once, on `lo` of an anonymous namespace)."""
    return kernel.supports_netem()


def _number(value: object, what: str, element: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not lo <= value <= hi:
        raise ApplyError(f"{what} {value!r} must be a number in [{lo}, {hi}]", element=element)
    return float(value)


@dataclass(frozen=True)
class Qdisc:
    """One qdisc to put on the interface: `tc qdisc replace dev <if> <parent> handle <handle> <kind> <params>`."""

    kind: str  # "tbf" or "netem"
    handle: str  # tc notation, "1:"
    parent: str  # "root" or a class, "1:1"
    params: dict[str, Any]  # tbf: rate_bps, burst, latency_ms; netem: delay_ms, jitter_ms (None: no jitter)


def qdiscs(ifname: str, cond: LinkConditions, element: str = "", *, netem: bool) -> list[Qdisc]:
    """The qdiscs (pure) putting delay/jitter (netem) and rate (tbf) on the root of `ifname`; [] if neither."""
    check_ifname(ifname, element)
    out: list[Qdisc] = []
    delay = cond.delay_ms is not None or cond.jitter_ms is not None
    tbf: dict[str, Any] | None = None
    if cond.rate_bps is not None:
        if isinstance(cond.rate_bps, bool) or not isinstance(cond.rate_bps, int) or cond.rate_bps < 8:
            raise ApplyError(f"rate {cond.rate_bps!r} must be an int of bits per second >= 8", element=element)
        # the bucket must hold at least one full-size frame and ~10 ms of traffic
        tbf = {"rate_bps": cond.rate_bps, "burst": max(3200, cond.rate_bps // 8 // 100),
               "latency_ms": TBF_LATENCY_MS}
    if delay:
        if not netem:
            raise ApplyError("delay needs sch_netem, which this kernel lacks", element=element, permanent=True)
        d = _number(cond.delay_ms or 0.0, "delay_ms", element, 0, 60_000)
        jitter = None if cond.jitter_ms is None else _number(cond.jitter_ms, "jitter_ms", element, 0, 60_000)
        out.append(Qdisc("netem", "1:", "root", {"delay_ms": d, "jitter_ms": jitter}))
        if tbf:
            out.append(Qdisc("tbf", "10:", "1:1", tbf))
    elif tbf:
        out.append(Qdisc("tbf", "1:", "root", tbf))
    return out


def _handle(text: str) -> int:
    major, _, minor = text.partition(":")
    return nl.tc_handle(int(major, 16), int(minor or "0", 16))


def request(index: int, q: Qdisc) -> nl.Request | None:
    """The rtnetlink request (pure) for `q` on link `index`; None when pyroute2 cannot encode it (see tc_argv)."""
    parent = TC_H_ROOT if q.parent == "root" else _handle(q.parent)
    p = q.params
    if q.kind == "netem":
        return nl.qdisc_replace_netem(index, delay_ms=p["delay_ms"], jitter_ms=p["jitter_ms"] or 0.0,
                                      handle=_handle(q.handle), parent=parent)
    if p["rate_bps"] > TBF_MAX_NETLINK_BPS:
        return None
    return nl.qdisc_replace_tbf(index, rate_bps=p["rate_bps"], burst=p["burst"], latency_ms=p["latency_ms"],
                                handle=_handle(q.handle), parent=parent)


def tc_argv(ifname: str, q: Qdisc) -> list[str]:
    """The `tc` command (pure) for a tbf whose rate does not fit pyroute2's 32-bit field (tc sends TCA_TBF_RATE64)."""
    p = q.params
    where = ["root"] if q.parent == "root" else ["parent", q.parent]
    return ["tc", "qdisc", "replace", "dev", ifname, *where, "handle", q.handle,
            "tbf", "rate", f"{p['rate_bps']}bit", "burst", str(p["burst"]), "latency", f"{p['latency_ms']}ms"]


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


def _our_table(lab: str, namespace: str, element: str, kernel: Kernel) -> bool:
    for t in list_tables(namespace, kernel=kernel):
        if (t.family, t.name) == (FAMILY, TABLE):
            if t.lab != lab:
                raise ApplyError(f"nft table {FAMILY} {TABLE} in {namespace} is not this lab's", element=element)
            return True
    return False


def loss_interfaces(namespace: str, ifnames: list[str] | set[str], *, kernel: Kernel = HOST) -> set[str]:
    """Which of `ifnames` have their loss chain, with its drop rule, in `namespace` (one `nft -j` run)."""
    done = kernel.run(["nft", "-j", "list", "table", FAMILY, TABLE], namespace=namespace, check=False)
    if done.returncode != 0:  # no table: no loss chain
        return set()
    with_rules = {item["rule"]["chain"] for item in json.loads(done.stdout or b"{}").get("nftables", [])
                  if "rule" in item and item["rule"].get("table") == TABLE}
    return {name for name in ifnames if _chain(name) in with_rules}


def _shape(namespace: str, ifname: str, plan: list[Qdisc], element: str, kernel: Kernel) -> None:
    """Put `plan` on the interface's egress, or (plan []) remove a root qdisc of ours, over rtnetlink."""
    with kernel.netlink(namespace) as sock:
        dev = sock.link(name=ifname)
        if dev is None:
            raise ApplyError(f"interface {ifname} is missing in {namespace}", element=element)
        for q in plan:
            req = request(dev.index, q)
            try:
                if req is None:
                    kernel.run(tc_argv(ifname, q), namespace=namespace, element=element)
                else:
                    sock.call(req)
            except nl.NetlinkError as exc:
                raise ApplyError(f"{q.kind} qdisc on {ifname}: {exc.strerror}", element=element) from exc
        if plan:
            return
        if any(q.index == dev.index and q.parent == TC_H_ROOT and q.handle == OURS
               and q.kind not in ("noqueue", "pfifo_fast", "mq") for q in sock.qdiscs()):
            try:
                sock.call(nl.qdisc_del_root(dev.index))
            except nl.NetlinkError as exc:
                raise ApplyError(f"remove the root qdisc of {ifname}: {exc.strerror}", element=element) from exc


def apply(lab: str, link: Link, namespace: str, ifname: str, *, kernel: Kernel = HOST) -> None:
    """Make the egress of `ifname` in `namespace` match `link.conditions` (idempotent; unset conditions removed)."""
    cond = link.conditions
    element = link.path
    netem = supports_delay(kernel) if (cond.delay_ms or cond.jitter_ms) else False
    plan = qdiscs(ifname, cond, element, netem=netem)
    _shape(namespace, ifname, plan, element, kernel)
    if cond.loss_pct is not None or _our_table(lab, namespace, element, kernel):
        load(loss_ruleset(lab, link, ifname, cond.loss_pct), namespace, element, kernel=kernel)


def clear(lab: str, link: Link, namespace: str, ifname: str, *, kernel: Kernel = HOST) -> None:
    """Remove every condition from the egress of `ifname` (idempotent)."""
    apply(lab, Link(link.index, link.a, link.b, LinkConditions()), namespace, ifname, kernel=kernel)
