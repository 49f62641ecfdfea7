"""The engine: up (validate, plan, apply), down, status, clean, exec_argv. The public API of netops.

Everything kernel-side goes through `netops.kernel`; planning is pure (`netops.plan`); what exists is read by
`netops.observe`; destroying from kernel state is `netops.destroy`.
"""
from __future__ import annotations

import errno
import functools
import json
import os
import resource
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from . import cell as cells
from . import destroy, dhcpclient, dnsmasq, kinds, linkcond, naming, nft, observe, procs, qemu, runtime, uplinks, vxlan
from . import plan as planning
from . import span as spans
from .errors import ApplyError, TopologyError
from .events import Event, EventSink, emit
from .kernel import cgroups, netns, sysctl
from .kernel import netlink as nl
from .kinds.base import node_of
from .linkops import LinkOps
from .lock import lab_lock
from .model import Topology
from .plan import Step
from .runtime import RuntimeChange
from .status import LabStatus, UpResult
from .wiring import SHAPES

# a run of at least this many namespace.create steps is created by several threads (netns.create_many); shorter
# runs are created one by one (no thread start-up)
PARALLEL_MIN = 16
# threads creating those namespaces: their pernet set-up runs in parallel (500 namespaces in 0.26-0.30 s on two
# threads against 0.38-0.39 s on one)
CREATE_WORKERS = max(1, min(2, os.cpu_count() or 1, int(os.environ.get("TOPOLAB_CREATE_WORKERS", "2"))))
# netlink sockets kept open during one apply (each holds its namespace alive; all closed after). Large enough that a
# 500-node lab never re-enters a namespace to reopen one (a thread hand-off and two setns each), bounded by the fds
# this process may open.
SOCKET_CACHE = max(64, min(1024, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 2))
DHCP_TIMEOUT = 20.0
# FRR instances started at once by a run of frr.start steps: each mostly waits for its daemons to listen
FRR_WORKERS = max(1, int(os.environ.get("TOPOLAB_FRR_WORKERS", "8")))
DELAYD = Path(__file__).with_name("delayd.py")  # run by path with `python -I`: only that file is trusted
SPAN_FILE = "span.json"  # the Span of the part of a lab across hosts this host runs


# ------------------------------------------------------------------------------------------------ up


def up(topology: Topology, lab: str | None = None, *, on_event: EventSink = None,
       fault_after: int | None = None, change: RuntimeChange | None = None,
       span: spans.Span | None = None) -> UpResult:
    """Bring lab `lab` (default: derived from the topology's name) to `topology`, changing only what differs.
    `change`: what the user asks of the running lab (netops.actions: nodes stopped, links down), applied to its
    runtime state before planning. `span`: the lab runs across hosts (netops.span); this host builds its part of
    it (span.local_topology) and its tunnels (netops.vxlan). None: the whole lab, on this host."""
    lab = naming.check_lab_id(lab if lab is not None else naming.derive_lab_id(topology.name))
    with lab_lock(lab):
        return up_locked(topology, lab, on_event=on_event, fault_after=fault_after, change=change, span=span)


def up_locked(topology: Topology, lab: str, *, on_event: EventSink = None, fault_after: int | None = None,
              change: RuntimeChange | None = None, span: spans.Span | None = None) -> UpResult:
    """`up` for a caller that holds the lab's lock already (netops.actions runs several in one operation)."""
    started = time.monotonic()
    tunnels: list[spans.Tunnel] = []
    if span is not None:
        problems = spans.span_problems(topology, span)
        if problems:
            raise TopologyError(problems)
        tunnels = spans.tunnels(topology, span)
        if tunnels:  # refused before anything is made
            vxlan.check_underlay(span.underlay_netns)
        on_event = _part_events(on_event, spans.link_bridges(topology, span))
        topology = spans.local_topology(topology, span)
    cell = cells.allocate(lab)
    cells.prepare_dirs(cell)
    rundir = naming.run_dir(lab)
    limits = _node_limits(topology)
    runtime.write_private(rundir / "limits.json", json.dumps(limits, sort_keys=True))
    for node, values in limits.items():  # nodes that run processes already: their limits as now written
        cgroups.set_node_limits(lab, node, cgroups.Limits(**values))  # type: ignore[arg-type]
    existing = sorted((n for n in netns.list_names() if (naming.parse_namespace(n) or ("",))[0] == lab),
                      key=lambda n: n != naming.fabric_namespace(lab))
    with netns.Namespaces(cell=netns.CellNamespaces(cell.ids(), existing)) as spaces:
        return _up(spaces, topology, lab, on_event, fault_after, started, change, span, tunnels)


