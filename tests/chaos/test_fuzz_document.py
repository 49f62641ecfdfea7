"""Fuzz of the document parser and checker (issue 17, part 4), with hypothesis.

Any text or mapping given to `netops.topology.parse_document` gives a `Topology` or a `TopologyError`, nothing
else, within a second; and what passes, planned against an empty inventory (`netops.plan`), yields only argv
elements, paths and config lines that carry no hostile value: no value where an option could be read, nothing
outside the lab's run directory, no line break inside a generated line (dnsmasq, udhcpc, FRR, nft, tc, qemu,
the delay relay).

Three sources of documents: arbitrary YAML-ish text (tokens YAML gives meaning to, spliced), arbitrary values
(the examples with one subtree replaced by a value of any type, or random keys added), and documents built to
be valid, with names and values drawn from what the checker accepts plus hostile neighbours of it.
"""
from __future__ import annotations

import ipaddress
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, note
from hypothesis import strategies as st

from netops import dhcpclient, dnsmasq, frr, linkcond, naming, nft, qemu
from netops.cell import cell_dir
from netops.errors import ApplyError, TopologyError
from netops.images import Image
from netops.inventory import Inventory
from netops.model import Topology
from netops.plan import plan
from netops.topology import dump_yaml, parse_document

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = [yaml.safe_load((REPO / "examples" / n).read_text()) for n in ("seed-lab.yaml", "nat-lab.yaml",
                                                                           "two-hosts.yaml")]
ROUTED = {
    "version": 1, "name": "routed",
    "nodes": {
        "r1": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.12.1/30"}, "eth1": {"address": "2001:db8::1/64"}},
               "routing": {"loopback": "10.255.0.1/32",
                           "ospf": {"areas": {0: {"interfaces": ["eth0", "lo"]}}, "cost": {"eth0": 10}, "hello": 1,
                                    "dead": 4, "redistribute": ["connected"]},
                           "ospf6": {"router_id": "10.255.0.1", "areas": {"0.0.0.0": {"interfaces": ["eth1"]}}},
                           "bgp": {"asn": 65001, "neighbors": [{"address": "10.0.12.2", "asn": 65002,
                                                                "description": "to r2"}],
                                   "networks": ["10.1.0.0/24"], "redistribute": ["ospf"]},
                           "frr_config": "! raw\nip prefix-list p seq 5 permit 10.0.0.0/8\n"}},
        "r2": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.12.2/30"}, "eth1": {"address": "2001:db8::2/64"}},
               "routing": {"bgp": {"asn": 65002, "neighbors": [{"interface": "eth1", "asn": "external"}]}}},
    },
    "links": [{"endpoints": ["r1:eth0", "r2:eth0"], "loss": "1%", "rate": "10mbit", "delay": "5ms"},
              {"endpoints": ["r1:eth1", "r2:eth1"]}],
}
EXAMPLES.append(ROUTED)
SECOND = 1.0


def parse(source: Any) -> Topology | None:
    """parse_document within a second of this thread's CPU time (not wall time: on a 2-core machine with the
    kernel tests running beside this stream, a 1.09 s wall time was seen for a small document in `make chaos`);
    None for a TopologyError; any other exception fails the example."""
    start = time.thread_time()
    try:
        return parse_document(source)
    except TopologyError as exc:
        assert exc.problems, "a TopologyError without problems"
        for p in exc.problems:
            assert isinstance(p.path, str) and isinstance(p.message, str) and p.message
        return None
    finally:
        elapsed = time.thread_time() - start
        assert elapsed < SECOND, f"parse_document took {elapsed:.2f} s"


# ------------------------------------------------------------------------------------------- hostile values

