"""Run a lab's checks (netops.labchecks) against the deployed lab; every check that touches the lab runs in its cell.

    run_checks(lab, topology, checks=None, on_event=None) -> [Outcome]

- `ping`, `tcp` and `command` run as programs in the node's cell (netops.procs.run_in_cell: uid 0 of the lab's user
  namespace, the node's network namespace and cgroup, a timeout); `command` as the node's console does (its
  capabilities, its own PID, mount and UTS namespaces). Output is capped at MAX_OUTPUT bytes: a command that writes
  more is stopped and fails.
- `address` and `route` read the node's namespace over netlink (netops.kernel, as `status` does); a VM's address is
  the lease its router's dnsmasq holds for its MAC. `dhcp_lease` reads the lease file dnsmasq writes in the lab's
  cell dir (netops.cell.read_text: never through a link) and asks whether that dnsmasq runs.
- `nat` lists the node's nftables ruleset in its cell (`nft -j list ruleset`, output capped) and looks for a
  masquerade of what leaves the interface.
- `ospf_neighbor` / `bgp_session` ask the router's FRR the way `status` does (netops.frr_status.router_status).

A ping or tcp target that is not in one of the lab's subnets is refused unless the lab has an uplink (labchecks.
target_refusal). `wait` retries a failing check every RETRY_S seconds until it passes or `wait` seconds passed.

Of a lab across hosts each host runs the checks of its nodes (`here`: the nodes it runs). What a check reads of a
node elsewhere, it asks that node's host (`ask(node, query)`, the web tier's errand to the host's stream agent,
answered there by `read_for_peer`): the addresses a node with a namespace has (a ping to h2 whose address is a
lease, from h1 on another host), and the leases a DHCP server holds (a VM's address, when its router runs on
another host than the check). A query is {"read": "addresses" | "leases", "interface": name}; nothing else is asked.
"""
from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable
from typing import Any

import re2

from . import console, dnsmasq, frr_status, naming, procs, qemu, routing
from . import kinds as kind_registry
from .errors import ApplyError
from .events import Event, EventSink, emit
from .kernel import netns
from .labchecks import Check, Outcome, Target, target_refusal
from .model import Topology

#: (node, query) -> the answer of the host that runs `node` (see the docstring); raises ApplyError when it cannot
Ask = Callable[[str, dict[str, Any]], Any]
PEER_READS = ("addresses", "leases")

MAX_OUTPUT = 64 * 1024  # bytes of a command's stdout (and stderr) kept; more stops it
RETRY_S = 1.0
PING_WAIT_S = 2
TCP_TIMEOUT_S = 3
#: the probe of a `tcp` check: a fixed program, the target as its arguments (never a shell)
TCP_PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    print("open")
except ConnectionRefusedError:
    print("refused")
except (socket.timeout, TimeoutError):
    print("timeout")
except OSError as e:
    print("error", e.strerror or e)