def _part_events(on_event: EventSink, link_bridges: set[str]) -> EventSink:
    """Events of a host's part: the link bridges of direct links across hosts are no nodes of the document, so
    their node.state events are dropped and their steps name no node."""
    if on_event is None or not link_bridges:
        return on_event

    def sink(event: Event) -> None:
        if event.node in link_bridges:
            if event.type == "node.state":
                return
            event = replace(event, node=None)
        on_event(event)

    return sink


def _node_limits(topology: Topology) -> dict[str, dict[str, float | int | None]]:
    """The cgroup limits of every node that runs processes: the operator's defaults lowered by the document's
    `limits:`, a VM's memory added to its node's default."""
    out = {}
    for name, node in topology.nodes.items():
        extra = (node.memory or 0) << 20 if node.memory else 0
        limits = cells.node_limits(node.limits, extra_memory=extra)
        out[name] = {"memory": limits.memory, "pids": limits.pids, "cpu": limits.cpu}
    return out


def _up(spaces: netns.Namespaces, topology: Topology, lab: str, on_event: EventSink, fault_after: int | None,
        started: float, change: RuntimeChange | None, span: spans.Span | None = None,
        tunnels: list[spans.Tunnel] | None = None) -> UpResult:
    if uplinks.nat_externals(topology):  # refused before anything is made when the pool is not the host's to spare
        with nl.NetlinkSocket() as root:
            uplinks.check_pool(uplinks.host_routes(root))
    inv = observe.inventory(spaces, lab, topology)
    asked = runtime.of_inventory(inv)
    if change is not None:  # written before anything is done: a failed action is finished by the next deploy
        change(asked)
        runtime.write(lab, asked)
        runtime.to_inventory(asked, inv)
    delay_relay = _needs_delay_relay(topology)
    tunnels = tunnels or []
    steps = planning.plan(topology, lab, inv, delay_relay=delay_relay, keep_fabric=vxlan.fabric_names(tunnels),
                          keep_namespaces=frozenset([naming.tunnel_namespace(lab)] if tunnels else []))
    if tunnels:
        steps = planning.in_phases(steps + vxlan.steps(inv, lab, tunnels, span, steps))  # type: ignore[arg-type]
    rundir = naming.run_dir(lab)
    runtime.write_private(rundir / "topology.json", json.dumps(topology.document, indent=1, sort_keys=True))
    if span is not None:  # status shows this host's part (span.local_topology of the stored document)
        runtime.write_private(rundir / SPAN_FILE, json.dumps(span.as_json(), sort_keys=True))
    else:
        (rundir / SPAN_FILE).unlink(missing_ok=True)
    applier = _Applier(spaces, topology, lab, on_event)
    try:
        applier.apply(steps, fault_after)
    except BaseException:
        sigs = dict(inv.signatures)
        sigs.update({s.node: None for s in steps if s.node})  # touched nodes: rebuild them next time
        sigs.update({n: planning.node_signature(topology, n) for n in topology.nodes
                     if n not in sigs and n not in applier.touched})
        _write_signatures(lab, sigs)
        runtime.write(lab, runtime.after_up(asked, topology, None))
        raise
    finally:
        applier.close()
    built: dict[str, str | None] = dict(planning.signatures(topology))
    # a stopped node keeps the signature it was built with: started again after an edit, it is rebuilt
    built.update({n: inv.signatures[n] for n in asked.stopped if inv.signatures.get(n) and n in built})
    _write_signatures(lab, built)
    runtime.write(lab, runtime.after_up(asked, topology, planning.conditions_of(topology, delay_relay)))
    return UpResult(lab, [s.description for s in steps], time.monotonic() - started)


def _needs_delay_relay(topology: Topology) -> bool:
    """Whether links with delay/jitter must be carried by netops.delayd (no sch_netem in this kernel)."""
    if not any(planning.needs_delay(lk) for lk in topology.links):
        return False
    return not linkcond.supports_delay()


def _write_signatures(lab: str, sigs: Mapping[str, str | None]) -> None:
    runtime.write_private(naming.run_dir(lab) / "signatures.json", json.dumps(sigs, sort_keys=True))


