"""Pure tests of the link-condition builders (qdiscs and their rtnetlink requests or tc argv, nft loss chain)."""
from __future__ import annotations

import pytest

from netops import linkcond
from netops.errors import ApplyError
from netops.kernel import netlink as nl
from netops.kernel import nlcodec
from netops.model import Endpoint, Link, LinkConditions


def link(**cond) -> Link:
    return Link(3, Endpoint("r1", "eth1"), Endpoint("wan"), LinkConditions(**cond))


def test_rate_alone_is_a_tbf_root():
    plan = linkcond.qdiscs("eth0", LinkConditions(rate_bps=10_000_000), netem=False)
    assert plan == [linkcond.Qdisc("tbf", "1:", "root", {"rate_bps": 10_000_000, "burst": 12500, "latency_ms": 100})]
    small = linkcond.qdiscs("eth0", LinkConditions(rate_bps=64_000), netem=False)[0]
    assert small.params["burst"] == 3200  # at least a couple of full frames
    # over rtnetlink: the same qdisc, as pyroute2 encodes it for the link's index
    msg = nlcodec.decode(bytes(linkcond.request(4, plan[0]).data), 0)
    assert (msg.get_attr("TCA_KIND"), msg["index"], msg["handle"], msg["parent"]) == ("tbf", 4, 0x10000, nl.TC_H_ROOT)
    assert msg.get_attr("TCA_OPTIONS").get_attr("TCA_TBF_PARMS")["rate"] == 10_000_000 // 8


def test_rates_beyond_pyroute2s_tbf_go_through_tc():
    """pyroute2 0.9.7's tbf carries the rate as 32-bit bytes per second (no TCA_TBF_RATE64): above ~34 Gbit/s the
    same qdisc is set with `tc`, which has it."""
    fast = linkcond.qdiscs("eth0", LinkConditions(rate_bps=40_000_000_000), netem=False)[0]
    assert linkcond.request(4, fast) is None
    assert linkcond.tc_argv("eth0", fast) == [
        "tc", "qdisc", "replace", "dev", "eth0", "root", "handle", "1:",
        "tbf", "rate", "40000000000bit", "burst", "50000000", "latency", "100ms"]
    assert linkcond.request(4, linkcond.qdiscs("eth0", LinkConditions(rate_bps=34_000_000_000), netem=False)[0])
    plan = linkcond.qdiscs("eth0", LinkConditions(rate_bps=10_000_000), netem=False)
    assert linkcond.tc_argv("eth0", plan[0]) == [
        "tc", "qdisc", "replace", "dev", "eth0", "root", "handle", "1:",
        "tbf", "rate", "10000000bit", "burst", "12500", "latency", "100ms"]


def test_delay_with_netem_puts_tbf_under_netem():
    plan = linkcond.qdiscs("eth0", LinkConditions(delay_ms=20, jitter_ms=5, rate_bps=1_000_000), netem=True)
    assert plan[0].kind == "netem" and plan[0].params == {"delay_ms": 20, "jitter_ms": 5}
    assert (plan[0].parent, plan[0].handle) == ("root", "1:")
    assert (plan[1].parent, plan[1].handle) == ("1:1", "10:") and plan[1].kind == "tbf"
    netem, tbf = (nlcodec.decode(bytes(linkcond.request(4, q).data), 0) for q in plan)
    assert (netem.get_attr("TCA_KIND"), netem["handle"], netem["parent"]) == ("netem", 0x10000, nl.TC_H_ROOT)
    assert (tbf.get_attr("TCA_KIND"), tbf["handle"], tbf["parent"]) == ("tbf", 0x100000, 0x10001)  # tc: hex


def test_delay_without_netem_is_refused_permanently_never_ignored():
    with pytest.raises(ApplyError) as err:
        linkcond.qdiscs("eth0", LinkConditions(delay_ms=20), "links.3", netem=False)
    assert err.value.permanent and err.value.element == "links.3" and "sch_netem" in err.value.message
    with pytest.raises(ApplyError):
        linkcond.qdiscs("eth0", LinkConditions(jitter_ms=1), netem=False)


def test_bad_values_are_refused():
    for cond in (LinkConditions(rate_bps=-5), LinkConditions(rate_bps=True), LinkConditions(rate_bps="1mbit")):
        with pytest.raises(ApplyError):
            linkcond.qdiscs("eth0", cond, netem=False)
    with pytest.raises(ApplyError):
        linkcond.qdiscs('eth0" drop', LinkConditions(rate_bps=64_000), netem=False)
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


@pytest.mark.parametrize("other", [{"kind": "external", "nat": True, "address": "203.0.113.1/24"},
                                   {"kind": "bridge"}, {"kind": "vm", "image": "tiny", "interfaces": {"eth0": None}}])
def test_conditions_on_a_link_with_no_namespace_end_are_refused_by_the_checker(other):
    """Found by the fuzz: a VM wired to an external, a bridge or another VM with a delay passed validation, then
    the plan raised ApplyError. Shaping needs a host's or router's interface (or two bridges)."""
    from netops.topology import validate_document

    end = "o:eth0" if other["kind"] == "vm" else "o"
    doc = {"version": 1, "name": "shaped",
           "nodes": {"v": {"kind": "vm", "image": "tiny", "interfaces": {"eth0": None}}, "o": other},
           "links": [{"endpoints": ["v:eth0", end], "delay": "10ms", "loss": "1%"}]}
    [problem] = validate_document(doc)
    assert problem.path == "links.0.delay" and "host or router" in problem.message
    doc["nodes"]["h"] = {"kind": "host", "interfaces": {"eth0": None}}
    doc["nodes"]["v"]["interfaces"] = {"eth0": None}
    doc["links"] = [{"endpoints": ["h:eth0", end], "delay": "10ms"}, {"endpoints": ["v:eth0", "b2"]}]
    doc["nodes"]["b2"] = {"kind": "bridge"}
    if other["kind"] != "vm":
        assert validate_document(doc) == []  # a host's end is shaped