"""
PYTHON = "/usr/bin/python3"


class Seen(Exception):
    """A check did not pass: the message says what was seen."""


class _Lab:
    """The deployed lab as the checks see it."""

    def __init__(self, lab: str, topology: Topology, *, here: set[str] | None = None, ask: Ask | None = None):
        self.lab = lab
        self.topology = topology
        self.here = here  # the nodes this host runs (None: all of them)
        self.ask = ask

    def local(self, name: str) -> bool:
        return self.here is None or name in self.here

    def node(self, name: str, *, namespace: bool = False) -> Any:
        node = self.topology.nodes.get(name)
        if node is None:
            raise Seen(f"there is no node {name} in this lab")
        if namespace and not kind_registry.get(node.kind).namespace:
            raise Seen(f"{name} is a {node.kind}: checks run inside a node's namespace")
        if kind_registry.get(node.kind).namespace and self.local(name) and not netns.exists(self.namespace(name)):
            raise Seen(f"{name} is not running (it has no namespace)")
        return node

    def remote(self, name: str, read: str, interface: str) -> Any:
        """What the host that runs `name` answers to `read` of its `interface` (Seen when it cannot be asked)."""
        if self.ask is None:
            raise Seen(f"{name} runs on another host, which cannot be asked here")
        try:
            return self.ask(name, {"read": read, "interface": interface})
        except ApplyError as exc:
            raise Seen(f"{name}'s host could not be asked: {exc.message}") from exc

    def namespace(self, name: str) -> str:
        return naming.node_namespace(self.lab, name)

    def run(self, node: str, argv: list[str], *, caps: tuple[str, ...] = (), timeout: float = 10,
            as_console: bool = False, kill_on_overflow: bool = False) -> Any:
        return procs.run_in_cell(argv, lab=self.lab, role=f"check:{node}", namespace=self.namespace(node),
                                 caps=caps, timeout=timeout, max_output=MAX_OUTPUT, as_console=as_console,
                                 kill_on_overflow=kill_on_overflow)

    def interface_state(self, name: str) -> dict[str, dict[str, Any]]:
        """interface -> {up, addresses} of a node with a namespace, read over netlink."""
        with netns.netlink_in(self.namespace(name)) as nl:
            links = nl.links()
            addrs = nl.addresses()
        by_index = {lk.index: lk.name for lk in links}
        out: dict[str, dict[str, Any]] = {lk.name: {"up": lk.up, "addresses": []} for lk in links}
        for a in addrs:
            if a.index in by_index and a.scope == 0:
                out[by_index[a.index]]["addresses"].append(a.cidr)
        return out

    def routes(self, name: str) -> list[tuple[str, str | None]]:
        with netns.netlink_in(self.namespace(name)) as nl:
            return [(r.dst, r.gateway) for r in nl.routes()]

    def leases(self) -> list[dnsmasq.Lease]:
        """Every lease the lab's dnsmasq servers hold (the files they write in the cell dir; a server's on another
        host: asked of it)."""
        out = []
        for name, node in self.topology.nodes.items():
            for iname, iface in node.interfaces.items():
                if iface.dhcp_server is None:
                    continue
                if self.local(name):
                    out.extend(dnsmasq.leases(self.lab, name, iname))
                else:
                    out.extend(_lease_of(x) for x in self.remote(name, "leases", iname))
        return out

    def addresses(self, name: str, interface: str) -> list[str]:
        """The addresses (cidr; a VM's: its leased ip) `name:interface` has now."""
        node = self.node(name)
        if interface not in node.interfaces:
            raise Seen(f"{name} has no interface {interface}")
        if kind_registry.get(node.kind).namespace:
            if not self.local(name):
                return [_address_of(a) for a in self.remote(name, "addresses", interface)]
            state = self.interface_state(name).get(interface)
            if state is None:
                raise Seen(f"{name} has no interface {interface} in its namespace")
            return list(state["addresses"])
        mac = qemu.mac_of(self.lab, node, interface).lower()
        now = time.time()
        return [str(le.ip) for le in self.leases() if le.mac == mac and (le.expiry == 0 or le.expiry > now)]

    def target_ip(self, target: Target) -> str:
        if target.ip is not None:
            refusal = target_refusal(target.ip, self.topology.nodes)
            if refusal:
                raise Seen(f"refused: {refusal}")
            return str(target.ip)
        assert target.node is not None
        # a static address is the document's: the target need not run here (of a lab across hosts, it may run on
        # another host); one it leased is read from where it runs (self.addresses)
        node = self.topology.nodes.get(target.node)
        if node is None:
            raise Seen(f"there is no node {target.node} in this lab")
        names = [target.interface] if target.interface else list(node.interfaces)
        for iname in names:
            if iname is None or iname not in node.interfaces:
                raise Seen(f"{target.node} has no interface {iname}")
            static = node.interfaces[iname].addresses
            if static:
                return str(static[0].ip)
        for iname in names:
            assert iname is not None
            found = self.addresses(target.node, iname)
            if found:
                return found[0].split("/")[0]
        raise Seen(f"{target} has no address")


# ------------------------------------------------------------------------------------------------ the kinds


def _ping(lab: _Lab, spec: dict[str, Any]) -> str:
    lab.node(spec["from"], namespace=True)
    ip = lab.target_ip(spec["to"])
    count = spec["count"]
    argv = ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", str(PING_WAIT_S), ip]
    done = lab.run(spec["from"], argv, caps=("net_raw",), timeout=count * 0.2 + PING_WAIT_S + 5)
    text = done.stdout.decode(errors="replace")
    got = next((line.strip() for line in text.splitlines() if "transmitted" in line), "")
    received = _received(got)
    what = f"{spec['from']} -> {spec['to']}" + (f" ({ip})" if str(spec["to"]) != ip else "")
    summary = got or done.stderr.decode(errors="replace").strip()[:200] or f"ping exited {done.returncode}"
    if spec["expect"] == "success" and not received:
        raise Seen(f"{what}: no reply ({summary})")
    if spec["expect"] == "failure" and received:
        raise Seen(f"{what}: replies came back, expected none ({summary})")
    return f"{what}: {summary}"


def _received(line: str) -> int:
    for part in line.split(","):
        words = part.split()
        if len(words) >= 2 and words[1] == "received" and words[0].isdigit():
            return int(words[0])
    return 0


def _in(value: tuple[str, Any], address: str) -> bool:
    ip = ipaddress.ip_address(address.split("/")[0])
    how, want = value
    if how == "range":
        return bool(ip.version == want[0].version and int(want[0]) <= int(ip) <= int(want[1]))
    if how == "network":
        return ip in want
    return bool(ip == want)


def _describe_in(value: tuple[str, Any]) -> str:
    how, want = value
    return f"{want[0]}-{want[1]}" if how == "range" else str(want)


def _address(lab: _Lab, spec: dict[str, Any]) -> str:
    node, iface = spec["node"], spec["interface"]
    found = lab.addresses(node, iface)
    match = [a for a in found if _in(spec["in"], a)]
    if not match:
        seen = ", ".join(found) if found else "none"
        raise Seen(f"{node} {iface} has no address in {_describe_in(spec['in'])} (has {seen})")
    return f"{node} {iface} has {match[0]}"


def _route(lab: _Lab, spec: dict[str, Any]) -> str:
    node = spec["node"]
    lab.node(node, namespace=True)
    to = str(spec["to"])
    shown_to = "default" if to in ("0.0.0.0/0", "::/0") else to
    routes = lab.routes(node)
    mine = [(dst, gw) for dst, gw in routes if dst == to]
    via = str(spec["via"]) if spec.get("via") is not None else None
    present = [r for r in mine if via is None or r[1] == via]
    shown = ", ".join(f"via {gw}" if gw else "direct" for _, gw in mine) or "none"
    want = shown_to + (f" via {via}" if via else "")
    if spec["present"] and not present:
        raise Seen(f"{node} has no route to {want} (routes to {shown_to}: {shown})")
    if not spec["present"] and present:
        raise Seen(f"{node} has a route to {want}, expected none")
    return f"{node}: route to {want} " + ("present" if spec["present"] else "absent")


def _nft_rules(lab: _Lab, node: str) -> list[dict[str, Any]]:
    try:
        done = lab.run(node, ["nft", "-j", "list", "ruleset"], caps=("net_admin",), timeout=10,
                       kill_on_overflow=True)
    except procs.OutputOverflow as exc:
        raise Seen(f"{node}'s nftables ruleset is larger than {MAX_OUTPUT} bytes: not read") from exc
    if done.returncode != 0:
        raise Seen(f"nft on {node} failed: {done.stderr.decode(errors='replace').strip()[:200]}")
    try:
        items = json.loads(done.stdout or b"{}").get("nftables", [])
    except (ValueError, AttributeError) as exc:
        raise Seen(f"nft on {node} gave no JSON: {exc}") from exc
    chains = {(c["chain"]["family"], c["chain"]["table"], c["chain"]["name"]): c["chain"]
              for c in items if isinstance(c, dict) and "chain" in c}
    rules = []
    for item in items:
        rule = item.get("rule") if isinstance(item, dict) else None
        if isinstance(rule, dict):
            chain = chains.get((rule.get("family"), rule.get("table"), rule.get("chain")), {})
            rules.append({**rule, "_hook": chain.get("hook"), "_type": chain.get("type")})
    return rules


def _matches_oif(expr: list[Any], interface: str) -> bool:
    for e in expr:
        match = e.get("match") if isinstance(e, dict) else None
        if not isinstance(match, dict):
            continue
        left, right = match.get("left"), match.get("right")
        if isinstance(left, dict) and (left.get("meta") or {}).get("key") in ("oifname", "oif") \
                and match.get("op") in ("==", "in"):
            values = right.get("set", []) if isinstance(right, dict) else [right]
            if interface in values:
                return True
    return False


def _nat(lab: _Lab, spec: dict[str, Any]) -> str:
    node, iface = spec["node"], spec["interface"]
    lab.node(node, namespace=True)
    rules = [r for r in _nft_rules(lab, node) if r["_hook"] == "postrouting" and r["_type"] == "nat"]
    nat_rules = [r for r in rules if any(isinstance(e, dict) and ("masquerade" in e or "snat" in e)
                                         for e in r.get("expr", []))]
    if not any(_matches_oif(r.get("expr", []), iface) for r in nat_rules):
        raise Seen(f"{node} has no masquerade of traffic leaving {iface} "
                   f"({len(nat_rules)} source NAT rules in postrouting, none for {iface})")
    return f"{node} masquerades traffic leaving {iface}"


def _dhcp_lease(lab: _Lab, spec: dict[str, Any]) -> str:
    server = lab.node(spec["server"], namespace=True)
    served = [n for n, i in server.interfaces.items() if i.dhcp_server is not None
              and (spec.get("interface") in (None, n))]
    if not served:
        raise Seen(f"{server.name} serves DHCP on no interface")
    now = time.time()
    notes, total = [], 0
    for iname in served:
        running = bool(dnsmasq.find(lab.lab, server.name, iname))
        live = [le for le in dnsmasq.leases(lab.lab, server.name, iname) if le.expiry == 0 or le.expiry > now]
        if running:
            total += len(live)
        notes.append(f"{iname}: dnsmasq {'running' if running else 'not running'}, {len(live)} leases")
    if total < spec["count_at_least"]:
        raise Seen(f"{server.name} has {total} active DHCP leases, expected at least {spec['count_at_least']} "
                   f"({'; '.join(notes)})")
    return f"{server.name}: {total} active leases ({'; '.join(notes)})"


def _tcp(lab: _Lab, spec: dict[str, Any]) -> str:
    lab.node(spec["from"], namespace=True)
    ip = lab.target_ip(spec["to"])
    port = spec["port"]
    done = lab.run(spec["from"], [PYTHON, "-I", "-S", "-c", TCP_PROBE, ip, str(port), str(TCP_TIMEOUT_S)],
                   timeout=TCP_TIMEOUT_S + 10)
    seen = done.stdout.decode(errors="replace").strip()[:200] or done.stderr.decode(errors="replace").strip()[-200:]
    where = f"{spec['from']} -> {spec['to']}" + (f" ({ip})" if str(spec["to"]) != ip else "") + f" port {port}"
    words = {"refused": "connection refused", "timeout": "no answer (timed out)"}
    said = words.get(seen, seen or f"probe exited {done.returncode}")
    if spec["expect"] == "open" and seen != "open":
        raise Seen(f"{where} is not open: {said}")
    if spec["expect"] == "closed" and seen == "open":
        raise Seen(f"{where} is open, expected closed")
    return f"{where}: {'open' if seen == 'open' else said}"


def _ospf_neighbor(lab: _Lab, spec: dict[str, Any]) -> str:
    node = lab.node(spec["node"], namespace=True)
    if node.routing is None or node.routing.ospf is None:
        raise Seen(f"{node.name} does not run OSPF")
    status = _frr_status(lab, node)
    want = spec.get("neighbor")
    if isinstance(want, str):
        other = lab.topology.nodes.get(want)
        rid = routing.effective_router_id(other, other.routing.ospf) if other and other.routing else None
        if rid is None:
            raise Seen(f"{want} has no OSPF router id")
        want = rid
    found = [n for n in status["ospf"] if (want is None or n["id"] == str(want))
             and (spec.get("interface") is None or n["interface"] == spec["interface"])]
    good = [n for n in found if str(n["state"]).split("/")[0].lower() == spec["state"].lower()]
    seen = ", ".join(f"{n['id']} on {n['interface']} {n['state']}" for n in status["ospf"]) or "no neighbors"
    if not good:
        who = f" {want}" if want is not None else ""
        raise Seen(f"{node.name} has no OSPF neighbor{who} in state {spec['state']} ({seen})")
    return f"{node.name}: {seen}"


def _bgp_session(lab: _Lab, spec: dict[str, Any]) -> str:
    node = lab.node(spec["node"], namespace=True)
    if node.routing is None or node.routing.bgp is None:
        raise Seen(f"{node.name} does not run BGP")
    status = _frr_status(lab, node)
    peer = spec["peer"]
    wanted = {str(peer)}
    if isinstance(peer, str):
        other = lab.topology.nodes.get(peer)
        if other is None:
            raise Seen(f"there is no node {peer} in this lab")
        wanted = {str(a.ip) for i in other.interfaces.values() for a in i.addresses}
    sessions = [s for s in status["bgp"] if s["peer"] in wanted]
    seen = ", ".join(f"{s['peer']} {s['state']}" for s in status["bgp"]) or "no sessions"
    if not any(str(s["state"]).lower() == spec["state"].lower() for s in sessions):
        raise Seen(f"{node.name} has no BGP session with {peer} in state {spec['state']} ({seen})")
    return f"{node.name}: {seen}"


def _frr_status(lab: _Lab, node: Any) -> dict[str, Any]:
    processes = {p.role: p.pid for p in procs.find(lab.lab)}
    status, drift = frr_status.router_status(lab.lab, node, processes)
    if drift:
        raise Seen("; ".join(d.split(": ", 1)[-1] for d in drift))
    return status


def _command(lab: _Lab, spec: dict[str, Any]) -> str:
    node = spec["node"]
    lab.node(node, namespace=True)
    argv = spec["run"]
    try:
        # as its console runs: the node's PID, mount and UTS namespaces (its /tmp, its processes in `ps`)
        done = lab.run(node, argv, caps=console.CAPS, timeout=spec["timeout"], kill_on_overflow=True,
                       as_console=True)
    except procs.OutputOverflow as exc:
        raise Seen(f"{argv[0]} on {node} wrote more than {MAX_OUTPUT} bytes: stopped") from exc
    except ApplyError as exc:
        raise Seen(f"{argv[0]} on {node}: {exc.message}") from exc
    out = done.stdout.decode(errors="replace")
    tail = (out.strip() or done.stderr.decode(errors="replace").strip())[-200:]
    if done.returncode != spec["exit"]:
        raise Seen(f"{' '.join(argv)[:100]} on {node} exited {done.returncode}, expected {spec['exit']}"
                   + (f" ({tail})" if tail else ""))
    pattern = spec.get("output_matches")
    if pattern is not None and re2.search(pattern, out) is None:  # RE2: linear time (netops.labchecks)
        raise Seen(f"the output of {' '.join(argv)[:100]} on {node} does not match {pattern!r}"
                   + (f" (it ends: {tail})" if tail else " (it is empty)"))
    return f"{' '.join(argv)[:100]} on {node} exited {done.returncode}" + (f", matched {pattern!r}" if pattern else "")


RUNNERS: dict[str, Callable[[_Lab, dict[str, Any]], str]] = {
    "ping": _ping, "address": _address, "route": _route, "nat": _nat, "dhcp_lease": _dhcp_lease, "tcp": _tcp,
    "ospf_neighbor": _ospf_neighbor, "bgp_session": _bgp_session, "command": _command,
}


# ------------------------------------------------------------------------------------------------ running


def _links_of(topology: Topology, check: Check) -> list[int]:
    pairs = set(check.interfaces())
    return [lk.index for lk in topology.links
            if (lk.a.node, lk.a.interface) in pairs or (lk.b.node, lk.b.interface) in pairs]


def run_one(lab: _Lab, check: Check) -> Outcome:
    """Run one check (retrying while `wait` allows) and say what was seen."""
    start = time.monotonic()
    error = False
    attempts = 0
    while True:
        attempts += 1
        try:
            message, passed, error = RUNNERS[check.kind](lab, check.spec), True, False
        except Seen as exc:
            message, passed = str(exc), False
        except ApplyError as exc:  # the check itself could not run (a timeout, a vanished namespace)
            message, passed, error = exc.message, False, True
        if passed or time.monotonic() - start + RETRY_S > check.wait:
            break
        time.sleep(RETRY_S)
    return Outcome(id=check.id, title=check.title, passed=passed, message=message, points=check.points,
                   visibility=check.visibility, seconds=time.monotonic() - start, nodes=check.nodes(),
                   links=_links_of(lab.topology, check), error=error, attempts=attempts)


def run_checks(lab: str, topology: Topology, checks: list[Check] | None = None, *,
               on_event: EventSink = None, here: set[str] | None = None, ask: Ask | None = None) -> list[Outcome]:
    """Run `checks` (default: the topology's) against the deployed lab `lab`, one after the other, emitting
    `check.passed` / `check.failed` per check (data: the outcome's dict). Of a lab across hosts, `here` are the nodes
    this host runs and `ask` reaches the others' hosts (see the docstring)."""
    naming.check_lab_id(lab)
    state = _Lab(lab, topology, here=here, ask=ask)
    outcomes = []
    todo = list(topology.checks if checks is None else checks)
    for n, check in enumerate(todo, 1):
        outcome = run_one(state, check)
        outcomes.append(outcome)
        emit(on_event, Event(type="check.passed" if outcome.passed else "check.failed", message=outcome.message,
                             step=n, total=len(todo), data=outcome.as_dict()))
    return outcomes


# ------------------------------------------------------------------------------------------------ peers


def _lease_of(item: Any) -> dnsmasq.Lease:
    """A lease as a peer sent it (read_for_peer), checked: a malformed one is an ApplyError, not a crash."""
    try:
        return dnsmasq.Lease(expiry=int(item["expiry"]), mac=str(item["mac"]).lower(),
                             ip=ipaddress.IPv4Address(item["ip"]), hostname=None, client_id=None)
    except (KeyError, TypeError, ValueError) as exc:
        raise Seen(f"a host answered a malformed lease: {exc}") from exc


def _address_of(item: Any) -> str:
    """An address (cidr) as a peer sent it, checked."""
    try:
        return str(ipaddress.ip_interface(str(item)))
    except ValueError as exc:
        raise Seen(f"a host answered a malformed address: {exc}") from exc


def read_for_peer(lab: str, topology: Topology, node: str, query: Any) -> list[Any]:
    """The answer to another host's `ask(node, query)` about `node`, which runs here: its addresses on an interface
    (cidr strings), or the leases its DHCP server on an interface holds ({expiry, mac, ip}). ApplyError for a query
    that is not one of those of a node and interface of the lab (nothing of it reaches a path or an argv unchecked:
    names are looked up in the deployed topology)."""
    naming.check_lab_id(lab)
    if not isinstance(query, dict) or query.get("read") not in PEER_READS:
        raise ApplyError(f"a peer's query must be one of {', '.join(PEER_READS)}")
    spec = topology.nodes.get(node) if isinstance(node, str) else None
    interface = query.get("interface")
    if spec is None or not isinstance(interface, str) or interface not in spec.interfaces:
        raise ApplyError(f"there is no interface {interface!r} of a node {node!r} in lab {lab}")
    state = _Lab(lab, topology)
    if query["read"] == "leases":
        if spec.interfaces[interface].dhcp_server is None:
            raise ApplyError(f"{node} serves DHCP on no interface {interface}")
        return [{"expiry": le.expiry, "mac": le.mac, "ip": str(le.ip)}
                for le in dnsmasq.leases(lab, node, interface)]
    if not kind_registry.get(spec.kind).namespace:
        raise ApplyError(f"{node} has no namespace: its addresses are its DHCP server's leases")
    try:
        return state.addresses(node, interface)
    except Seen as exc:
        raise ApplyError(str(exc)) from exc