class _Applier(LinkOps):
    """Executes steps. Keeps a bounded cache of netlink sockets, one per namespace, all closed at the end."""

    def __init__(self, spaces: netns.Namespaces, topology: Topology, lab: str, on_event: EventSink):
        self.spaces = spaces
        self.topology = topology
        self.lab = lab
        self.on_event = on_event
        self.fabric = naming.fabric_namespace(lab)
        self.links_by_index = {lk.index: lk for lk in topology.links}  # a host's part keeps the document's indexes
        self.host_spaces: netns.Namespaces | None = None  # namespaces of the host's, not the lab's (netops.vxlan)
        self.socks: OrderedDict[str | None, nl.NetlinkSocket] = OrderedDict()
        self.bridges: dict[str, int] = {}  # ifindex of the lab's bridges in the fabric, as found or made here
        self.touched: set[str] = set()  # nodes reported as starting
        self.last_of: dict[str, int] = {}  # node -> index of its last step
        # namespaces being made by netns.create_many and not yet taken: name -> (step index, step, Future of its
        # netlink socket)
        self.pending: dict[str, tuple[int, Step, Future[nl.NetlinkSocket]]] = {}

    def cell_uid(self) -> int:
        cell = cells.get(self.lab)
        if cell is None:
            raise ApplyError(f"lab {self.lab} has no cell", element="lab")
        return cell.uid

    def close(self) -> None:
        for _k, _step, fut in self.pending.values():  # after a failure: let them finish, close their sockets
            try:
                fut.result().close()
            except BaseException:  # noqa: BLE001, S110 - the failure that matters is being raised already
                pass
        self.pending.clear()
        while self.socks:
            self.socks.popitem()[1].close()
        if self.host_spaces is not None:
            self.host_spaces.close()

    def sock(self, ns: str | None) -> nl.NetlinkSocket:
        s = self.socks.get(ns)
        if s is not None:
            self.socks.move_to_end(ns)
            return s
        if ns is not None and not netns.exists(ns):
            raise ApplyError(f"namespace {ns} does not exist")
        s = self.spaces.netlink(ns)
        self._cache(ns, s)
        return s

    def _cache(self, ns: str | None, s: nl.NetlinkSocket) -> None:
        self.socks[ns] = s
        while len(self.socks) > SOCKET_CACHE:
            self.socks.popitem(last=False)[1].close()

    def _adopt(self, ns: str, s: nl.NetlinkSocket) -> None:
        self.drop(ns)
        self._cache(ns, s)

    def drop(self, ns: str) -> None:
        s = self.socks.pop(ns, None)
        if s is not None:
            s.close()

    # -------------------------------------------------------------------------------------------- driver

    def apply(self, steps: list[Step], fault_after: int | None) -> None:
        """Run the steps in order. A long run of namespace.create (hundreds of nodes) is handed to
        netns.create_many at once and its steps are then taken in order as their namespaces are ready.

        Measured and not kept: letting the bridge and link steps go on while the namespaces are still being made
        (each waiting for the ones it names). The link phase then took as long as both phases had before: the
        kernel serialises the two (rtnl_lock, and the global sysctl and sysfs registration every namespace and
        every link goes through). Splitting other runs of steps over threads gained nothing either."""
        total = len(steps)
        for i, s in enumerate(steps):
            if s.node:
                self.last_of[s.node] = i
        if fault_after is not None and fault_after <= 0:
            raise ApplyError("fault injected before the first step")
        i = 0
        while i < total:
            j = i
            while j < total and steps[j].action == steps[i].action:
                j += 1
            end = j if fault_after is None else min(j, max(fault_after, i))
            if steps[i].action == "namespace.create" and end - i >= PARALLEL_MIN:
                self._create_namespaces(list(range(i, end)), steps, total)
            elif steps[i].action == "frr.start" and end - i > 1 and FRR_WORKERS > 1:
                self._start_concurrently(list(range(i, end)), steps, total)
            else:
                for k in range(i, end):
                    self._run_step(k, steps[k], total)
            if fault_after is not None and i < fault_after <= j:
                raise ApplyError(f"fault injected after step {fault_after}", element=steps[fault_after - 1].path,
                                 step=steps[fault_after - 1].description)
            i = j

    def _create_namespaces(self, indexes: list[int], steps: list[Step], total: int) -> None:
        """A long run of namespace.create: all started at once (netns.create_many), then each step is reported and
        finished in order as its namespace is ready, so events and failures are those of the one-by-one loop."""
        runs = [(steps[k].params["namespace"], self._namespace_job(steps[k])) for k in indexes]
        futures = self.spaces.create_many(runs, workers=CREATE_WORKERS)
        for k, (ns, _job), fut in zip(indexes, runs, futures, strict=True):
            self.pending[ns] = (k, steps[k], fut)
        for k, (ns, _job), fut in zip(indexes, runs, futures, strict=True):
            self._announce(k, steps[k], total)
            if fut.exception() is not None:
                self._fail_first()
            del self.pending[ns]
            self._adopt(ns, fut.result())
            self._finish(k, steps[k])

    def _start_concurrently(self, indexes: list[int], steps: list[Step], total: int) -> None:
        """A run of steps that start independent processes (one FRR instance per router), FRR_WORKERS at a time;
        each is reported, and the first failure raised, in step order as for the one-by-one loop."""
        with ThreadPoolExecutor(min(FRR_WORKERS, len(indexes)), thread_name_prefix="frr") as pool:
            futures = [pool.submit(self._handler(steps[k].action), steps[k]) for k in indexes]
            for k, fut in zip(indexes, futures, strict=True):
                self._announce(k, steps[k], total)
                try:
                    fut.result()
                except (ApplyError, OSError) as exc:
                    for other in futures:
                        other.cancel()
                    raise self._failure(steps[k], exc) from exc
                self._finish(k, steps[k])

    def _fail_first(self) -> NoReturn:
        """A namespace could not be made: wait for all the others (keeping the sockets of those that were), then
        fail the first failed step in step order, naming its node."""
        first: tuple[Step, BaseException] | None = None
        for ns, (_k, step, fut) in sorted(self.pending.items(), key=lambda item: item[1][0]):
            exc = fut.exception()
            if exc is None:
                self._adopt(ns, fut.result())
            elif first is None:
                first = (step, exc)
        self.pending.clear()
        assert first is not None
        step, exc = first
        err = self._failure(step, exc)
        if err is exc:
            raise exc
        raise err from exc

    def _announce(self, k: int, step: Step, total: int) -> None:
        if step.node and step.node not in self.touched and not step.action.startswith("remove."):
            self.touched.add(step.node)
            emit(self.on_event, Event("node.state", node=step.node, state="starting"))
        emit(self.on_event, Event("run.step", step.description, node=step.node, step=k + 1, total=total,
                                  data={"path": step.path, "action": step.action}))

    def _finish(self, k: int, step: Step) -> None:
        if step.node and self.last_of.get(step.node) == k and not step.action.startswith("remove."):
            emit(self.on_event, Event("node.state", node=step.node, state="running"))

    def _run_step(self, k: int, step: Step, total: int) -> None:
        self._announce(k, step, total)
        try:
            self._handler(step.action)(step)
        except (ApplyError, OSError) as exc:
            raise self._failure(step, exc) from exc
        self._finish(k, step)

    def _handler(self, action: str) -> Callable[[Step], None]:
        """A kind's method for its actions (netops.kinds), the link's shape for link.create (netops.wiring), else
        this class's do_<phase>_<action>."""
        by_kind = kinds.handler(action)
        if by_kind is not None:
            return functools.partial(by_kind, self)
        if action == "link.create":
            return lambda step: SHAPES[step.params["kind"]].create(self, step)
        do: Callable[[Step], None] = getattr(self, "do_" + action.replace(".", "_").replace("-", "_"))
        return do

    def _failure(self, step: Step, exc: BaseException) -> BaseException:
        """The ApplyError a failed step raises (naming its element), after telling that its node failed."""
        if not isinstance(exc, (ApplyError, OSError)):
            return exc
        message = exc.message if isinstance(exc, ApplyError) else str(exc)
        if step.node:
            emit(self.on_event, Event("node.state", node=step.node, state="failed", message=message))
        if isinstance(exc, ApplyError):
            return ApplyError(exc.message, element=exc.element or step.path, step=step.description,
                              permanent=exc.permanent)
        return ApplyError(f"{step.description}: {exc}", element=step.path, step=step.description,
                          permanent=exc.errno not in (errno.EBUSY, errno.EAGAIN, errno.ENOBUFS))

    # -------------------------------------------------------------------------------------------- removal

    def do_remove_processes(self, step: Step) -> None:
        if step.params.get("vm"):
            qemu.stop_vm(self.lab, node_of(step))
        for role in step.params["roles"]:
            for proc in procs.find(lab=self.lab, role=role):
                procs.stop(proc)
        if step.params.get("vm"):
            for proc in procs.find(lab=self.lab):
                if proc.role.split(":")[:2] == ["qemu", step.node]:
                    procs.stop(proc)

    def do_remove_namespace(self, step: Step) -> None:
        ns = step.params["namespace"]
        if ns == self.fabric:
            self.bridges.clear()
        self.drop(ns)
        netns.delete(ns)

    def do_remove_link(self, step: Step) -> None:
        if step.params["namespace"] == self.fabric:
            self.bridges.pop(step.params["ifname"], None)
        self.sock(step.params["namespace"]).call(nl.link_del(name=step.params["ifname"]))

    def do_remove_external_nat(self, step: Step) -> None:
        """The chains of one external in the lab's root table (and the table once empty)."""
        nft.delete_external_nat(self.lab, step.params["node"])

    def do_remove_host_forwarding(self, step: Step) -> None:
        """No external with nat left in the lab: give the host's ip_forward back (restored when no lab holds it)."""
        destroy.host_forwarding_release(self.lab)

    # -------------------------------------------------------------------------------------------- build

    def do_namespace_create(self, step: Step) -> None:
        ns = step.params["namespace"]
        self._adopt(ns, self.spaces.create(ns, self._namespace_job(step)))

    @staticmethod
    def _namespace_job(step: Step) -> Callable[[], nl.NetlinkSocket]:
        """What runs inside a namespace just created: its sysctls, lo up with the tag; returns its socket."""
        ns, tag = step.params["namespace"], step.params["tag"]

        # arp_notify: announce addresses when links come up ("all" is enough: the kernel takes the larger of "all"
        # and the link's own value)
        settings = {"ipv4/conf/all/arp_notify": "1"}
        if not step.params.get("ipv6", True):
            # no IPv6 in this namespace's part of the document: spare the kernel addrconf/DAD/MLD on every link
            # made from now on (they start from "default"; lo keeps ::1). Not "all": writing that takes rtnl_lock
            # by trylock-and-restart, so it spins while another thread builds links.
            settings["ipv6/conf/default/disable_ipv6"] = "1"

        def inside() -> nl.NetlinkSocket:
            for key, value in settings.items():
                sysctl.write(f"net/{key}", value)
            s = nl.NetlinkSocket(ns)
            try:
                s.call(nl.link_set(index=1, up=True, alias=tag))
            except BaseException:
                s.close()
                raise
            return s

        return inside

    def do_tunnel_create(self, step: Step) -> None:
        """A VXLAN tunnel of a lab across hosts (netops.vxlan): the tunnel namespace is the host's (made outside
        the lab's cell), the device's socket the underlay's."""
        ns = step.params["namespace"]
        if not netns.exists(ns):
            if self.host_spaces is None:
                self.host_spaces = netns.Namespaces()
            self.host_spaces.create(ns, vxlan.namespace_job(step.params["namespace_tag"]))
        vxlan.make(self.sock(self.fabric), self.sock(ns), self.sock(step.params["underlay"]), self.fabric,
                   step.params)

    # -------------------------------------------------------------------------------------------- services

    def do_linkcond_apply(self, step: Step) -> None:
        p = step.params
        link = self.links_by_index[p["link"]]
        if p.get("relayed"):  # delay and jitter are the relay's; the kernel keeps rate and loss
            link = replace(link, conditions=replace(link.conditions, delay_ms=None, jitter_ms=None))
        linkcond.apply(self.lab, link, p["namespace"], p["ifname"])

    def do_relay_start(self, step: Step) -> None:
        """(Re)start the link's delay relay: a fresh link has fresh interfaces, so an old relay is stopped first."""
        p = step.params
        for old in procs.find(lab=self.lab, role=p["role"]):
            procs.stop(old)
        argv = [sys.executable, "-I", str(DELAYD), "--a", p["a"], "--b", p["b"],
                "--delay-ms", f"{float(p['delay_ms']):g}", "--jitter-ms", f"{float(p['jitter_ms']):g}"]
        procs.spawn(argv, lab=self.lab, role=p["role"], namespace=p["namespace"], caps=("net_raw", "net_admin"),
                    log_path=cells.cell_dir(self.lab) / f"{p['role'].replace(':', '-')}.log")

    def do_dhcp_server_start(self, step: Step) -> None:
        p = step.params
        iface = self.topology.nodes[node_of(step)].interfaces[p["ifname"]]
        dnsmasq.start(self.lab, node_of(step), iface, p["namespace"])

    def do_dhcp_client_start(self, step: Step) -> None:
        p = step.params
        dhcpclient.start(self.lab, node_of(step), p["ifname"], p["namespace"])
        s = self.sock(p["namespace"])
        deadline = time.monotonic() + DHCP_TIMEOUT
        while True:  # the client returns once it has a lease; confirm the address is on the interface
            link = s.link(name=p["ifname"])
            if link is not None and any(a.index == link.index and a.cidr.count(".") == 3 for a in s.addresses()):
                return
            if time.monotonic() > deadline:
                raise ApplyError(f"no DHCP address within {DHCP_TIMEOUT:.0f} s", element=step.path,
                                 permanent=False)
            time.sleep(0.05)

    def do_vm_start(self, step: Step) -> None:
        node = self.topology.nodes[node_of(step)]
        qemu.start_vm(self.lab, node, dict(step.params["taps"]), self.fabric)


