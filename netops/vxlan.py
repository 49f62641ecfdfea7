"""The VXLAN tunnels of a lab across hosts (issue 13, part 3): what netops.span.tunnels() says this host builds.

Per spanning segment this host has a port on, one VXLAN device in the lab's *tunnel namespace*
(`tl-<lab>-_tunnels`, naming.tunnel_namespace), which the host makes and owns (not the lab's cell: the lab's
processes hold CAP_NET_ADMIN over their fabric, and with it over a VXLAN device there they could add flood entries
with any VNI to any underlay address, into another lab's segments):

- made by a request sent in the *underlay* namespace (`Span.underlay_netns`, the agent's `TOPOLAB_UNDERLAY_NETNS`;
  None: the root namespace of a real host) that names the tunnel namespace as the device's (IFLA_NET_NS_FD): its
  UDP socket (port 4789, `local` the host's underlay address) is the underlay's, the device is not, and no
  half-made device is ever left in the underlay;
- with the span's MTU (1450 on a 1500 underlay, more on a jumbo one the operator declares), learning on (a remote
  MAC, once seen, is sent to its host only), on a bridge of the tunnel namespace with one end of a veth whose
  other end is a port of the segment's bridge in the fabric (a direct link's link bridge: the switch node
  netops.span.local_topology adds);
- with a static flood list: one all-zero-MAC fdb entry per other host with a port on the segment (`bridge fdb
  append 00:00:00:00:00:00 dev x... dst <underlay>`), through pyroute2's ndmsg.

The device's ifalias is the lab's tag `topolab:<lab>:vxlan:<vni>:<digest of local, remotes, mtu, underlay,
bridge>`, written last. `steps()` (pure) plans a `tunnel.create` step (phase "tunnel": after the links, before
addresses, DHCP and FRR, which need the segment whole) for each tunnel not whole and as wanted, none when all are,
so a second `up` changes nothing and finishes what a failed one left; the engine runs them with `make()`, which
makes the tunnel afresh. The planner keeps the tunnel namespace and the veths' fabric ends it is told of
(plan(keep_namespaces=, keep_fabric=)) and removes them otherwise, like anything the lab no longer wants; destroy
finds the tunnel namespace by name and tag like every namespace of the lab.
"""
from __future__ import annotations

import errno
import ipaddress
import json
import os
from collections.abc import Callable
from typing import Any

from . import naming
from .errors import ApplyError
from .events import Event, EventSink, emit
from .inventory import Inventory, Step
from .kernel import netlink as nl
from .kernel import netns, sysctl
from .naming import _hash
from .span import VXLAN_PORT, Span, Tunnel

TAG_KIND = "vxlan"


def bridge_of(tunnel: Tunnel) -> str:
    """The fabric bridge the tunnel is a port of (a direct link's: its link bridge node, named by the segment)."""
    return naming.bridge_ifname(tunnel.bridge or tunnel.segment)


def names(tunnel: Tunnel) -> tuple[str, str, str]:
    """(bridge, veth end) in the tunnel namespace and the veth end in the fabric: the VXLAN device (tunnel.ifname)
    and the tunnel namespace's end are on that bridge, the fabric's end on the segment's bridge."""
    seg = tunnel.segment
    return "t" + _hash(f"tunnel-bridge:{seg}", 12), "u" + _hash(f"tunnel-veth:{seg}", 12), \
        "y" + _hash(f"tunnel-port:{seg}", 12)


def alias(lab: str, tunnel: Tunnel, span: Span) -> str:
    digest = _hash(json.dumps([tunnel.local, list(tunnel.remotes), span.mtu, span.underlay_netns or "",
                               bridge_of(tunnel)]), 8)
    return naming.tag(lab, TAG_KIND, str(tunnel.vni), digest)


def fabric_names(tunnels: list[Tunnel]) -> frozenset[str]:
    """The fabric links of the tunnels (the veth ends on the segments' bridges), for plan(keep_fabric=)."""
    return frozenset(names(t)[2] for t in tunnels)


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
    fabric_ns, tunnel_ns = naming.fabric_namespace(lab), naming.tunnel_namespace(lab)
    fabric, tunnel_state = inv.ns(fabric_ns), inv.ns(tunnel_ns)
    remade = {s.params.get("ifname") for s in planned if s.action in ("bridge.create", "remove.link")}
    if any(s.action == "remove.namespace" and s.params.get("namespace") in (fabric_ns, tunnel_ns) for s in planned):
        fabric = tunnel_state = None
    out = []
    for t in tunnels:
        want, bridge = alias(lab, t, span), bridge_of(t)
        tbr, inner, outer = names(t)
        dev = tunnel_state.links.get(t.ifname) if tunnel_state else None
        port = tunnel_state.links.get(inner) if tunnel_state else None
        end = fabric.links.get(outer) if fabric else None
        if (dev is not None and dev.alias == want and dev.kind == TAG_KIND and dev.master == tbr and dev.up
                and port is not None and port.master == tbr and port.up
                and end is not None and end.alias == port_tag(lab, t) and end.master == bridge and end.up
                and bridge not in remade and outer not in remade):
            continue
        out.append(Step("tunnel.create", _path(t), None,
                        f"tunnel {t.ifname} for {t.segment} (VNI {t.vni}) to {', '.join(t.remotes)}",
                        {"ifname": t.ifname, "vni": t.vni, "local": t.local, "remotes": list(t.remotes),
                         "bridge": bridge, "mtu": span.mtu, "underlay": span.underlay_netns, "alias": want,
                         "segment": t.segment, "tunnel_bridge": tbr, "inner": inner, "outer": outer,
                         "port_tag": port_tag(lab, t), "namespace": tunnel_ns,
                         "namespace_tag": naming.tag(lab, "ns", naming.TUNNEL_NODE)}))
    return out


