"""netops.hosts: a lab host's name and underlay address as an operator gives them (pure), and the node count."""
from __future__ import annotations

import pytest

from netops import hosts


@pytest.mark.parametrize("name", ["lab1", "a", "host-2", "0", "x" * 63, "a-b"])
def test_host_names_that_are_one_lower_case_label_are_taken(name):
    assert hosts.check_host_name(name) == name


@pytest.mark.parametrize("name", ["", "../x", "-Q", "a" * 64, "A B", "Lab1", "a.b", "a/b", "a_b", "x\n", "a\0",
                                  " a", "é", None, 7, "agent,agent", "a-"])
def test_hostile_or_malformed_host_names_are_refused(name):
    with pytest.raises(ValueError, match="host name"):
        hosts.check_host_name(name)


@pytest.mark.parametrize("machine,expected", [
    ("lab-1", "lab-1"), ("Lab-1.example.org", "lab-1"), ("--weird_Name", "weird-name"), ("lab-.x", "lab"), ("", "localhost"),
    ("...", "localhost"), ("x" * 80, "x" * 63), ("ünïcode", "n-code"),
])
def test_the_default_is_a_valid_form_of_the_machine_host_name(machine, expected):
    name = hosts.default_host_name(machine)
    assert name == expected and hosts.check_host_name(name) == name


@pytest.mark.parametrize("address", ["127.0.0.1", "192.0.2.10", "10.1.2.3", " 198.51.100.7 "])
def test_unicast_ipv4_underlay_addresses_are_taken(address):
    assert hosts.check_underlay_address(address) == address.strip()


@pytest.mark.parametrize("address", ["", "1.2.3", "256.1.1.1", "::1", "fe80::1", "224.0.0.1", "0.0.0.0",
                                     "255.255.255.255", "10.0.0.1/24", "10.0.0.1; rm -rf /", "-Q", None])
def test_bad_underlay_addresses_are_refused(address):
    with pytest.raises(ValueError, match="underlay address"):
        hosts.check_underlay_address(address)


def test_nodes_are_counted_from_node_namespaces_minus_stopped_ones():
    names = ["tl-lab1", "tl-lab1-h1", "tl-lab1-r1", "tl-lab2-h1", "tl-lab2", "other", "tl-BAD-h1", "tl-lab3-9x"]
    assert hosts.count_nodes(names, {}) == 3
    assert hosts.count_nodes(names, {"lab1": {"r1"}}) == 2
    assert hosts.count_nodes([], {}) == 0
