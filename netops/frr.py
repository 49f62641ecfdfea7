"""FRR in router namespaces: configuration from the document, one FRR instance per router, reload, status.

Pure part (unit-tested): `render_config()` (frr.conf), `render_daemons()` (FRR's `daemons` file, for containerlab
and for people), `daemon_argv()`, `vtysh_argv()`, `parse_status()`.

Kernel part: `start()`, `reload()`, `stop()`, `router_status()`.

How one router's FRR runs (what CORE, containerlab and Kathara do, without a container): zebra and the protocol
daemons the document needs run inside the router's network namespace, in the lab's cell (`procs.spawn`: uid 0 of the
lab's user namespace, only `DAEMON_CAPS` there, the node's cgroup), in the foreground, each tagged
`frr:<node>:<daemon>`. Each router is its own FRR instance named by the pathspace `tl-<lab>-<node>` (its namespace's
name): its vty sockets, zserv socket and pid files are in `<cell dir>/<pathspace>/` (`--vty_socket`, `-z`, `-i`;
FRR makes that directory, as the lab's uid), so two labs with identically named routers never meet, and nothing of
FRR lives outside the lab's run dir. The daemons are not given `-N` (FRR would then also make
`/var/run/frr/<pathspace>`, outside the lab, which the lab's uid may not) and run as the lab's root (`-u root`: no
user to drop to inside the cell). vtysh reaches one instance only: `vtysh --vty_socket <cell dir> -N <pathspace>`
(vtysh appends the pathspace), run in the cell with no capability: to apply the configuration (`vtysh -f`), to
reload it (`frr-reload.py`), for status, and as the console's "FRR (vtysh)". Whatever a `frr_config` says, it
reaches FRR's command parser inside the lab's cell, as a student typing it in vtysh would, and nothing else.

    <run_dir>/frr/<pathspace>/    the agent's (root, readable): frr.conf, daemons, vtysh.conf, applied (hash)
    <cell dir>/<pathspace>/       the lab's (FRR's): <daemon>.vty, zserv.api, <daemon>.pid

A changed `routing:` is applied with frr-reload.py (the difference, as `no ...` and new lines), not by restarting;
daemons that become needed are started first, daemons no longer needed are stopped after.
"""
from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from . import cell as cells
from . import naming, procs
from .errors import ApplyError
from .model import Node, Topology
from .routing import Ospf, Routing, effective_router_id

FRR_BIN = Path("/usr/lib/frr")
VTYSH = "/usr/bin/vtysh"
FRR_RELOAD = FRR_BIN / "frr-reload.py"
#: what FRR's daemons ask for (their zprivs: zebra net_admin, sys_admin, net_raw; ospfd and bgpd net_admin, net_raw
#: and binding port 179), and setgid/setuid for the vty group they join; inside the lab's user namespace only
DAEMON_CAPS = ("net_admin", "net_raw", "net_bind_service", "sys_admin", "setuid", "setgid", "chown")
FRR_USER, VTY_GROUP = "frr", "frrvty"  # Debian's; FRR drops to them (uids of the lab's range inside the cell)
#: vtysh (and frr-reload.py) run in the cell as FRR's user and vty group, which the instance's sockets need, with
#: no capability left
VTYSH_PREFIX = ["setpriv", f"--reuid={FRR_USER}", f"--regid={VTY_GROUP}", "--clear-groups", "--inh-caps=-all", "--"]
VTYSH_CAPS = ("setuid", "setgid")  # for setpriv only
ALL_DAEMONS = ("zebra", "bgpd", "ospfd", "ospf6d", "ripd", "ripngd", "isisd", "pimd", "ldpd", "nhrpd", "eigrpd",
               "babeld", "sharpd", "pbrd", "bfdd", "fabricd", "vrrpd", "pathd", "staticd")
