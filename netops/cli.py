"""`python -m netops`: validate, up, down, status, check, exec, clean, image ..."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

from . import images, naming
from .errors import ApplyError, LabBusyError, NetopsError, TopologyError
from .events import Event
from .model import Topology
from .span import Span


def _print_event(event: Event) -> None:
    if event.type == "run.step":
        who = f"{event.node}: " if event.node else ""
        prefix = f"[{event.step}/{event.total}] " if event.total else (f"[{event.step}] " if event.step else "")
        print(f"{prefix}{who}{event.message}", flush=True)
    elif event.type == "node.state" and event.state in ("running", "failed"):
        print(f"  {event.node} {event.state}" + (f": {event.message}" if event.message else ""), flush=True)
    elif event.type == "run.warning":
        print(f"warning: {event.message}", file=sys.stderr, flush=True)


def _load(path: str) -> Topology:
    from .topology import load_file
    return load_file(path)


def _lab_of(args: argparse.Namespace) -> tuple[str, Topology | None]:
    """(lab id, topology or None) from `FILE` and/or `--lab`."""
    topology = _load(args.file) if getattr(args, "file", None) else None
    if args.lab:
        return naming.check_lab_id(args.lab), topology
    if topology is None:
        raise TopologyError("give a topology FILE or --lab ID")
    return naming.derive_lab_id(topology.name), topology


def _span(args: argparse.Namespace) -> Span | None:
    """`--span FILE --host NAME`: this host's part of a lab across hosts (a JSON object as the web tier's Run.span:
    placement, underlays, vnis, mtu); the underlay namespace is TOPOLAB_UNDERLAY_NETNS."""
    if not getattr(args, "span", None):
        return None
    if not args.host:
        raise TopologyError("--span needs --host NAME (this host's name in the span)")
    with open(args.span) as f:
        data = json.load(f)
    try:
        return Span.from_json(data, args.host)
    except (ValueError, TypeError, AttributeError) as exc:
        raise TopologyError(f"--span {args.span}: {exc}") from exc


def cmd_validate(args: argparse.Namespace) -> int:
    topology = _load(args.file)
    print(f"{args.file}: valid ({len(topology.nodes)} nodes, {len(topology.links)} links; "
          f"lab id {naming.derive_lab_id(topology.name)})")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from . import engine
    lab, topology = _lab_of(args)
    if topology is None:  # `up` takes FILE (required by its parser)
        raise TopologyError("give a topology FILE")
    result = engine.up(topology, lab, on_event=_print_event, span=_span(args))
    print(f"lab {result.lab} is up ({len(result.steps)} steps, {result.seconds:.2f} s)"
          if result.steps else f"lab {result.lab} is up (nothing to change)")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from . import engine
    lab, _ = _lab_of(args)
    removed = engine.down(lab, on_event=_print_event, span=_span(args))
    print(f"lab {lab} is down ({len(removed)} objects removed)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from . import engine
    lab, topology = _lab_of(args)
    st = engine.status(lab, topology).as_dict()
    if args.json:
        print(json.dumps(st, indent=2, sort_keys=True))
        return 0
    print(f"lab {lab}")
    for name, node in st["nodes"].items():
        print(f"  {name:16} {node['kind']:8} {node['state']}")
        for iname, info in node.get("interfaces", {}).items():
            print(f"    {iname:14} {'up' if info['up'] else 'down':4} {info['mac'] or '-':17} "
                  + " ".join(info["addresses"]))
        for lease in node.get("leases", []) or []:
            print(f"    lease {lease['ip']} {lease['mac']} {lease['hostname'] or ''}")
    for line in st["drift"]:
        print(f"  drift: {line}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Run the document's checks against the deployed lab: exit 0 when all pass, 1 when some fail, 2 when they
    cannot run (an invalid document, no checks, the lab not deployed), as netlab's `validate`."""
    from . import cell, labcheck_run, labchecks
    from .kernel import netns
    lab, topology = _lab_of(args)
    assert topology is not None  # FILE is required by its parser
    if not topology.checks:
        raise TopologyError(f"{args.file} has no checks (a top-level checks: list)")
    if cell.get(lab) is None or not netns.exists(naming.fabric_namespace(lab)):
        raise TopologyError(f"lab {lab} is not deployed on this host")

    def show(event: Event) -> None:
        if not args.json:
            mark = "PASS" if event.type == "check.passed" else "FAIL"
            print(f"[{event.step}/{event.total}] {mark} {event.data['id']}: {event.data['title']}: {event.message}",
                  flush=True)

    result = labchecks.score(labcheck_run.run_checks(lab, topology, on_event=show))
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(f"lab {lab}: {result['passed']} of {len(result['checks'])} checks passed, "
              f"{result['earned']} of {result['possible']} points ({result['percent']}%)")
    return 0 if result["failed"] == 0 else 1


