"""Pure tests of the dnsmasq argv builder, the lease parser and the udhcpc argv."""
from __future__ import annotations

import ipaddress as ia

import pytest

from netops import dhcpclient, dnsmasq
from netops.errors import ApplyError, TopologyError
from netops.model import DhcpServer, Interface


@pytest.fixture(autouse=True)
def run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TOPOLAB_RUN_DIR", str(tmp_path))
    return tmp_path


def iface(**server) -> Interface:
    defaults = dict(start=ia.IPv4Address("10.0.1.100"), end=ia.IPv4Address("10.0.1.150"))
    return Interface("eth0", (ia.ip_interface("10.0.1.254/24"),), dhcp_server=DhcpServer(**{**defaults, **server}))


def test_argv_serves_the_range_with_the_interface_address_as_gateway(run_dir):
    args = dnsmasq.argv("lab1", "r1", iface())
    assert args[0] == "dnsmasq"
    assert "--port=0" in args and "--conf-file=/dev/null" in args and "--keep-in-foreground" in args
    assert "--interface=eth0" in args and "--bind-interfaces" in args
    assert "--dhcp-range=10.0.1.100,10.0.1.150,3600" in args
    assert "--dhcp-option=3,10.0.1.254" in args
    assert not any(a.startswith("--dhcp-option=6,") for a in args)
    # the lease file is the lab's own (dnsmasq writes it as the lab's uid), in its cell dir
    assert f"--dhcp-leasefile={run_dir / 'lab1' / 'cell' / 'dnsmasq-r1-eth0.leases'}" in args


def test_argv_offers_at_once_and_without_raw_sockets():
    """No ICMP probe of an address before the offer (dnsmasq waited 3 s for each new address), and so no net_raw:
    dnsmasq needed it only for that probe's socket."""
    args = dnsmasq.argv("lab1", "r1", iface())
    assert "--no-ping" in args and "--dhcp-authoritative" in args
    assert "net_raw" not in dnsmasq.CAPS
    assert set(dnsmasq.CAPS) == {"net_admin", "net_bind_service", "setuid", "setgid"}


def test_argv_uses_explicit_gateway_dns_and_lease_time():
    args = dnsmasq.argv("lab1", "r1", iface(gateway=ia.IPv4Address("10.0.1.1"), lease_time=600,
                                            dns=(ia.IPv4Address("192.0.2.53"), ia.IPv4Address("192.0.2.54"))))
    assert "--dhcp-option=3,10.0.1.1" in args
    assert "--dhcp-option=6,192.0.2.53,192.0.2.54" in args
    assert "--dhcp-range=10.0.1.100,10.0.1.150,600" in args


def test_argv_rejects_unvalidated_values():
    with pytest.raises(ApplyError, match="IPv4"):
        dnsmasq.argv("lab1", "r1", iface(start="10.0.1.100,10.0.1.200 --dhcp-script=/tmp/x"))
    with pytest.raises(ApplyError, match="lease time"):
        dnsmasq.argv("lab1", "r1", iface(lease_time=10))
    with pytest.raises(ApplyError) as err:
        dnsmasq.argv("lab1", "r1", Interface("eth0", (ia.ip_interface("192.0.2.1/24"),),
                                             dhcp_server=DhcpServer(ia.IPv4Address("10.0.1.100"),
                                                                    ia.IPv4Address("10.0.1.150"))))
    assert "no IPv4 address in the subnet" in str(err.value)
    with pytest.raises(ApplyError):
        dnsmasq.argv("lab1", "../r1", iface())
    with pytest.raises(TopologyError):
        dnsmasq.argv("LAB!", "r1", iface())


def test_lease_file_is_parsed():
    text = (
        "1795946288 96:74:E9:a1:5e:56 10.0.1.140 h2 01:96:74:e9:a1:5e:56\n"
        "0 52:54:00:aa:bb:cc 10.0.1.141 * *\n"
        "duid 00:01:00:01:2c:aa\n"
        "garbage\n"
    )
    leases = dnsmasq.parse_leases(text)
    assert leases == [
        dnsmasq.Lease(1795946288, "96:74:e9:a1:5e:56", ia.IPv4Address("10.0.1.140"), "h2", "01:96:74:e9:a1:5e:56"),
        dnsmasq.Lease(0, "52:54:00:aa:bb:cc", ia.IPv4Address("10.0.1.141"), None, None),
    ]


def test_leases_of_a_server_that_never_ran_is_empty():
    assert dnsmasq.leases("lab1", "r1", "eth0") == []


def test_udhcpc_argv_and_script(run_dir):
    script = dhcpclient.script_path("lab1")
    assert script.stat().st_mode & 0o111 and script.read_text().startswith("#!/bin/sh")
    assert "resolv.conf" not in script.read_text().replace("never writes\n# /etc/resolv.conf", "")
    args = dhcpclient.argv("lab1", "h2", "eth0", script)
    assert args[:3] == ["busybox", "udhcpc", "-f"]
    assert args[args.index("-i") + 1] == "eth0" and args[args.index("-s") + 1] == str(script)
    assert args[-2:] == ["-x", "hostname:h2"]
    with pytest.raises(ApplyError):
        dhcpclient.argv("lab1", "h2", "eth0 -s /tmp/evil", script)