ALWAYS_STARTED = ("zebra", "staticd")  # by FRR's own init: its daemons file has no `<daemon>=yes` line for them
START_TIMEOUT = 10.0
#: the environment of every vtysh we run: no history file, no pager that could start a shell
VTYSH_ENV = {"VTYSH_HISTFILE": "/dev/null", "VTYSH_PAGER": "cat", "LESSSECURE": "1", "PAGER": "cat"}


def role(node: str, daemon: str) -> str:
    return f"frr:{node}:{daemon}"


def is_frr_role(role_name: str, node: str | None = None) -> bool:
    parts = role_name.split(":")
    return len(parts) == 3 and parts[0] == "frr" and (node is None or parts[1] == node)


# ------------------------------------------------------------------------------------------------ paths


def _check(lab: str, node: str) -> None:
    naming.check_lab_id(lab)
    if not isinstance(node, str) or not naming.NODE_NAME_RE.match(node):
        raise ApplyError(f"node name {node!r} is not valid", element=f"nodes.{node}")


def conf_base(lab: str) -> Path:
    return naming.run_dir(lab) / "frr"


def pathspace(lab: str, node: str) -> str:
    """The FRR pathspace of a router's instance: its namespace's name (no '/' or '.', as FRR requires)."""
    _check(lab, node)
    return naming.node_namespace(lab, node)


def conf_dir(lab: str, node: str) -> Path:
    return conf_base(lab) / pathspace(lab, node)


def sock_base(lab: str) -> Path:
    return naming.run_dir(lab) / "frr-sock"


def sock_dir(lab: str, node: str) -> Path:
    """Where the instance's daemons listen and keep their pid files: a directory of the lab's `frr` uid (FRR drops
    to it, and the lab's cell dir is closed to all but the lab's root)."""
    return sock_base(lab) / pathspace(lab, node)


# ------------------------------------------------------------------------------------------------ pure: config


def _p2p(topology: Topology, node: str, iface: str) -> bool:
    """A link straight to another node's interface (no lab bridge between) is point-to-point for OSPF: no DR
    election, so no wait of a dead interval before adjacencies form."""
    peer = topology.peer_of(node, iface)
    return peer is not None and peer.interface is not None


def _ospf_interface_lines(topology: Topology, node: Node, iface: str, ospf: Ospf | None, ospf6: Ospf | None) -> list[str]:
    lines: list[str] = []
    for o, v in ((ospf, 4), (ospf6, 6)):
        if o is None:
            continue
        area = o.interfaces().get(iface)
        if area is None:
            continue
        p = "ip ospf" if v == 4 else "ipv6 ospf6"
        lines.append(f" {p} area {area.dotted}")
        if iface != "lo" and _p2p(topology, node.name, iface):
            lines.append(f" {p} network point-to-point")
        if v == 6 and (iface in area.passive or iface == "lo"):
            lines.append(" ipv6 ospf6 passive")
        if iface != "lo":
            if o.hello is not None:
                lines.append(f" {p} hello-interval {o.hello}")
                # short hellos mean a fast lab: an LSA update lost in the first seconds (FRR's retransmit
                # interval is 5 s) would otherwise delay convergence by 5 s each time
                lines.append(f" {p} retransmit-interval {min(o.hello, 5)}")
            if o.dead is not None:
                lines.append(f" {p} dead-interval {o.dead}")
        if iface in o.cost:
            lines.append(f" {p} cost {o.cost[iface]}")
    return lines


def _redistribute(kinds: tuple[str, ...], indent: str = " ") -> list[str]:
    # `static` is the node's `routes:`: the engine installs them, so FRR sees kernel routes
    names = {"connected": "connected", "static": "kernel", "ospf": "ospf", "bgp": "bgp"}
    return [f"{indent}redistribute {names[k]}" for k in kinds]


