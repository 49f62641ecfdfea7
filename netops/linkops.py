"""The kernel primitives links are built from (netops.wiring's shapes and the kinds' steps call them): lab bridges,
veth pairs made straight into their namespaces, taps, batched link changes, cables pulled and plugged back, and
the interface addresses and routes inside node namespaces. Mixed into netops.engine._Applier,
whose sockets (`sock()`), fabric namespace, bridge cache and namespaces they use."""
from __future__ import annotations

import errno
import functools
import ipaddress
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import ApplyError
from .kernel import netlink as nl
from .kernel import netns
from .kernel.tap import create_persistent_tap

if TYPE_CHECKING:
    from .inventory import Step

LINK_BRIDGE = "bridge"  # the rtnetlink link kind of a Linux bridge (not a node kind)


def raise_first(errors: list[nl.NetlinkError | None]) -> None:
    for err in errors:
        if err is not None:
            raise err


class LinkOps:
    """Link building for the applier (netops.engine._Applier)."""

    fabric: str
    bridges: dict[str, int]
    spaces: netns.Namespaces

    if TYPE_CHECKING:
        def sock(self, ns: str | None) -> nl.NetlinkSocket: ...
        def cell_uid(self) -> int: ...

    def bridge_index(self, name: str, element: str) -> int:
        index = self.bridges.get(name)
        if index is None:
            br = self.sock(self.fabric).link(name=name)
            if br is None or br.kind != LINK_BRIDGE:
                raise ApplyError(f"bridge {name} is missing in {self.fabric}", element=element)
            index = self.bridges[name] = br.index
        return index

    def do_bridge_create(self, step: Step) -> None:
        """A lab bridge is a plain learning switch: no STP and, unless the node asks for `multicast_snooping`, no
        IGMP/MLD snooping, so multicast reaches every port. A snooping bridge needs a querier, which a lab seldom
        has: without one it stops forwarding a group (other than 224.0.0.x) once its membership times out, a
        classic trap in a lab. It is also what the kernel spends most on in a big lab: every port coming up
        re-arms the multicast timers of every other port (measured, 500 hosts on one bridge: deploy 0.62-0.69 s
        without snooping, 0.82-0.95 s with it)."""
        s = self.sock(self.fabric)
        name = step.params["ifname"]
        have = s.link(name=name)
        self.bridges.pop(name, None)
        if have is not None and have.kind != LINK_BRIDGE:
            s.call(nl.link_del(index=have.index))
            have = None
        if have is None:
            s.call(nl.link_add_bridge(name, mcast_snooping=step.params.get("multicast_snooping", False)))
        s.call(nl.link_set(name=name, up=True, alias=step.params["tag"]))

    def fresh_veth(self, a_ns: str | None, a_if: str, b_ns: str | None, b_if: str, *, master: int = 0,
                    a_mac: str | None = None, b_mac: str | None = None, a_alias: str | None = None) -> None:
        """Create veth a_if (in a_ns, up, enslaved to `master`, tagged `a_alias`) with peer b_if straight in b_ns.
        If a name is taken (an end left over from a pair whose namespace the kernel is still freeing), delete and
        retry."""
        sa = self.sock(a_ns)
        fd = -1
        if b_ns != a_ns:
            fd = netns.open_fd(b_ns) if b_ns is not None else os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            request = nl.link_add_veth(a_if, b_if, fd if fd >= 0 else None, master=master, mac=a_mac,
                                       peer_mac=b_mac)
            # the alias rides in the same sendmsg (the kernel ignores IFLA_IFALIAS when it creates a link)
            requests = [request] + ([nl.link_set(name=a_if, alias=a_alias)] if a_alias is not None else [])
            errs = sa.batch(requests)
            if errs[0] is not None and errs[0].errno == errno.EEXIST:
                sa.call(nl.link_del(name=a_if))
                self.sock(b_ns).call(nl.link_del(name=b_if))
                errs = sa.batch(requests)
            raise_first(errs)
        finally:
            if fd >= 0:
                os.close(fd)

    def taps(self, taps: list[str], bridge: int, tag: str) -> None:
        s = self.sock(self.fabric)
        for tap in taps:
            if s.link(name=tap) is None:
                # owned by the lab's uid: its qemu attaches to it without any capability
                owner = self.cell_uid()
                self.spaces.run_in(self.fabric, functools.partial(create_persistent_tap, tap, owner=owner))
            s.call(nl.link_set(name=tap, up=True, master=bridge, alias=tag))

    def do_carrier_set(self, step: Step) -> None:
        """Pull (or plug back) a link's cable: its ends outside the nodes down or up (netops.plan._carrier)."""
        by_ns: dict[str, list[dict[str, Any]]] = {}
        for ns, ifname in step.params["ends"]:
            by_ns.setdefault(ns, []).append({"name": ifname, "up": bool(step.params["up"])})
        for ns, changes in by_ns.items():
            self.set_links(ns, changes)

    def do_configure_interface(self, step: Step) -> None:
        p = step.params
        s = self.sock(p["namespace"])
        link = s.link(name=p["ifname"])
        if link is None:
            raise ApplyError(f"interface {p['ifname']} is missing", element=step.path)
        # addresses first: the gratuitous ARP (arp_notify) sent when the link comes up then announces them
        reqs = [nl.addr_del(link.index, ipaddress.ip_interface(a)) for a in p.get("remove", ())]
        reqs += [nl.addr_add(link.index, ipaddress.ip_interface(a)) for a in p["addresses"]]
        up = p.get("up", True)  # a node end of a link the user set down stays down (netops.plan._carrier)
        if (p["mac"] and link.mac != p["mac"]) or (p["mtu"] and link.mtu != p["mtu"]) or (up and not link.up):
            reqs.append(nl.link_set(index=link.index, up=True if up else None,
                                    mac=p["mac"] if link.mac != p["mac"] else None,
                                    mtu=p["mtu"] if link.mtu != p["mtu"] else None))
        raise_first(s.batch(reqs))

    def do_route_del(self, step: Step) -> None:
        p = step.params
        reqs = [nl.route_del(ipaddress.ip_network(to), ipaddress.ip_address(via)) for to, via in p["routes"]]
        raise_first(self.sock(p["namespace"]).batch(reqs))

    def do_route_add(self, step: Step) -> None:
        p = step.params
        reqs = [nl.route_add(ipaddress.ip_network(to), ipaddress.ip_address(via)) for to, via in p["routes"]]
        raise_first(self.sock(p["namespace"]).batch(reqs))

    def set_links(self, ns: str | None, changes: list[dict[str, Any]],
                  addresses: Sequence[tuple[int, ipaddress.IPv4Interface | ipaddress.IPv6Interface]] = ()) -> None:
        """Set attributes of links of `ns` (each change a link_set's keywords: name or index, up, master, alias) and
        add `addresses` ((ifindex, address)), in one batch."""
        reqs = [nl.link_set(**change) for change in changes] + [nl.addr_add(i, a) for i, a in addresses]
        raise_first(self.sock(ns).batch(reqs))
