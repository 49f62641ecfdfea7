"""Pure tests of the link-condition builders (tc argv, nft loss chain)."""
from __future__ import annotations

import pytest

from netops import linkcond
from netops.errors import ApplyError
from netops.model import Endpoint, Link, LinkConditions


def link(**cond) -> Link:
    return Link(3, Endpoint("r1", "eth1"), Endpoint("wan"), LinkConditions(**cond))


def test_rate_alone_is_a_tbf_root():
    assert linkcond.tc_argv("eth0", LinkConditions(rate_bps=10_000_000), netem=False) == [
        ["tc", "qdisc", "replace", "dev", "eth0", "root", "handle", "1:",
         "tbf", "rate", "10000000bit", "burst", "12500", "latency", "100ms"],
    ]
    small = linkcond.tc_argv("eth0", LinkConditions(rate_bps=64_000), netem=False)[0]
    assert small[small.index("burst") + 1] == "3200"  # at least a couple of full frames


def test_delay_with_netem_puts_tbf_under_netem():
    cmds = linkcond.tc_argv("eth0", LinkConditions(delay_ms=20, jitter_ms=5, rate_bps=1_000_000), netem=True)
    assert cmds[0][-4:] == ["netem", "delay", "20ms", "5ms"] and cmds[0][5:8] == ["root", "handle", "1:"]
    assert cmds[1][5:9] == ["parent", "1:1", "handle", "10:"] and "tbf" in cmds[1]


def test_delay_without_netem_is_refused_permanently_never_ignored():
    with pytest.raises(ApplyError) as err:
        linkcond.tc_argv("eth0", LinkConditions(delay_ms=20), "links.3", netem=False)
    assert err.value.permanent and err.value.element == "links.3" and "sch_netem" in err.value.message
    with pytest.raises(ApplyError):
        linkcond.tc_argv("eth0", LinkConditions(jitter_ms=1), netem=False)


def test_bad_values_are_refused():
    for cond in (LinkConditions(rate_bps=-5), LinkConditions(rate_bps=True), LinkConditions(rate_bps="1mbit")):
        with pytest.raises(ApplyError):
            linkcond.tc_argv("eth0", cond, netem=False)
    with pytest.raises(ApplyError):
        linkcond.loss_threshold(101)
    with pytest.raises(ApplyError):
        linkcond.loss_threshold(float("nan"))


def test_loss_chain_is_bound_to_the_device_and_tagged():
    text = linkcond.loss_ruleset("lab1", link(loss_pct=12.5), "eth1", 12.5)
    assert 'add table netdev topolab_lc { comment "topolab:lab1:lc" ; }' in text
    assert 'type filter hook egress device "eth1" priority 0' in text
    assert 'comment "topolab:lab1:links.3:eth1"' in text
    assert "numgen random mod 10000 < 1250 drop" in text
    removal = linkcond.loss_ruleset("lab1", link(), "eth1", None)
    assert removal.splitlines()[-1].startswith("delete chain netdev topolab_lc lc_")
    with pytest.raises(ApplyError):
        linkcond.loss_ruleset("lab1", link(loss_pct=1), 'eth1" drop', 1)