def render_config(topology: Topology, node_name: str) -> str:
    """frr.conf of a router (pure). Every value comes from the validated model; `frr_config` is appended last,
    verbatim (netops.routing has checked it)."""
    node = topology.nodes[node_name]
    r: Routing | None = node.routing
    if r is None:
        raise ApplyError(f"{node_name} is not a router with routing", element=f"nodes.{node_name}")
    out = ["frr defaults traditional", f"hostname {node.name}", "!"]
    ifaces = (["lo"] if r.loopback or any("lo" in o.interfaces() for o in (r.ospf, r.ospf6) if o) else []) + \
        list(node.interfaces)
    for iface in ifaces:
        lines = [f" {'ip' if a.version == 4 else 'ipv6'} address {a}" for a in r.loopback] if iface == "lo" else []
        lines += _ospf_interface_lines(topology, node, iface, r.ospf, r.ospf6)
        if lines:
            out += [f"interface {iface}", *lines, "exit", "!"]
    if r.ospf is not None:
        out.append("router ospf")
        out.append(f" ospf router-id {effective_router_id(node, r.ospf)}")
        out += [f" passive-interface {name}" for a in r.ospf.areas for name in a.passive]
        # a lab reroutes at once: FRR's defaults wait up to 5 s before re-originating an LSA, drop LSAs arriving
        # within 1 s of the last and hold SPF runs up to 5 s apart after a burst (measured on the triangle: a down
        # link rerouted after 9.7 s with the defaults, 0.5 s with these)
        out += [" timers throttle lsa all 100", " timers lsa min-arrival 50", " timers throttle spf 0 50 1000"]
        out += _redistribute(r.ospf.redistribute)
        out += ["exit", "!"]
    if r.ospf6 is not None:
        out.append("router ospf6")
        rid = effective_router_id(node, r.ospf6)
        out.append(f" ospf6 router-id {rid}")
        out += _redistribute(r.ospf6.redistribute)
        out += ["exit", "!"]
    if r.bgp is not None:
        b = r.bgp
        out += [f"router bgp {b.asn}", f" bgp router-id {effective_router_id(node, b)}",
                # a lab's eBGP sessions exchange routes without route-maps (FRR's default since 7.4 sends none)
                " no bgp ebgp-requires-policy", " no bgp default ipv4-unicast"]
        for n in b.neighbors:
            if n.interface is not None:
                out.append(f" neighbor {n.interface} interface remote-as {n.asn}")
            else:
                out.append(f" neighbor {n.address} remote-as {n.asn}")
            if n.description:
                out.append(f" neighbor {n.peer} description {n.description}")
            if n.multihop is not None:
                out.append(f" neighbor {n.peer} ebgp-multihop {n.multihop}")
            if n.update_source is not None:
                out.append(f" neighbor {n.peer} update-source {n.update_source}")
            out.append(f" neighbor {n.peer} timers connect 5")  # not FRR's 120 s when the peer starts later
        for version, af in ((4, "ipv4"), (6, "ipv6")):
            peers = [n.peer for n in b.neighbors if n.interface is not None or n.address.version == version]  # type: ignore[union-attr]
            nets = [str(n) for n in b.networks if n.version == version]
            if not peers and not nets:
                continue
            out += [" !", f" address-family {af} unicast"]
            out += [f"  network {n}" for n in nets]
            out += _redistribute(b.redistribute, "  ")
            out += [f"  neighbor {p} activate" for p in peers]
            out.append(" exit-address-family")
        out += ["exit", "!"]
    text = "\n".join(out) + "\n"
    if r.frr_config:
        text += r.frr_config if r.frr_config.endswith("\n") else r.frr_config + "\n"
    return text


def config_hash(topology: Topology, node_name: str) -> str:
    """What decides a reload: the frr.conf text and the daemons it needs."""
    node = topology.nodes[node_name]
    text = render_config(topology, node_name) + ",".join(node.routing.daemons())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def render_daemons(routing: Routing) -> str:
    """FRR's `daemons` file (as Debian's /etc/frr/daemons) naming the daemons this router needs."""
    wanted = set(routing.daemons())
    lines = ["# written by Topolab from the document's routing: (FRR's daemons file)"]
    lines += [f"{d}=yes" if d in wanted else f"{d}=no" for d in ALL_DAEMONS if d not in ALWAYS_STARTED]
    lines += ["vtysh_enable=yes", 'zebra_options="  -A 127.0.0.1 -s 90000000"']
    lines += [f'{d}_options="  -A {"::1" if d in ("ospf6d", "ripngd") else "127.0.0.1"}"'
              for d in ALL_DAEMONS if d != "zebra"]
    return "\n".join(lines) + "\n"