def cmd_exec(args: argparse.Namespace) -> int:
    from . import engine
    lab, _ = _lab_of(args)
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    if not cmd:
        raise TopologyError("exec needs a command after --")
    argv = engine.exec_argv(lab, args.node) + cmd
    return subprocess.run(argv).returncode


def cmd_node(args: argparse.Namespace) -> int:
    """node stop|start|restart|isolate|reconnect (FILE | --lab ID) NODE: one action on a running lab."""
    from . import actions
    lab, _ = _lab_of(args)
    result = actions.run(lab, {"action": args.action, "node": args.node}, on_event=_print_event)
    print(f"{args.node}: {args.action} done ({len(result['steps'])} steps)")
    return 0


def cmd_link(args: argparse.Namespace) -> int:
    """link down|up|set (FILE | --lab ID) A B [--delay D --jitter J --loss L --rate R]."""
    from . import actions
    lab, _ = _lab_of(args)
    action: dict[str, object] = {"action": {"down": "link-down", "up": "link-up", "set": "link-conditions"}[args.action],
                    "link": [args.a, args.b]}
    if args.action == "set":
        action["conditions"] = {k: getattr(args, k) for k in actions.CONDITION_KEYS if getattr(args, k)}
    result = actions.run(lab, action, on_event=_print_event)
    print(f"link {args.a} - {args.b}: {args.action} done ({len(result['steps'])} steps)")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from . import engine
    removed = engine.clean(on_event=_print_event)
    for item in removed:
        print(f"removed {item}")
    print(f"clean: {len(removed)} objects removed")
    return 0


def _span_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--span", metavar="FILE", help="a lab across hosts: this host's part (JSON span, see netops.span)")
    p.add_argument("--host", help="this host's name in the span")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m netops", description="Run Topolab labs on this host.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="check a topology file")
    p.add_argument("file")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("up", help="deploy a lab, or apply changes to a running one")
    p.add_argument("file")
    p.add_argument("--lab", help="lab id (default: derived from the document name)")
    _span_args(p)
    p.set_defaults(func=cmd_up)
    for name, func, helptext in (("down", cmd_down, "destroy a lab"), ("status", cmd_status, "show a lab")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("file", nargs="?")
        p.add_argument("--lab")
        if name == "status":
            p.add_argument("--json", action="store_true")
        else:
            _span_args(p)
        p.set_defaults(func=func)
    from .actions import CONDITION_KEYS, NODE_ACTIONS
    p = sub.add_parser("node", help="stop, start, restart, isolate or reconnect a node of a running lab")
    p.add_argument("action", choices=NODE_ACTIONS)
    p.add_argument("file", nargs="?")
    p.add_argument("node")
    p.add_argument("--lab")
    p.set_defaults(func=cmd_node)
    p = sub.add_parser("link", help="set a link of a running lab down or up, or change its conditions live")
    p.add_argument("action", choices=("down", "up", "set"))
    p.add_argument("file", nargs="?")
    p.add_argument("a", help="one endpoint (h1:eth0, sw)")
    p.add_argument("b", help="the other endpoint")
    p.add_argument("--lab")
    for key in CONDITION_KEYS:
        p.add_argument(f"--{key}", help=f"set: the link's {key} (as in the document; leave out to remove it)")
    p.set_defaults(func=cmd_link)
    p = sub.add_parser("check", help="run a document's checks against its deployed lab (exit 0 pass, 1 fail, 2 cannot run)")
    p.add_argument("file")
    p.add_argument("--lab", help="lab id (default: derived from the document name)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("exec", help="run a command inside a node: exec (FILE | --lab ID) NODE -- CMD...")
    p.set_defaults(func=cmd_exec)
    p = sub.add_parser("clean", help="destroy every Topolab object on this host")
    p.set_defaults(func=cmd_clean)
    images.add_cli(sub)
    return parser


def _split_exec(args: argparse.Namespace, rest: list[str]) -> None:
    """exec's grammar is positional-heavy: [FILE] [--lab ID] NODE -- CMD... (parsed by hand, not argparse)"""
    cmd: list[str] = []
    if "--" in rest:
        i = rest.index("--")
        rest, cmd = rest[:i], rest[i + 1:]
    args.lab = None
    if "--lab" in rest:
        i = rest.index("--lab")
        if i + 1 >= len(rest):
            raise TopologyError("--lab needs a lab id")
        args.lab = rest[i + 1]
        del rest[i:i + 2]
    if len(rest) == 2:
        args.file, args.node = rest
    elif len(rest) == 1 and args.lab:
        args.file, args.node = None, rest[0]
    else:
        raise TopologyError("usage: exec (FILE | --lab ID) NODE -- CMD...")
    args.cmd = cmd


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["exec"]:
        args = argparse.Namespace(command="exec", func=cmd_exec)
    else:
        args = build_parser().parse_args(argv)
    try:
        if args.command == "exec":
            _split_exec(args, argv[1:])
        return int(args.func(args))
    except TopologyError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except LabBusyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (ApplyError, NetopsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
