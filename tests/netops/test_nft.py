"""Pure tests of the nft ruleset builders and of the table/comment parser."""
from __future__ import annotations

import ipaddress as ia

import pytest

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