def vtysh_conf(node: str) -> str:
    """The instance's vtysh.conf: integrated config; vtysh's own prompt named after the router (it runs in the
    host's UTS namespace); and no PAM check for FRR's user (PAM's account check cannot run in the cell)."""
    return f"service integrated-vtysh-config\nhostname {node}\nusername {FRR_USER} nopassword\n"


CLAB_IMAGE = "quay.io/frrouting/frr:8.4.4"  # containerlab's FRR routers: the FRR release Topolab runs


def containerlab_files(topology: Topology) -> dict[str, str]:
    """The files a containerlab export binds into FRR routers (netops.containerlab): path -> text."""
    out: dict[str, str] = {}
    for name, node in topology.nodes.items():
        if node.routing is not None:
            out[f"frr/{name}/frr.conf"] = render_config(topology, name)
            out[f"frr/{name}/daemons"] = render_daemons(node.routing)
    return out


# ------------------------------------------------------------------------------------------------ pure: argv


def daemon_argv(lab: str, node: str, daemon: str, config: Path | None = None) -> list[str]:
    """A daemon of this router's instance, in the foreground (procs.spawn tracks the exec'd pid). `-f`: the
    instance's generated frr.conf (`config`), each daemon taking its own commands from it, or /dev/null, when
    vtysh applies the configuration once the daemons listen; nothing is read from /etc/frr. `-P 0`: no TCP vty."""
    if daemon not in ALL_DAEMONS:
        raise ApplyError(f"unknown FRR daemon {daemon!r}")
    sock = sock_dir(lab, node)
    return [str(FRR_BIN / daemon), "-f", str(config or "/dev/null"), "--vty_socket", str(sock),
            "-z", str(sock / "zserv.api"),
            "-i", str(sock / f"{daemon}.pid"), "-P", "0",
            "--log", "stdout", "--log-level", "notifications"]


def vtysh_argv(lab: str, node: str, *extra: str) -> list[str]:
    """vtysh bound to this router's instance only (run in the lab's cell: the sockets are the lab's)."""
    return [*VTYSH_PREFIX, VTYSH, "--vty_socket", str(sock_base(lab)), "--config_dir", str(conf_base(lab)),
            "-N", pathspace(lab, node), "-H", "/dev/null", *extra]


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _prepare(lab: str, topology: Topology, node: str) -> str:
    """Write the instance's configuration files; returns the config hash."""
    routing: Routing = topology.nodes[node].routing
    cdir = conf_dir(lab, node)
    for d in (conf_base(lab), cdir):
        d.mkdir(mode=0o755, parents=True, exist_ok=True)
        if d.is_symlink() or not d.is_dir() or d.stat().st_uid != os.geteuid():
            raise ApplyError(f"{d} is not a directory of ours", element=f"nodes.{node}.routing")
    _write(cdir / "frr.conf", render_config(topology, node))
    _write(cdir / "daemons", render_daemons(routing))
    _write(cdir / "vtysh.conf", vtysh_conf(node))
    _socket_dir(lab, node)
    return config_hash(topology, node)


def _socket_dir(lab: str, node: str) -> None:
    """The instance's socket dir (fresh), owned by the lab's uid and gid of FRR's user and vty group, 0770."""
    cell = cells.get(lab)
    if cell is None:
        raise ApplyError(f"lab {lab} has no cell", element="lab")
    base, d = sock_base(lab), sock_dir(lab, node)
    base.mkdir(mode=0o711, exist_ok=True)
    if base.is_symlink() or base.stat().st_uid != os.geteuid():
        raise ApplyError(f"{base} is not a directory of ours", element="lab")
    if d.is_symlink():
        d.unlink()
    elif d.is_dir():
        shutil.rmtree(d)  # stale sockets of an instance that died
    d.mkdir(mode=0o770)
    os.chown(d, cell.uid + pwd.getpwnam(FRR_USER).pw_uid, cell.gid + grp.getgrnam(VTY_GROUP).gr_gid,
             follow_symlinks=False)
    os.chmod(d, 0o770, follow_symlinks=False)