HOSTILE_TEXT = st.sampled_from([
    "", " ", "-", "--", "-rf", "--help", "-oProxyCommand=x", "../../etc/passwd", "/etc/shadow", "a/b", "a\nb",
    "a\rb", "a\x00b", "\t", "\u202e", "\u00b2", "\u0663", "\ufeff", "\ud800", "e\u0301", "ＡＢＣ", "eth0\n", "eth0 ",
    "lo", ".", "..", "default", "dhcp", "0", "1e999", "nan", "inf", "-1", "10.0.1.1/24\nx", "10.0.1.1/24",
    "10.0.1.300/24", "::/0", "0.0.0.0/0", "%s%n", "${HOME}", "$(id)", "`id`", "'", '"', "\\", "{", "[", "*", "&a",
    "!!python/object:os.system", "<<", "~", "null", "true", "on", "yes", "2024-01-01", "52:54:00:aa:bb:cc",
    "x" * 65, "x" * 300, "a" * 10_000, "10.0.1.100-10.0.1.150", "1%", "20ms", "10mbit", "1G", "65001", "²",
])
SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.sampled_from([0, -1, 1 << 31, 1 << 32, 1 << 63, 1 << 64, 10**30, -(10**30), 10**4000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40), HOSTILE_TEXT,
)
KEYS = st.one_of(st.text(max_size=12), HOSTILE_TEXT, st.integers(), st.booleans(), st.none(),
                 st.floats(allow_nan=False))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(KEYS, inner, max_size=4)), max_leaves=20)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: _replace(doc[head], rest, new)}
    out = list(doc)
    out[head] = _replace(doc[head], rest, new)
    return out


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """An example document with one to three subtrees replaced by arbitrary values, or keys added beside them."""
    doc: Any = draw(st.sampled_from(EXAMPLES))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        target = doc
        for p in path:
            target = target[p]
        if isinstance(target, dict) and draw(st.booleans()):
            doc = _replace(doc, path, {**target, draw(KEYS): draw(VALUES)})
        else:
            doc = _replace(doc, path, draw(VALUES))
    return doc


def to_text(value: Any) -> str | None:
    """YAML text of a value (None when YAML cannot write it, e.g. a lone surrogate)."""
    try:
        return yaml.safe_dump(value, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, UnicodeEncodeError, ValueError):
        return None


YAML_TOKENS = st.sampled_from([
    "version: 1\n", "name: lab\n", "nodes:\n", "links:\n", "  r1:\n", "    kind: router\n", "    interfaces:\n",
    "      eth0: {address: 10.0.1.1/24}\n", "- endpoints: [r1:eth0, br]\n", "&a ", "*a ", "<<: *a\n", "? [a, b]\n",
    ": x\n", "!!binary aGk=\n", "!!python/object/apply:os.system [id]\n", "!!set {a, b}\n", "!!omap [a: 1]\n",
    "%YAML 1.1\n", "%TAG ! tag:x,2000:\n", "---\n", "...\n", "\t", "\x00", "\x85", "\u2028", "\ufeff", "'", '"',
    "{", "}", "[", "]", ",", "#", "|\n", ">-\n", "- ", ": ", "    ", "\n", "1" * 5000, "0x1F", "0o17", "1_000",
    ".inf", ".nan", "~", "null", "yes", "2001-12-14t21:59:43.10-05:00", "=", "? ", "!", "!local ", "@", "`",
])


@st.composite
def yamlish(draw: st.DrawFn) -> str:
    return "".join(draw(st.lists(st.one_of(YAML_TOKENS, st.text(max_size=8)), max_size=40)))


def nested(depth: int, open_: str, close: str) -> str:
    return "version: 1\nname: deep\nnodes: " + open_ * depth + close * depth + "\n"


# ------------------------------------------------------------------------------------------- part 1: never raises


