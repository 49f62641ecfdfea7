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
again; one that matches is left alone, so a second `up` changes nothing, and finishes what a failed one left. The
planner keeps the tunnels it is told of (plan(keep_fabric=...)) and removes any other tagged one, like every
fabric link the lab no longer wants; the fabric namespace takes them with it on destroy.
"""
from __future__ import annotations

import errno
import ipaddress
import json
import os

from . import naming
from .errors import ApplyError
from .events import Event, EventSink, emit
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


def ensure(spaces: netns.Namespaces, lab: str, tunnels: list[Tunnel], span: Span, *,
           on_event: EventSink = None) -> list[str]:
    """Make every tunnel of `tunnels` as the span wants it (idempotent); what was made."""
    if not tunnels:
        return []
    underlay = check_underlay(span.underlay_netns)
    fabric_ns = naming.fabric_namespace(lab)
    made: list[str] = []
    fab = spaces.netlink(fabric_ns)
    under = spaces.netlink(underlay)
    try:
        for t in tunnels:
            want = alias(lab, t, span)
            bridge = fab.link(name=bridge_of(t))
            if bridge is None:
                raise ApplyError(f"segment {t.segment}: bridge {bridge_of(t)} missing for its tunnel",
                                 element=_path(t))
            have = fab.link(name=t.ifname)
            if have is not None and have.alias == want and have.kind == TAG_KIND and have.master == bridge.index \
                    and have.up:
                continue
            if have is not None:  # half-made, or made for another span: made again
                fab.call(nl.link_del(index=have.index))
            emit(on_event, Event("run.step", f"tunnel {t.ifname} for {t.segment} (VNI {t.vni}) to "
                                             f"{', '.join(t.remotes)}", data={"path": _path(t), "action": "vxlan"}))
            fd = netns.open_fd(fabric_ns)
            try:
                under.call(nl.link_add_vxlan(t.ifname, vni=t.vni, local=ipaddress.IPv4Address(t.local),
                                             port=VXLAN_PORT, mtu=span.mtu, ns_fd=fd))
            except nl.NetlinkError as exc:
                if exc.errno == errno.EEXIST:  # the underlay has a device with this VNI already: another lab's
                    raise ApplyError(f"segment {t.segment}: VNI {t.vni} is in use on this host ({exc})",
                                     element=_path(t)) from exc
                raise
            finally:
                os.close(fd)
            dev = fab.link(name=t.ifname)
            if dev is None:
                raise ApplyError(f"tunnel {t.ifname} vanished after it was made", element=_path(t))
            fab.call(nl.link_set(index=dev.index, master=bridge.index))
            for remote in t.remotes:
                fab.call(nl.fdb_append(dev.index, ipaddress.IPv4Address(remote)))
            fab.call(nl.link_set(index=dev.index, up=True, alias=want))
            made.append(t.ifname)
    finally:
        fab.close()
        under.close()
    return made


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