# ------------------------------------------------------------------------------------------------ down / clean


def down(lab: str, *, on_event: EventSink = None, span: spans.Span | None = None) -> list[str]:
    """Destroy the lab from kernel state (tagged objects only). Idempotent; returns what was removed. `span`: the
    lab ran across hosts; this host's part goes, its tunnels first (netops.vxlan)."""
    lab = naming.check_lab_id(lab)
    with lab_lock(lab):
        removed: list[str] = []
        if span is not None:
            with netns.Namespaces() as spaces:
                removed += vxlan.remove(spaces, lab, on_event=on_event)
        return removed + destroy.destroy_lab(lab, on_event)


def clean(*, on_event: EventSink = None) -> list[str]:
    """Destroy every Topolab-owned object on this host (all labs found by tags)."""
    return destroy.destroy_all(on_event)


# ------------------------------------------------------------------------------------------------ exec


def exec_argv(lab: str, node: str) -> list[str]:
    """argv prefix that runs a command inside the node's namespace, after checking the namespace is the lab's."""
    lab = naming.check_lab_id(lab)
    ns = naming.node_namespace(lab, node)
    if not naming.NODE_NAME_RE.match(node) or not netns.exists(ns):
        raise ApplyError(f"node {node} of lab {lab} is not running (no namespace {ns})", element=f"nodes.{node}")
    with netns.Namespaces() as spaces:
        alias = spaces.run_in(ns, observe._lo_alias)
    if alias != naming.tag(lab, "ns", node):
        raise ApplyError(f"namespace {ns} is not Topolab's (tag missing)", element=f"nodes.{node}")
    return ["nsenter", f"--net={netns.path(ns)}", "--"]


def stored_span(lab: str) -> spans.Span | None:
    """The span of the part of a lab across hosts this host last deployed (None: the lab runs on this host only)."""
    path = naming.run_dir(naming.check_lab_id(lab)) / SPAN_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return spans.Span.from_json(data, data.get("local"), underlay_netns=data.get("underlay_netns"))


def status(lab: str, topology: Topology | None = None) -> LabStatus:
    """Per-node state, interfaces, leases and drift of a lab; compares with the stored document when
    `topology` is None."""
    lab = naming.check_lab_id(lab)
    bridges: set[str] = set()
    if topology is None:
        stored = naming.run_dir(lab) / "topology.json"
        if stored.exists():
            from .topology import parse_document
            topology = parse_document(json.loads(stored.read_text()))
            span = stored_span(lab)
            if span is not None:  # a part of a lab across hosts: this host's part of it
                bridges = spans.link_bridges(topology, span)
                topology = spans.local_topology(topology, span)
    with netns.Namespaces() as spaces:
        st = observe.lab_status(spaces, lab, topology)
    for name in bridges:  # a direct link's link bridge is no node of the document
        st.nodes.pop(name, None)
    return st


__all__ = ["UpResult", "LabStatus", "up", "down", "status", "clean", "exec_argv"]
