"""Pure tests of the nft ruleset builders and of the table/comment parser."""
from __future__ import annotations

import ipaddress as ia

import pytest
from fakekernel import FakeKernel

from netops import nft
from netops.errors import ApplyError


def test_router_nat_replaces_the_tagged_table_atomically():
    text = nft.router_nat_ruleset("lab1", "r1", ["eth1", "wan0"])
    lines = text.splitlines()
    assert lines[:3] == ["table inet topolab", "delete table inet topolab", "table inet topolab {"]
    assert '\tcomment "topolab:lab1:r1:nat"' in lines
    assert "\t\ttype nat hook postrouting priority srcnat; policy accept;" in lines
    assert '\t\toifname "eth1" masquerade' in lines and '\t\toifname "wan0" masquerade' in lines


@pytest.mark.parametrize("bad", ['eth1" accept', "", "a" * 16, "eth 1", "eth1\n"])
def test_interface_names_cannot_inject(bad):
    with pytest.raises(ApplyError):
        nft.router_nat_ruleset("lab1", "r1", [bad])


def test_external_nat_only_touches_its_own_chains():
    # the address is the fabric end of the uplink's transit link: the only source the host takes from the door
    text = nft.external_nat_commands("lab1", "wan", "tllab1abcd", ia.ip_interface("10.99.0.2/30"))
    assert 'add table inet topolab_lab1 { comment "topolab:lab1" ; }' in text
    assert "ip saddr 10.99.0.2 oifname != \"tllab1abcd\" masquerade" in text
    assert 'iifname "tllab1abcd" ip saddr 10.99.0.2 accept' in text
    assert 'iifname "tllab1abcd" drop' in text  # any other source from the door, and the host itself
    assert text.index('ip saddr 10.99.0.2 accept') < text.index('iifname "tllab1abcd" drop')
    assert "delete table" not in text and "flush table" not in text
    other = nft.external_nat_commands("lab1", "wan-2", "tllab1efgh", ia.ip_interface("10.99.0.5/30"))
    chains = {w for w in text.split() if w.startswith(("post_", "fwd_"))}
    assert chains and chains.isdisjoint(w for w in other.split() if w.startswith(("post_", "fwd_")))
    v6 = nft.external_nat_commands("lab1", "wan", "tllab1abcd", ia.ip_interface("2001:db8::1/64"))
    assert "ip6 saddr 2001:db8::1 " in v6
    with pytest.raises(ApplyError):
        nft.external_nat_commands("lab1", "wan", "tllab1abcd", "10.0.0.1/24 accept")  # type: ignore[arg-type]


def test_parse_tables_reads_comments_from_text():
    text = (
        "table inet filter { # handle 1\n"
        "\tchain input { # handle 1\n"
        '\t\tcomment "topolab:lab1"\n'
        "\t}\n"
        "}\n"
        "table inet topolab_lab1 { # handle 7\n"
        '\tcomment "topolab:lab1"\n'
        "}\n"
        "table ip topolab_lab2 { # handle 8\n"
        "}\n"
        "table netdev topolab_lc { # handle 9\n"
        '\tcomment "topolab:lab2:lc"\n'
        "}\n"
    )
    tables = nft.parse_tables(text)
    assert [(t.family, t.name, t.handle, t.lab) for t in tables] == [
        ("inet", "filter", 1, None),  # a chain comment is not the table's
        ("inet", "topolab_lab1", 7, "lab1"),
        ("ip", "topolab_lab2", 8, None),  # our name, no tag: not ours
        ("netdev", "topolab_lc", 9, "lab2"),
    ]


# ---------------------------------------------------------------- against a fake kernel (netops.kernel.host.Kernel)

LIST = ["nft", "-a", "-t", "list", "ruleset"]
LOAD = ("nft", "-f", "-")
ROOT_TABLE = ["nft", "-a", "list", "table", "inet", "topolab_lab1"]


def loads(kernel: FakeKernel) -> list[tuple[str | None, str]]:
    """(namespace, ruleset) of every `nft -f -` the code ran."""
    return [(c[2], c[3]) for c in kernel.ran("nft") if c[1] == LOAD]


def test_it_lists_tables_in_the_namespace_asked_and_keeps_only_tagged_ones():
    kernel = FakeKernel()
    kernel.answer(LIST, namespace="tl-lab1-r1", stdout=(
        "table inet topolab { # handle 3\n\tcomment \"topolab:lab1:r1:nat\"\n}\n"
        "table inet filter { # handle 4\n}\n"
        "table inet other { # handle 5\n\tcomment \"topolab:lab2\"\n}\n"))
    assert [t.name for t in nft.list_lab_tables("lab1", namespace="tl-lab1-r1", kernel=kernel)] == ["topolab"]
    assert [t.name for t in nft.list_lab_tables(None, namespace="tl-lab1-r1", kernel=kernel)] == ["topolab", "other"]
    assert {c[2] for c in kernel.ran()} == {"tl-lab1-r1"}


def test_router_nat_loads_its_ruleset_into_the_router_namespace():
    kernel = FakeKernel()
    nft.apply_router_nat("lab1", "r1", "tl-lab1-r1", ["eth1"], kernel=kernel)
    assert loads(kernel) == [("tl-lab1-r1", nft.router_nat_ruleset("lab1", "r1", ["eth1"]))]