def running(lab: str, node: str) -> dict[str, procs.TaggedProcess]:
    """The instance's live daemons, by name."""
    return {p.role.split(":")[2]: p for p in procs.find(lab) if is_frr_role(p.role, node)}


def _wait_socket(lab: str, node: str, daemon: str, pid: int, element: str) -> None:
    path = sock_dir(lab, node) / f"{daemon}.vty"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if procs.inspect(pid) is None:
            raise ApplyError(f"{daemon} exited at start: {_tail(lab, _log(lab, node, daemon))}", element=element)
        if path.exists():
            return
        time.sleep(0.01)
    raise ApplyError(f"{daemon} did not listen within {START_TIMEOUT:.0f} s", element=element, permanent=False)


def _log(lab: str, node: str, daemon: str) -> Path:
    return cells.cell_dir(lab) / f"frr-{node}-{daemon}.log"


def _tail(lab: str, path: Path, lines: int = 5) -> str:
    try:
        text = cells.read_text(lab, path, 64 * 1024)
    except ApplyError as exc:
        return str(exc)
    return "(no log)" if text is None else " | ".join(text.strip().splitlines()[-lines:])


def _spawn(lab: str, node: str, daemon: str, namespace: str, element: str, config: Path | None = None) -> int:
    try:
        return procs.spawn(daemon_argv(lab, node, daemon, config), lab=lab, role=role(node, daemon),
                           namespace=namespace, log_path=_log(lab, node, daemon), caps=DAEMON_CAPS, in_node=True)
    except ApplyError as exc:
        raise ApplyError(exc.message, element=element, permanent=exc.permanent) from exc


def _vtysh(lab: str, node: str, *args: str, element: str, timeout: float = 30.0,
           max_output: int = 1 << 20) -> subprocess.CompletedProcess[bytes]:
    """vtysh of the instance, run to completion in the lab's cell with no capability."""
    try:
        return procs.run_in_cell(vtysh_argv(lab, node, *args), lab=lab, role=f"frr-vtysh:{node}",
                                 namespace=naming.node_namespace(lab, node), timeout=timeout, caps=VTYSH_CAPS,
                                 max_output=max_output)
    except ApplyError as exc:
        raise ApplyError(exc.message, element=element, permanent=exc.permanent) from exc


def ask(lab: str, node: str, commands: list[str], *, timeout: float = 30.0, max_output: int = 1 << 20) -> bytes:
    """The instance's vtysh answer (stdout, at most `max_output` bytes) to `commands`, fixed command strings of
    the caller's (each one `-c` argument; never user text)."""
    args = [a for c in commands for a in ("-c", c)]
    return _vtysh(lab, node, *args, element=f"nodes.{node}.routing", timeout=timeout, max_output=max_output).stdout


def show(lab: str, node: str, *commands: str) -> str:
    """The answer of the instance's vtysh to `commands` (show commands), for people and tests."""
    return ask(lab, node, list(commands)).decode(errors="replace")


def start(lab: str, topology: Topology, node: str, namespace: str) -> None:
    """(Re)start the router's FRR instance with the document's configuration: zebra, then the protocol daemons,
    then the configuration applied through vtysh. Daemons already running are stopped first."""
    element = f"nodes.{node}.routing"
    for proc in running(lab, node).values():
        procs.stop(proc)
    digest = _prepare(lab, topology, node)
    (conf_dir(lab, node) / "applied").unlink(missing_ok=True)
    routing: Routing = topology.nodes[node].routing
    # generated from validated data only, the configuration is read by the daemons as they start (a vtysh -f
    # after them cost 0.4 s per router, the largest part of a ring's deploy). Not with a frr_config (vtysh says
    # which line FRR refused) nor BGP: bgpd 8.4 that read its configuration itself never started its peers (they
    # stayed Active; it waits for the end of a configuration that only vtysh announces)
    config = None if routing.frr_config or routing.bgp else conf_dir(lab, node) / "frr.conf"
    for daemon in routing.daemons():
        pid = _spawn(lab, node, daemon, namespace, element, config)
        _wait_socket(lab, node, daemon, pid, element)
    if config is None:
        _apply(lab, node, element)
    _write(conf_dir(lab, node) / "applied", digest + "\n")