@pytest.mark.parametrize("text", [
    nested(100_000, "[", "]"), nested(100_000, "{a: ", "}"), nested(5_000, "- ", ""),
    "version: 1\nname: " + "9" * 100_000 + "\n", "version: " + "9" * 5000 + "\n", "version: 1e99999\n",
    "a: &a [" + ",".join(["*a"] * 50) + "]\n",
    "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n",
    "version: 1\nname: x\nnodes: {" + ", ".join(f"n{i}: {{kind: bridge}}" for i in range(3000)) + "}\n",
    "version: 1\nname: x\nnodes:\n  r1: {kind: router, routing: {ospf: {areas: {\u00b2: {interfaces: [eth0]}}}},"
    " interfaces: {eth0: {address: 10.0.0.1/24}}}\n",
    "\x00", "\ufeff", "\ud800", b"\xff\xfe", b"version: 1\nname: \xc3\x28\n", "x" * (3 << 20),
])
def test_pathological_documents(text, chaos_figures):
    """Deep nesting, huge numbers, alias bombs, thousands of nodes, invalid UTF-8, an oversize document."""
    parse(text)
    chaos_figures.add("fuzz: document (named cases)", faults=1, recovered=1)


@given(text=yamlish())
def test_yamlish_text(text, chaos_figures):
    note(repr(text))
    chaos_figures.add("fuzz: document (yaml text)", faults=1)
    parse(text)
    chaos_figures.add("fuzz: document (yaml text)", recovered=1)


@given(value=VALUES)
def test_arbitrary_values(value, chaos_figures):
    """Any value, as a mapping given directly (the API's path) and as YAML text."""
    chaos_figures.add("fuzz: document (any value)", faults=1)
    parse(value if isinstance(value, dict) else {"version": 1, "name": "x", "nodes": value})
    text = to_text(value)
    if text is not None:
        parse(text)
    chaos_figures.add("fuzz: document (any value)", recovered=1)


@given(doc=mutated())
def test_mutated_examples(doc, chaos_figures):
    """The examples with parts replaced by values of every type; what still parses is also planned."""
    note(repr(doc))
    chaos_figures.add("fuzz: document (mutated)", faults=1)
    topology = parse(doc)
    text = to_text(doc)
    if text is not None:
        parse(text)
    if topology is not None:
        check_plan(topology, chaos_figures)
    chaos_figures.add("fuzz: document (mutated)", recovered=1)


# ------------------------------------------------------------------------------------------- valid documents


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any] = HOSTILE_TEXT) -> st.SearchStrategy[Any]:
    """`good` seven times in eight, else `bad`: documents that mostly pass, with a hostile value here and there."""
    return st.sampled_from([False] * 7 + [True]).flatmap(lambda hostile: bad if hostile else good)


NAMES = mostly(st.from_regex(naming.NODE_NAME_RE, fullmatch=True))
IFNAMES = mostly(st.one_of(st.from_regex(r"[A-Za-z0-9_.-]{1,15}", fullmatch=True), st.sampled_from(["eth0", "eth1"])))
V4 = st.ip_addresses(v=4, network="10.0.0.0/8")
V6 = st.ip_addresses(v=6, network="2001:db8::/32")


@st.composite
def interface_address(draw: st.DrawFn) -> Any:
    ip = draw(st.one_of(V4, V6))
    prefix = draw(st.integers(8, 30)) if ip.version == 4 else draw(st.integers(48, 126))
    net = ipaddress.ip_interface(f"{ip}/{prefix}").network
    if ip in (net.network_address, net.broadcast_address):
        ip = net.network_address + 1
    text = f"{ip}/{prefix}"
    return draw(mostly(st.one_of(st.just(text), st.just("dhcp"), st.lists(st.just(text), min_size=1, max_size=2))))