def port_tag(lab: str, tunnel: Tunnel) -> str:
    return naming.tag(lab, "tunnel", str(tunnel.vni))


def namespace_job(tag: str) -> Callable[[], None]:
    """What runs in the tunnel namespace just made: no IPv6 (its devices would flood router solicitations and MLD
    reports into the lab's segments), lo up with the lab's tag (destroy finds it by name and tag)."""

    def inside() -> None:
        sysctl.write("net/ipv6/conf/default/disable_ipv6", "1")
        sysctl.write("net/ipv6/conf/all/disable_ipv6", "1")
        with nl.NetlinkSocket() as s:
            s.call(nl.link_set(index=1, up=True, alias=tag))

    return inside


def make(fab: nl.NetlinkSocket, tun: nl.NetlinkSocket, under: nl.NetlinkSocket, fabric_ns: str,
         p: dict[str, Any]) -> None:
    """One `tunnel.create` step; `fab`, `tun`, `under` bound to the lab's fabric, its tunnel namespace (made
    already, by the host) and the underlay namespace. Whatever of the tunnel exists is deleted and it is made
    whole: the bridge in the tunnel namespace, the VXLAN device on it (made from the underlay), its flood list, a
    veth from that bridge to the segment's bridge in the fabric, the VXLAN device's alias last."""
    bridge = fab.link(name=p["bridge"])
    if bridge is None:
        raise ApplyError(f"segment {p['segment']}: bridge {p['bridge']} missing for its tunnel")
    for name in (p["ifname"], p["inner"], p["tunnel_bridge"]):  # the veth's fabric end goes with its peer
        tun.call(nl.link_del(name=name))
    fab.call(nl.link_del(name=p["outer"]))
    tun.call(nl.link_add_bridge(p["tunnel_bridge"], up=True, mtu=p["mtu"]))
    tbr = tun.link(name=p["tunnel_bridge"])
    assert tbr is not None
    fd = netns.open_fd(p["namespace"])
    try:
        under.call(nl.link_add_vxlan(p["ifname"], vni=p["vni"], local=ipaddress.IPv4Address(p["local"]),
                                     port=VXLAN_PORT, mtu=p["mtu"], ns_fd=fd))
    except nl.NetlinkError as exc:
        if exc.errno == errno.EEXIST:  # the underlay has a device with this VNI already: another lab's
            raise ApplyError(f"segment {p['segment']}: VNI {p['vni']} is in use on this host ({exc})") from exc
        raise
    finally:
        os.close(fd)
    dev = tun.link(name=p["ifname"])
    if dev is None:
        raise ApplyError(f"tunnel {p['ifname']} vanished after it was made")
    tun.call(nl.link_set(index=dev.index, master=tbr.index))
    for remote in p["remotes"]:
        tun.call(nl.fdb_append(dev.index, ipaddress.IPv4Address(remote)))
    fd = netns.open_fd(fabric_ns)
    try:
        tun.call(nl.link_add_veth(p["inner"], p["outer"], fd, master=tbr.index, up=False, mtu=p["mtu"]))
    finally:
        os.close(fd)
    fab.call(nl.link_set(name=p["outer"], up=True, master=bridge.index, alias=p["port_tag"]))
    tun.call(nl.link_set(name=p["inner"], up=True))
    tun.call(nl.link_set(index=dev.index, up=True, alias=p["alias"]))  # last: the mark of a finished tunnel


def remove(spaces: netns.Namespaces, lab: str, *, on_event: EventSink = None) -> list[str]:
    """Delete the lab's tunnels: its tunnel namespace (when it carries the lab's tag), with the VXLAN devices and
    the veths into the fabric."""
    from .observe import _lo_alias

    ns = naming.tunnel_namespace(lab)
    if not netns.exists(ns) or spaces.run_in(ns, _lo_alias) != naming.tag(lab, "ns", naming.TUNNEL_NODE):
        return []
    if not netns.delete(ns):
        return []
    emit(on_event, Event("run.step", f"delete tunnel namespace {ns}"))
    return [f"namespace {ns}"]


def _path(t: Tunnel) -> str:
    return "links" if t.bridge is None else f"nodes.{t.bridge}"