def test_router_nat_refuses_a_table_of_the_same_name_it_did_not_make():
    kernel = FakeKernel()
    kernel.answer(LIST, namespace="tl-lab1-r1", stdout="table inet topolab { # handle 3\n\tcomment \"mine\"\n}\n")
    with pytest.raises(ApplyError, match="not Topolab's") as err:
        nft.apply_router_nat("lab1", "r1", "tl-lab1-r1", ["eth1"], kernel=kernel)
    assert err.value.element == "nodes.r1.nat"
    assert loads(kernel) == []


def test_router_nat_without_interfaces_deletes_only_its_own_table_by_handle():
    kernel = FakeKernel()
    kernel.answer(LIST, namespace="tl-lab1-r1", stdout=(
        "table inet topolab { # handle 3\n\tcomment \"topolab:lab1:r1:nat\"\n}\n"
        "table inet topolab_lc { # handle 4\n\tcomment \"topolab:lab1:lc\"\n}\n"))
    nft.apply_router_nat("lab1", "r1", "tl-lab1-r1", [], kernel=kernel)
    assert loads(kernel) == [("tl-lab1-r1", "delete table inet handle 3\n")]


def test_a_failing_load_names_the_element():
    kernel = FakeKernel()
    kernel.answer(list(LOAD), namespace="tl-lab1-r1", returncode=1, stderr=b"Error: syntax error")
    with pytest.raises(ApplyError, match="syntax error") as err:
        nft.apply_router_nat("lab1", "r1", "tl-lab1-r1", ["eth1"], kernel=kernel)
    assert err.value.element == "nodes.r1.nat"


def test_delete_lab_tables_deletes_exactly_the_labs_tagged_tables_by_handle():
    kernel = FakeKernel()
    kernel.answer(LIST, stdout=(
        "table inet topolab_lab1 { # handle 7\n\tcomment \"topolab:lab1\"\n}\n"
        "table ip topolab_lab1x { # handle 8\n}\n"  # our shape of name, no tag
        "table inet topolab_lab2 { # handle 9\n\tcomment \"topolab:lab2\"\n}\n"))
    assert nft.delete_lab_tables("lab1", kernel=kernel) == ["inet topolab_lab1"]
    assert loads(kernel) == [(None, "delete table inet handle 7\n")]


def test_external_nat_goes_into_the_labs_root_table():
    kernel = FakeKernel()
    address = ia.ip_interface("10.99.0.2/30")
    nft.apply_external_nat("lab1", "wan", "tllab1mepz", address, kernel=kernel)
    assert loads(kernel) == [(None, nft.external_nat_commands("lab1", "wan", "tllab1mepz", address))]


def _root_table(*chains: tuple[str, int, str]) -> str:
    lines = ["table inet topolab_lab1 { # handle 12", '\tcomment "topolab:lab1"']
    for name, handle, comment in chains:
        lines += [f"\tchain {name} {{ # handle {handle}", f'\t\tcomment "{comment}"', "\t}"]
    return "\n".join([*lines, "}"]) + "\n"


def test_deleting_one_externals_nat_keeps_the_other_externals_chains_and_the_table():
    kernel = FakeKernel()
    wan, dsl = nft.chain_suffix("wan"), nft.chain_suffix("dsl")
    kernel.answer(ROOT_TABLE, stdout=_root_table(
        (f"post_{wan}", 1, "topolab:lab1:external:wan"), (f"fwd_{wan}", 2, "topolab:lab1:external:wan"),
        (f"post_{dsl}", 3, "topolab:lab1:external:dsl")))
    assert nft.external_nat_chains("lab1", kernel=kernel) == {"wan": [f"post_{wan}", f"fwd_{wan}"],
                                                              "dsl": [f"post_{dsl}"]}
    assert nft.delete_external_nat("lab1", "wan", kernel=kernel) is False
    assert loads(kernel) == [(None, "delete chain inet topolab_lab1 handle 1\ndelete chain inet topolab_lab1 handle 2\n")]


def test_deleting_the_last_externals_nat_deletes_the_table_too():
    kernel = FakeKernel()
    kernel.answer(ROOT_TABLE, stdout=_root_table(("post_x", 1, "topolab:lab1:external:wan")))
    assert nft.delete_external_nat("lab1", "wan", kernel=kernel) is True
    assert loads(kernel) == [(None, "delete chain inet topolab_lab1 handle 1\n"),
                             (None, "delete table inet handle 12\n")]


def test_a_root_table_that_is_missing_or_not_the_labs_is_left_alone():
    kernel = FakeKernel()
    kernel.answer(ROOT_TABLE, returncode=1, stderr=b"No such file or directory")
    assert nft.external_nat_chains("lab1", kernel=kernel) == {}
    assert nft.delete_external_nat("lab1", "wan", kernel=kernel) is True
    foreign = FakeKernel()
    foreign.answer(ROOT_TABLE, stdout=_root_table(("post_x", 1, "topolab:lab1:external:wan")).replace(
        '\tcomment "topolab:lab1"', '\tcomment "someone"'))
    assert nft.delete_external_nat("lab1", "wan", kernel=foreign) is True
    assert loads(kernel) == loads(foreign) == []
