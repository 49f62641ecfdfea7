"""NAT uplinks (`external` with `nat: true`) that never put a user's address on the host.

The door address a document names (`address: 203.0.113.1/24`) lives in the lab's own routing context, its fabric
namespace, on the external's bridge there: the lab's routers reach their gateway inside the lab, so any number of
labs with identical documents (the same door address, the same lab addresses) reach the outside side by side, and a
template's instructions stay true in every copy. From the fabric to the host runs a transit link whose /30 comes
from an operator pool (`TOPOLAB_UPLINK_POOL`, default 100.64.0.0/10), assigned by Topolab from the lab's cell slot
and the uplink's place among the lab's NAT externals, never typed by a user:

    r1 eth1 203.0.113.2 -- [fabric: bridge 203.0.113.1/24 | forwarding | masquerade out the door]
                           door 100.64.a.b+2/30 (fabric) ==== 100.64.a.b+1/30 (host) -- host masquerade --> out

The host sees only the transit address: its masquerade and forward rules accept that one source from the door
and drop anything else (a lab could rewrite its own fabric's rules, never the host's), and nothing from a door
reaches the host itself but replies. The pool is refused when it overlaps a host route that is not a Topolab
transit route (`check_pool`), before anything is created.
"""
from __future__ import annotations

import ipaddress
import os

from . import naming
from .errors import ApplyError
from .kernel.netlink import NetlinkSocket
from .model import Topology

PER_LAB = 64  # NAT uplinks one lab may have (a /24 of transit /30s per 4 slots)
DEFAULT_POOL = "100.64.0.0/10"


def pool() -> ipaddress.IPv4Network:
    text = os.environ.get("TOPOLAB_UPLINK_POOL", DEFAULT_POOL)
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise ApplyError(f"TOPOLAB_UPLINK_POOL={text!r} is not an IPv4 network: {exc}", element="lab") from exc
    if net.prefixlen > 28:
        raise ApplyError(f"TOPOLAB_UPLINK_POOL={text} is too small for any lab", element="lab")
    return net


def nat_externals(topology: Topology) -> list[str]:
    """The lab's NAT externals in the order their transit subnets are numbered."""
    return sorted(n for n, node in topology.nodes.items() if node.nat_external)  # only externals have it


def transit(slot: int, index: int) -> tuple[ipaddress.IPv4Interface, ipaddress.IPv4Interface]:
    """(host end, fabric end) of uplink number `index` of the lab holding cell `slot`."""
    if not 0 <= index < PER_LAB:
        raise ApplyError(f"a lab has at most {PER_LAB} NAT uplinks", element="nodes")
    net = pool()
    subnets = net.num_addresses // 4
    number = slot * PER_LAB + index
    if number >= subnets:
        raise ApplyError(f"TOPOLAB_UPLINK_POOL {net} has no transit subnet left for lab slot {slot}", element="lab")
    base = int(net.network_address) + 4 * number
    return (ipaddress.IPv4Interface((base + 1, 30)), ipaddress.IPv4Interface((base + 2, 30)))


def host_routes(root: NetlinkSocket) -> list[tuple[str, str]]:
    """(destination, device) of the routes of the namespace `root` is bound to (the host's)."""
    names = {link.index: link.name for link in root.links()}
    return [(r.dst, names.get(r.oif, "")) for r in root.routes()]


def transit_of(topology: Topology, slot: int, node: str) -> tuple[ipaddress.IPv4Interface, ipaddress.IPv4Interface]:
    """(host end, fabric end) of NAT external `node` of a lab in cell `slot`."""
    return transit(slot, nat_externals(topology).index(node))


def check_pool(routes: list[tuple[str, str]], door_prefix: str = "tl") -> None:
    """ApplyError when a host route (destination, device) overlaps the pool and is not a Topolab transit route
    (a /30 on a door: `tl<lab>...`)."""
    net = pool()
    for dst, dev in routes:
        if dst in ("default", "0.0.0.0/0"):
            continue
        try:
            other = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if other.version != 4 or not other.overlaps(net):
            continue
        if other.prefixlen == 30 and dev.startswith(door_prefix) and other.subnet_of(net):
            continue  # ours
        raise ApplyError(f"the uplink pool TOPOLAB_UPLINK_POOL={net} overlaps the host's route to {dst} (dev {dev}); "
                         "the operator must choose another pool", element="lab")


def fabric_nat_commands(lab: str, node: str, door_fabric_if: str) -> str:
    """nft, inside the fabric: masquerade everything the lab sends out through this external's door."""
    naming.check_lab_id(lab)
    from .nft import chain_suffix, check_comment, check_ifname

    check_ifname(door_fabric_if, f"nodes.{node}")
    table = "topolab_uplinks"
    chain = f"post_{chain_suffix(node)}"
    comment = check_comment(naming.tag(lab, "external", node))
    return "\n".join([
        f'add table ip {table} {{ comment "{check_comment(naming.tag(lab))}" ; }}',
        f'add chain ip {table} {chain} {{ type nat hook postrouting priority srcnat; policy accept; '
        f'comment "{comment}" ; }}',
        f"flush chain ip {table} {chain}",
        f'add rule ip {table} {chain} oifname "{door_fabric_if}" masquerade',
    ]) + "\n"