def _apply(lab: str, node: str, element: str) -> None:
    done = _vtysh(lab, node, "-f", str(conf_dir(lab, node) / "frr.conf"), element=element)
    if done.returncode != 0:
        out = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()
        raise ApplyError("FRR refused the configuration: " + " | ".join(out[-6:]), element=element)


def reload(lab: str, topology: Topology, node: str, namespace: str) -> None:
    """Apply a changed routing: with frr-reload.py (only the difference): daemons newly needed start first,
    those no longer needed stop after."""
    element = f"nodes.{node}.routing"
    wanted = topology.nodes[node].routing.daemons()
    have = running(lab, node)
    if "zebra" not in have:
        return start(lab, topology, node, namespace)
    routing: Routing = topology.nodes[node].routing
    cdir = conf_dir(lab, node)
    _write(cdir / "frr.conf", render_config(topology, node))  # not _prepare: the sockets stay
    _write(cdir / "daemons", render_daemons(routing))
    digest = config_hash(topology, node)
    for daemon in wanted:
        if daemon not in have:
            _wait_socket(lab, node, daemon, _spawn(lab, node, daemon, namespace, element), element)
    # the instance's own directories, not --pathspace: frr-reload.py then sees the file it is given as the
    # instance's frr.conf and does not `write` the running configuration over it; its temp files go to the lab's
    argv = [*VTYSH_PREFIX, "/usr/bin/python3", "-I", str(FRR_RELOAD), "--reload", "--stdout", "--bindir", str(Path(VTYSH).parent),
            "--confdir", str(conf_dir(lab, node)), "--vty_socket", str(sock_dir(lab, node)),
            "--rundir", str(sock_dir(lab, node)), str(conf_dir(lab, node) / "frr.conf")]
    try:
        done = procs.run_in_cell(argv, lab=lab, role=f"frr-reload:{node}", namespace=namespace, timeout=60,
                                 caps=VTYSH_CAPS)
    except ApplyError as exc:
        raise ApplyError(exc.message, element=element, permanent=exc.permanent) from exc
    if done.returncode != 0:
        out = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()
        raise ApplyError("frr-reload.py failed: " + " | ".join(out[-6:]), element=element)
    for daemon, proc in have.items():
        if daemon not in wanted:
            procs.stop(proc)
    _write(conf_dir(lab, node) / "applied", digest + "\n")


def stop(lab: str, node: str) -> None:
    """Stop the instance (idempotent) and remove its files."""
    for proc in running(lab, node).values():
        procs.stop(proc)
    for d in (conf_dir(lab, node), sock_dir(lab, node)):
        if d.is_dir():
            shutil.rmtree(d)
    for daemon in ALL_DAEMONS:
        _log(lab, node, daemon).unlink(missing_ok=True)


def applied_hashes(lab: str) -> dict[str, str]:
    """node -> hash of the configuration last applied to its running instance (see config_hash)."""
    out: dict[str, str] = {}
    base = conf_base(lab)
    if not base.is_dir():
        return out
    for entry in base.iterdir():
        parsed = naming.parse_namespace(entry.name)
        if not parsed or parsed[0] != lab or not parsed[1] or parsed[1] == naming.TUNNEL_NODE:
            continue
        try:
            out[parsed[1]] = (entry / "applied").read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            continue
    return out


def needs_frr(node: Node) -> bool:
    return node.routing is not None
