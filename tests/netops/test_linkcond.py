"""Pure tests of the link-condition builders (qdiscs and their rtnetlink requests or tc argv, nft loss chain)."""
from __future__ import annotations

import json

import pytest
from fakekernel import FakeKernel

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


# ---------------------------------------------------------------- apply/clear against a fake kernel

NS = "tl-lab1-r1"
LIST = ("nft", "-a", "-t", "list", "ruleset")


def kernel_with_eth1(**qdisc: int | str) -> FakeKernel:
    kernel = FakeKernel()
    ns = kernel.namespace(NS)
    ns.link("lo", 1)
    ns.link("eth1", 4, kind="veth")
    if qdisc:
        ns.qdiscs.append(nl.QdiscInfo(4, nl.TC_H_ROOT, int(qdisc["handle"]), str(qdisc["kind"])))
    return kernel


def sent(kernel: FakeKernel) -> list:
    """(namespace, decoded message) of every rtnetlink request."""
    return [(ns, nlcodec.decode(bytes(req.data), 0)) for ns, req in kernel.requests]


def test_rate_is_a_tbf_on_the_interfaces_index_in_its_namespace_and_no_loss_chain_is_made():
    kernel = kernel_with_eth1()
    linkcond.apply("lab1", link(rate_bps=10_000_000), NS, "eth1", kernel=kernel)
    [(ns, msg)] = sent(kernel)
    assert (ns, msg.get_attr("TCA_KIND"), msg["index"], msg["parent"]) == (NS, "tbf", 4, nl.TC_H_ROOT)
    assert [c[1] for c in kernel.ran()] == [LIST]  # asked whether our loss table is there; loaded nothing
    assert ("supports_netem",) not in kernel.calls  # no delay: the kernel's netem is not asked about


def test_loss_loads_the_interfaces_egress_chain():
    kernel = kernel_with_eth1()
    linkcond.apply("lab1", link(loss_pct=12.5), NS, "eth1", kernel=kernel)
    assert [(c[1], c[2], c[3]) for c in kernel.ran()] == [
        (("nft", "-f", "-"), NS, linkcond.loss_ruleset("lab1", link(loss_pct=12.5), "eth1", 12.5))]
    assert kernel.requests == []  # no rate, no qdisc of ours to remove


def test_clearing_removes_our_root_qdisc_and_the_loss_chain_of_a_table_of_ours():
    kernel = kernel_with_eth1(handle=linkcond.OURS, kind="tbf")
    kernel.answer(list(LIST), namespace=NS, stdout='table netdev topolab_lc { # handle 2\n\tcomment "topolab:lab1:lc"\n}\n')
    linkcond.clear("lab1", link(loss_pct=1, rate_bps=64_000), NS, "eth1", kernel=kernel)
    [(ns, msg)] = sent(kernel)
    assert (ns, msg["index"], msg["parent"]) == (NS, 4, nl.TC_H_ROOT) and msg["header"]["type"] == nl.RTM_DELQDISC
    assert kernel.ran("nft")[-1][3] == linkcond.loss_ruleset("lab1", link(), "eth1", None)


def test_clearing_leaves_a_root_qdisc_that_is_not_ours():
    kernel = kernel_with_eth1(handle=nl.tc_handle(0x8001), kind="tbf")
    linkcond.clear("lab1", link(), NS, "eth1", kernel=kernel)
    assert kernel.requests == []


def test_a_loss_table_of_another_lab_is_refused():
    kernel = kernel_with_eth1()
    kernel.answer(list(LIST), namespace=NS, stdout='table netdev topolab_lc { # handle 2\n\tcomment "topolab:lab2:lc"\n}\n')
    with pytest.raises(ApplyError, match="not this lab's") as err:
        linkcond.apply("lab1", link(), NS, "eth1", kernel=kernel)
    assert err.value.element == "links.3"


def test_rates_beyond_pyroute2s_tbf_are_set_with_tc_in_the_namespace():
    kernel = kernel_with_eth1()
    linkcond.apply("lab1", link(rate_bps=40_000_000_000), NS, "eth1", kernel=kernel)
    assert kernel.requests == []
    [tc] = kernel.ran("tc")
    assert (tc[1][:6], tc[2]) == (("tc", "qdisc", "replace", "dev", "eth1", "root"), NS)


def test_a_missing_interface_or_a_refused_qdisc_names_the_link():
    kernel = FakeKernel()
    kernel.namespace(NS)
    with pytest.raises(ApplyError, match="eth1 is missing") as err:
        linkcond.apply("lab1", link(rate_bps=64_000), NS, "eth1", kernel=kernel)
    assert err.value.element == "links.3"
    kernel = kernel_with_eth1()
    kernel.namespace(NS).refuse["set tbf qdisc on link 4"] = 22
    with pytest.raises(ApplyError, match="tbf qdisc on eth1: .*Invalid argument") as err:
        linkcond.apply("lab1", link(rate_bps=64_000), NS, "eth1", kernel=kernel)
    assert err.value.element == "links.3"


def test_delay_asks_the_kernel_for_netem_and_is_refused_without_it():
    kernel = kernel_with_eth1()
    with pytest.raises(ApplyError) as err:
        linkcond.apply("lab1", link(delay_ms=20), NS, "eth1", kernel=kernel)
    assert err.value.permanent and ("supports_netem",) in kernel.calls and kernel.requests == []
    kernel.netem = True
    linkcond.apply("lab1", link(delay_ms=20), NS, "eth1", kernel=kernel)
    assert [msg.get_attr("TCA_KIND") for _, msg in sent(kernel)] == ["netem"]


def test_loss_interfaces_are_those_whose_chain_has_a_rule():
    kernel = FakeKernel()
    argv = ["nft", "-j", "list", "table", "netdev", "topolab_lc"]
    chain = linkcond._chain("eth1")
    kernel.answer(argv, namespace=NS, stdout=json.dumps({"nftables": [
        {"table": {"name": "topolab_lc"}}, {"chain": {"name": chain}},
        {"rule": {"table": "topolab_lc", "chain": chain}}, {"chain": {"name": linkcond._chain("eth2")}}]}))
    assert linkcond.loss_interfaces(NS, ["eth1", "eth2"], kernel=kernel) == {"eth1"}
    missing = FakeKernel()
    missing.answer(argv, namespace=NS, returncode=1)
    assert linkcond.loss_interfaces(NS, ["eth1"], kernel=missing) == set()


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