@st.composite
def interface(draw: st.DrawFn, router: bool) -> Any:
    data: dict[str, Any] = {}
    if draw(st.booleans()):
        data["address"] = draw(interface_address())
    if draw(st.integers(0, 4)) == 0:
        data["mtu"] = draw(mostly(st.integers(60, 9100), SCALARS))
    if draw(st.integers(0, 4)) == 0:
        data["mac"] = draw(mostly(st.from_regex(r"[0-9a-f][02468ace](:[0-9a-f]{2}){5}", fullmatch=True)))
    address = data.get("address")
    if router and isinstance(address, str) and "." in address and "/" in address and draw(st.booleans()):
        try:
            net = ipaddress.ip_interface(address).network
            hosts = [str(net.network_address + i) for i in (net.num_addresses // 2, net.num_addresses // 2 + 3)]
        except ValueError:
            hosts = ["10.0.1.100", "10.0.1.150"]
        server: dict[str, Any] = {"range": draw(mostly(st.just("-".join(hosts))))}
        if draw(st.booleans()):
            server["lease_time"] = draw(mostly(st.sampled_from(["1h", "600", "2m", 3600]), SCALARS))
        if draw(st.booleans()):
            server["dns"] = draw(st.lists(mostly(V4.map(str)), max_size=2))
        data["dhcp_server"] = server
    return data or None


@st.composite
def routing(draw: st.DrawFn, ifaces: list[str]) -> Any:
    names = mostly(st.sampled_from(ifaces)) if ifaces else HOSTILE_TEXT
    r: dict[str, Any] = {}
    if draw(st.booleans()):
        r["loopback"] = f"{draw(st.ip_addresses(v=4, network='10.255.0.0/16'))}/32"
    if draw(st.booleans()):
        r["ospf"] = {"areas": {draw(mostly(st.integers(0, 5), st.sampled_from(["0.0.0.1", "\u00b2", "\u0663", "-1", "x"]))): {"interfaces": draw(st.lists(names, max_size=2))}}}
        if draw(st.booleans()):
            r["ospf"]["router_id"] = draw(mostly(V4.map(str)))
        if draw(st.booleans()):
            r["ospf"]["cost"] = {draw(names): draw(mostly(st.integers(0, 70000), SCALARS))}
    if draw(st.booleans()):
        neighbor = draw(st.one_of(st.fixed_dictionaries({"address": mostly(V4.map(str))}),
                                  st.fixed_dictionaries({"interface": names})))
        neighbor["asn"] = draw(mostly(st.one_of(st.integers(1, 70000), st.sampled_from(["internal", "external"])), SCALARS))
        if draw(st.booleans()):
            neighbor["description"] = draw(mostly(st.text(max_size=30)))
        if draw(st.booleans()):
            neighbor["multihop"] = draw(st.integers(0, 300))
        if draw(st.booleans()):
            neighbor["update_source"] = draw(st.one_of(names, st.just("lo")))
        r["bgp"] = {"asn": draw(mostly(st.integers(1, 4294967295), SCALARS)), "neighbors": [neighbor],
                    "networks": draw(st.lists(st.sampled_from(["10.1.0.0/24", "2001:db8:1::/48", "10.1.0.1/24"]),
                                              max_size=2))}
        if not draw(st.booleans()):
            r["bgp"]["router_id"] = draw(mostly(V4.map(str)))
    if draw(st.booleans()):
        r["frr_config"] = draw(st.one_of(st.text(max_size=60), HOSTILE_TEXT,
                                         st.sampled_from(["ip route 10.9.0.0/16 Null0\n", "end\n", "do write\n",
                                                          "! end\n", "log file /etc/x\n", "line vty\n exec\n"])))
    return r


@st.composite
def valid_ish(draw: st.DrawFn) -> dict[str, Any]:
    """A document whose shape is right, with names and values drawn near the edges of what is allowed."""
    nodes: dict[str, Any] = {}
    links: list[dict[str, Any]] = []
    segments: list[str] = []
    ends: list[str] = []
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    kinds = draw(st.lists(st.sampled_from(["host", "router", "bridge", "external", "vm"]), min_size=len(names),
                          max_size=len(names)))
    if "bridge" not in kinds:
        names.append("sw" + "x" * len(names))
        kinds.append("bridge")
    for name, kind in zip(names, kinds, strict=True):
        node: dict[str, Any] = {"kind": kind}
        if kind in ("host", "router", "vm"):
            ifaces = draw(st.lists(IFNAMES, min_size=1, max_size=3, unique=True))
            node["interfaces"] = {i: draw(interface(kind == "router")) for i in ifaces}
            ends += [f"{name}:{i}" for i in ifaces]
            if draw(st.integers(0, 3)) == 0:
                node["routes"] = [{"to": draw(st.sampled_from(["default", "10.9.0.0/16", "2001:db8:9::/48"])),
                                   "via": draw(mostly(st.one_of(V4.map(str), V6.map(str))))}]
            if kind == "router" and draw(st.integers(0, 3)) == 0:
                node["nat"] = {"masquerade": draw(st.lists(mostly(st.sampled_from(ifaces)),
                                                           min_size=1, max_size=2))}
            if kind == "router" and draw(st.integers(0, 2)) == 0:
                node["routing"] = draw(routing(ifaces))
            if kind == "vm":
                node["image"] = draw(mostly(st.just("tiny")))
                if draw(st.booleans()):
                    node["memory"] = draw(st.integers(0, 70000))
            if draw(st.integers(0, 4)) == 0:
                node["limits"] = draw(st.dictionaries(st.sampled_from(["memory", "pids", "cpu"]),
                                                      mostly(st.sampled_from(["64M", "1G", "0.5", 0.5, 64]), SCALARS),
                                                      max_size=3))
        elif kind == "external":
            if draw(st.booleans()):
                node["bridge"] = draw(IFNAMES)
            else:
                node["nat"] = True
                node["address"] = draw(st.one_of(st.just("203.0.113.1/24"), interface_address()))
            segments.append(name)
        else:
            segments.append(name)
        if draw(st.integers(0, 5)) == 0:
            node["description"] = draw(mostly(st.text(max_size=50)))
        nodes[name] = node
    free = list(ends)
    while free:
        end = free.pop(0)
        if free and (not segments or draw(st.booleans())):
            other = free.pop(draw(st.integers(0, len(free) - 1)))
        else:
            other = draw(st.sampled_from(segments)) if segments else end
        link: dict[str, Any] = {"endpoints": [end, other]}
        if draw(st.integers(0, 3)) == 0:
            link.update(draw(st.fixed_dictionaries({}, optional={
                "delay": mostly(st.sampled_from(["10ms", "0.5s", "500us"]), st.sampled_from(["61s", "1e3ms", "-1ms"])),
                "loss": mostly(st.sampled_from(["1%", "100%", 5, 0.5]), SCALARS),
                "rate": mostly(st.sampled_from(["8kbit", "1gbit", "100gbit", "10mbit"]),
                               st.sampled_from(["101gbit", "7999bit", "1.5bit"]))})))
            if "delay" in link and draw(st.booleans()):
                link["jitter"] = draw(st.sampled_from(["1ms", "0ms", "2s"]))
        links.append(link)
    doc = {"version": 1, "name": draw(mostly(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True))),
           "nodes": nodes, "links": links}
    if draw(st.integers(0, 5)) == 0:
        doc["description"] = draw(mostly(st.text(max_size=50)))
    return doc


@given(doc=valid_ish())
def test_valid_documents_plan_safely(doc, chaos_figures):
    """Documents near the edges: what passes plans into argv, paths and config lines that are safe."""
    note(json.dumps(doc, default=str))
    chaos_figures.add("fuzz: document (valid-ish, planned)", faults=1)
    topology = parse(doc)
    if topology is not None:
        check_plan(topology, chaos_figures)
    text = to_text(doc)
    if text is not None:
        parse(text)
    chaos_figures.add("fuzz: document (valid-ish, planned)", recovered=1)


# ------------------------------------------------------------------------------------------- the plan's output


@pytest.fixture(scope="module", autouse=True)
def _run_root(tmp_path_factory):
    """A private TOPOLAB_RUN_DIR and a kernel image library with one direct-boot image, `tiny`."""
    root = tmp_path_factory.mktemp("run")
    lib = tmp_path_factory.mktemp("images")
    (lib / "tiny").mkdir()
    for f in ("vmlinuz", "initrd"):
        (lib / "tiny" / f).write_bytes(b"x")
    global IMAGE
    IMAGE = Image(name="tiny", format="kernel", directory=(lib / "tiny").resolve(), library=lib.resolve(),
                  kernel="vmlinuz", initrd="initrd", append="console=ttyS0", memory=64)
    old = os.environ.get("TOPOLAB_RUN_DIR")
    os.environ["TOPOLAB_RUN_DIR"] = str(root)
    yield
    if old is None:
        os.environ.pop("TOPOLAB_RUN_DIR", None)
    else:
        os.environ["TOPOLAB_RUN_DIR"] = old


IMAGE: Image


def inside(path: str | Path, base: Path) -> None:
    real = os.path.normpath(str(path))
    assert os.path.isabs(real) and os.path.commonpath([real, str(base)]) == str(base), f"{path} is outside {base}"
    assert real == str(path), f"{path} is not a normal path"


def no_break(text: str, what: str) -> None:
    bad = [c for c in text if c in "\n\r\x00\x0b\x0c\x85\u2028\u2029" or (not c.isprintable() and c != "\t")]
    assert not bad, f"{what}: {text!r} holds {bad!r}"


CONSTANT_OPTIONS = {"--inh-caps=-all", "--log-facility=-"}  # fixed elements of the programs' argv (no document value in them)


def check_argv(argv: list[str], value_flags: tuple[str, ...] = ()) -> None:
    """No element with a line break or NUL; no value (after a flag that takes one, or after `=`) starting with '-'."""
    for i, arg in enumerate(argv):
        assert isinstance(arg, str), argv
        no_break(arg, "argv element")
        if i and argv[i - 1] in value_flags:
            assert not arg.startswith("-"), f"value {arg!r} of {argv[i - 1]} reads as an option: {argv}"
        if arg.startswith("--") and "=" in arg and arg not in CONSTANT_OPTIONS:
            assert not arg.split("=", 1)[1].startswith("-"), f"option value reads as an option: {arg!r}"


def check_lines(text: str, what: str, first_words: set[str] | None = None) -> None:
    for line in text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"):
        no_break(line, what)
        if first_words is not None and line.split():
            assert line.split()[0] in first_words, f"{what}: unexpected line {line!r}"
        assert line.count('"') % 2 == 0, f"{what}: unbalanced quotes in {line!r}"


FRR_WORDS = {"frr", "hostname", "!", "interface", "exit", "ip", "ipv6", "router", "ospf", "ospf6", "passive-interface",
             "timers", "redistribute", "bgp", "no", "neighbor", "address-family", "network", "exit-address-family"}


def check_plan(topology: Topology, figures: Any) -> None:
    figures.add("fuzz: plan of valid documents", faults=1)
    _check_plan(topology)
    figures.add("fuzz: plan of valid documents", recovered=1)


def _check_plan(topology: Topology) -> None:
    # the normalised document (what the API stores and serves) reads back as itself, as a mapping and as YAML
    again = parse_document(topology.document)
    assert again.document == topology.document
    assert parse_document(dump_yaml(topology)).document == topology.document
    lab = naming.derive_lab_id(topology.name)
    run, cell = naming.run_dir(lab), cell_dir(lab)
    steps = plan(topology, lab, Inventory(lab))
    steps_relay = plan(topology, lab, Inventory(lab), delay_relay=True)
    for step in steps + steps_relay:
        for value in _strings(step.params):
            no_break(value, f"{step.action} parameter")
        if "namespace" in step.params and step.params["namespace"] is not None:
            assert naming.parse_namespace(step.params["namespace"]) is not None, step
        node = topology.nodes.get(step.node) if step.node else None
        p = step.params
        if step.action == "dhcp-server.start":
            assert node is not None
            argv = dnsmasq.argv(lab, node.name, node.interfaces[p["ifname"]])
            check_argv(argv)
            for key in ("--dhcp-leasefile=", "--pid-file="):
                inside(next(a for a in argv if a.startswith(key)).split("=", 1)[1], cell)
            inside(dnsmasq.files(lab, node.name, p["ifname"])["log"], cell)
        elif step.action == "dhcp-client.start":
            assert node is not None
            check_argv(dhcpclient.argv(lab, node.name, p["ifname"], run / "udhcpc.script"), ("-i", "-s", "-x"))
        elif step.action in ("frr.start", "frr.reload"):
            assert node is not None and node.routing is not None
            text = frr.render_config(topology, node.name)
            raw = node.routing.frr_config or ""
            generated = text[: len(text) - len(raw)] if raw else text
            assert text.endswith(raw)
            check_lines(generated, "frr.conf", FRR_WORDS)
            check_lines(raw, "frr_config")
            check_lines(frr.render_daemons(node.routing), "daemons")
            check_lines(frr.vtysh_conf(node.name), "vtysh.conf", {"service", "hostname", "username"})
            for daemon in node.routing.daemons():
                argv = frr.daemon_argv(lab, node.name, daemon)
                check_argv(argv, ("-f", "--vty_socket", "-z", "-i", "-P", "--log", "--log-level"))
                for flag in ("--vty_socket", "-z", "-i"):
                    inside(argv[argv.index(flag) + 1], run)
            inside(frr.conf_dir(lab, node.name), run)
            check_argv(frr.vtysh_argv(lab, node.name, "-c", "show version"), ("--vty_socket", "--config_dir", "-N"))
        elif step.action == "nat.router":
            assert node is not None
            check_lines(nft.router_nat_ruleset(lab, node.name, p["masquerade"]), "nft ruleset")
        elif step.action == "nat.external":
            assert node is not None and node.address is not None
            check_lines(nft.external_nat_commands(lab, node.name, p["root"], node.address), "nft commands")
        elif step.action == "linkcond.apply":
            link = topology.links[p["link"]]
            for q in linkcond.qdiscs(p["ifname"], link.conditions, link.path, netem=True):
                if q.kind == "tbf":
                    check_argv(linkcond.tc_argv(p["ifname"], q), ("dev", "handle", "parent"))
            if link.conditions.loss_pct is not None:
                check_lines(linkcond.loss_ruleset(lab, link, p["ifname"], link.conditions.loss_pct), "nft loss")
        elif step.action == "relay.start":
            for key in ("a", "b"):
                assert not p[key].startswith("-"), p
            assert math.isfinite(p["delay_ms"]) and math.isfinite(p["jitter_ms"])
        elif step.action == "vm.start":
            assert node is not None
            try:
                argv = qemu.vm_argv(lab, node, IMAGE, p["taps"], accel="tcg", run_dir=cell)
            except ApplyError as exc:  # refusals of the apply step are fine, never a crash
                assert exc.element.startswith(f"nodes.{node.name}"), exc
                continue
            check_argv(argv, ("-name", "-m", "-smp", "-pidfile", "-kernel", "-initrd", "-append"))
            inside(argv[argv.index("-pidfile") + 1], cell)
            words = argv[argv.index("-append") + 1].split(" ")
            assert all(words), words  # one value per word: none empty, none holding a space of its own


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(k) + _strings(v)]
    if isinstance(value, (list, tuple, set)):
        return [s for v in value for s in _strings(v)]
    return []


def test_the_output_checks_catch_hostile_output():
    """The checks above fail on what they look for (a fuzz whose checks cannot fail finds nothing)."""
    for bad in (lambda: check_argv(["udhcpc", "-i", "-x"], ("-i",)), lambda: check_argv(["d", "--pid-file=-x"]),
                lambda: check_argv(["d", "a\nb"]), lambda: check_lines("neighbor x description a\rb\n", "frr"),
                lambda: check_lines("end\n", "frr", FRR_WORDS), lambda: check_lines('oifname "a" b"\n', "nft"),
                lambda: inside("/run/x/../../etc/passwd", Path("/run/x")), lambda: inside("/etc", Path("/run/x"))):
        with pytest.raises(AssertionError):
            bad()
