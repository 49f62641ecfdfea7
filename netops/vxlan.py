"""The VXLAN tunnels of a lab across hosts (issue 13, part 3): what netops.span.tunnels() says this host builds.

Per spanning segment this host has a port on, one VXLAN device in the lab's fabric namespace:

- made by a request sent in the *underlay* namespace (`Span.underlay_netns`, the agent's `TOPOLAB_UNDERLAY_NETNS`;
  None: the root namespace of a real host) that names the fabric as the device's namespace (IFLA_NET_NS_FD): its UDP
  socket (port 4789, `local` the host's underlay address) is the underlay's, the device the fabric's, and no
  half-made device is ever left in the underlay;
- with the span's MTU (1450 on a 1500 underlay, more on a jumbo one the operator declares), learning on (a remote
  MAC, once seen, is sent to its host only), enslaved to the segment's bridge (a direct link's link bridge: the
  switch node netops.span.local_topology adds), up;
- with a static flood list: one all-zero-MAC fdb entry per other host with a port on the segment (`bridge fdb
  append 00:00:00:00:00:00 dev x... dst <underlay>`), through pyroute2's ndmsg.

Its ifalias is the lab's tag `topolab:<lab>:vxlan:<vni>:<digest of local, remotes, mtu, underlay, bridge>`: the
alias is written last, so a device whose alias differs (half-made, or made for another span) is deleted and made
again. `steps()` (pure) plans a `tunnel.create` step (phase "tunnel": after the links, before addresses, DHCP and
FRR, which need the segment whole) for each tunnel not as wanted, none when all are, so a second `up` changes
nothing and finishes what a failed one left; the engine runs them with `make()`. The planner keeps the tunnels it
is told of (plan(keep_fabric=...)) and removes any other tagged one, like every fabric link the lab no longer
wants; the fabric namespace takes them with it on destroy.
"""
from __future__ import annotations

import errno
import ipaddress
import json
import os
from typing import Any

from . import naming
from .errors import ApplyError
from .events import Event, EventSink, emit
from .inventory import Inventory, Step
from .kernel import netlink as nl
from .kernel import netns
from .naming import _hash
from .span import VXLAN_PORT, Span, Tunnel

TAG_KIND = "vxlan"


def bridge_of(tunnel: Tunnel) -> str:
    """The fabric bridge the tunnel is a port of (a direct link's: its link bridge node, named by the segment)."""
    return naming.bridge_ifname(tunnel.bridge or tunnel.segment)


def alias(lab: str, tunnel: Tunnel, span: Span) -> str:
    digest = _hash(json.dumps([tunnel.local, list(tunnel.remotes), span.mtu, span.underlay_netns or "",
                               bridge_of(tunnel)]), 8)
    return naming.tag(lab, TAG_KIND, str(tunnel.vni), digest)


def check_underlay(name: str | None) -> str | None:
    """The underlay namespace, refused when it does not exist or is one of Topolab's (a lab's own namespace must
    never hold the sockets every lab's tunnels use)."""
    if name is None:
        return None
    if naming.parse_namespace(name) is not None or name.startswith("tl-"):
        raise ApplyError(f"underlay namespace {name!r} is a lab's namespace", element="lab")
    if not netns.exists(name):
        raise ApplyError(f"underlay namespace {name!r} does not exist", element="lab")
    return name


def steps(inv: Inventory, lab: str, tunnels: list[Tunnel], span: Span, planned: list[Step]) -> list[Step]:
    """PURE. The `tunnel.create` step of every tunnel that is missing, differs from what the span wants, or whose
    bridge (or the whole fabric) the `planned` steps make again; none when all are as wanted."""
    fabric_ns = naming.fabric_namespace(lab)
    fabric = inv.ns(fabric_ns)
    remade = {s.params.get("ifname") for s in planned if s.action in ("bridge.create", "remove.link")}
    fresh_fabric = fabric is None or any(s.action == "remove.namespace" and s.params.get("namespace") == fabric_ns
                                         for s in planned)
    out = []
    for t in tunnels:
        want, bridge = alias(lab, t, span), bridge_of(t)
        have = None if fresh_fabric or fabric is None else fabric.links.get(t.ifname)
        if (have is not None and have.alias == want and have.kind == TAG_KIND and have.master == bridge and have.up
                and bridge not in remade and t.ifname not in remade):
            continue
        out.append(Step("tunnel.create", _path(t), None,
                        f"tunnel {t.ifname} for {t.segment} (VNI {t.vni}) to {', '.join(t.remotes)}",
                        {"ifname": t.ifname, "vni": t.vni, "local": t.local, "remotes": list(t.remotes),
                         "bridge": bridge, "mtu": span.mtu, "underlay": span.underlay_netns, "alias": want,
                         "segment": t.segment}))
    return out


def make(fab: nl.NetlinkSocket, under: nl.NetlinkSocket, fabric_ns: str, p: dict[str, Any]) -> None:
    """One `tunnel.create` step: `fab` bound to the lab's fabric, `under` to the underlay namespace. A device that
    is there as wanted is only enslaved and set up again; any other of its name is deleted and made again."""
    bridge = fab.link(name=p["bridge"])
    if bridge is None:
        raise ApplyError(f"segment {p['segment']}: bridge {p['bridge']} missing for its tunnel")
    have = fab.link(name=p["ifname"])
    if have is not None and (have.alias != p["alias"] or have.kind != TAG_KIND):
        fab.call(nl.link_del(index=have.index))  # half-made, or made for another span
        have = None
    if have is None:
        fd = netns.open_fd(fabric_ns)
        try:
            under.call(nl.link_add_vxlan(p["ifname"], vni=p["vni"], local=ipaddress.IPv4Address(p["local"]),
                                         port=VXLAN_PORT, mtu=p["mtu"], ns_fd=fd))
        except nl.NetlinkError as exc:
            if exc.errno == errno.EEXIST:  # the underlay has a device with this VNI already: another lab's
                raise ApplyError(f"segment {p['segment']}: VNI {p['vni']} is in use on this host ({exc})") from exc
            raise
        finally:
            os.close(fd)
        have = fab.link(name=p["ifname"])
        if have is None:
            raise ApplyError(f"tunnel {p['ifname']} vanished after it was made")
    fab.call(nl.link_set(index=have.index, master=bridge.index))
    for remote in p["remotes"]:
        fab.call(nl.fdb_append(have.index, ipaddress.IPv4Address(remote)))
    fab.call(nl.link_set(index=have.index, up=True, alias=p["alias"]))  # last: the mark of a finished tunnel


def remove(spaces: netns.Namespaces, lab: str, *, on_event: EventSink = None) -> list[str]:
    """Delete the lab's tunnels (tagged VXLAN devices in its fabric); what was deleted."""
    fabric_ns = naming.fabric_namespace(lab)
    if not netns.exists(fabric_ns):
        return []
    removed = []
    with spaces.netlink(fabric_ns) as fab:
        for link in fab.links():
            tagged = naming.parse_tag(link.alias)
            if link.kind == TAG_KIND and tagged and tagged[0] == lab and tagged[1][:1] == [TAG_KIND]:
                fab.call(nl.link_del(index=link.index))
                removed.append(f"tunnel {link.name}")
                emit(on_event, Event("run.step", f"delete tunnel {link.name}"))
    return removed


def _path(t: Tunnel) -> str:
    return "links" if t.bridge is None else f"nodes.{t.bridge}"
