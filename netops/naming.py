"""Names and tags of everything a lab creates: the isolation contract of DESIGN.md in one place.

- A lab id is 1-8 characters `[a-z0-9]`. Namespaces are `tl-<lab>` (the fabric) and `tl-<lab>-<node>`; since lab ids
  have no dash, a namespace name maps back to exactly one (lab, node).
- Names are not proof of ownership. Every object is also tagged: links (and `lo` inside each namespace) carry an
  ifalias `topolab:<lab>:...`, nft tables a comment, processes the environment variable `TOPOLAB_LAB=<lab>`.
  Destroy and observe trust only objects carrying both the name and the tag.
- Interface names in the fabric and in the root namespace are derived by hashing, so they always fit in 15 bytes
  and never collide with user names.
- Simulated hosts on one kernel (issue 13: a lab across hosts, tested on one machine): an agent with the host tag
  `TOPOLAB_HOST_TAG=<tag>` (1-4 characters `[a-z0-9]`; unset on a real host: the names above, unchanged) names
  everything under its own prefixes, so two agents deploying their parts of one lab never collide, and neither
  finds, inventories, cleans or destroys the other's objects: namespaces `tl<tag>-<lab>[-<node>]`, tags
  `topolab-<tag>:<lab>:...`, the root nft table `topolab_<tag>_<lab>`, root links hashed with the tag, run dirs
  under `<run root>/host-<tag>/`, cell (uid range) keys `<tag>.<lab>` and the cgroup tree `topolab-<tag>`.
  Each prefix is followed by a character no tag has (`-`, `:`, `_`, `.`), so no host's names start with another's.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path

from .errors import TopologyError

LAB_ID_RE = re.compile(r"^[a-z0-9]{1,8}\Z")
NODE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}\Z")
# A lab host's name (an agent's TOPOLAB_HOST, a node's `host:`): a DNS label, lower case; it becomes a Celery
# queue name (agent.<host>) and part of event and log lines, never an argv or a file name on its own.
HOST_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
HOST_NAME_RULE = "1-63 lower-case letters, digits and '-', not starting or ending with '-'"
IFNAME_MAX = 15
NS_PREFIX = "tl-"
TAG_PREFIX = "topolab"
PROCESS_TAG_ENV = "TOPOLAB_LAB"
PROCESS_ROLE_ENV = "TOPOLAB_ROLE"
HOST_TAG_ENV = "TOPOLAB_HOST_TAG"
HOST_TAG_RE = re.compile(r"^[a-z0-9]{1,4}\Z")


def host_tag() -> str:
    """This agent's host tag ('' on a real host): read at every call, refused unless 1-4 characters a-z 0-9."""
    tag = os.environ.get(HOST_TAG_ENV, "")
    if tag and not HOST_TAG_RE.match(tag):
        raise TopologyError(f"{HOST_TAG_ENV}={tag!r} must be 1-4 characters a-z and 0-9")
    return tag


def ns_prefix() -> str:
    """`tl-`, or `tl<tag>-` for a simulated host."""
    return f"tl{host_tag()}-"


def tag_prefix() -> str:
    """`topolab`, or `topolab-<tag>` for a simulated host."""
    tag = host_tag()
    return f"{TAG_PREFIX}-{tag}" if tag else TAG_PREFIX


def lab_key(lab: str) -> str:
    """The lab's key in what simulated hosts share on one machine (cell slots, the host ip_forward record): the lab
    id, or `<tag>.<lab>`."""
    tag = host_tag()
    return f"{tag}.{check_lab_id(lab)}" if tag else check_lab_id(lab)


def lab_of_key(key: str) -> str | None:
    """The lab id of a key of this host's (lab_key), None for another host's or a foreign one."""
    tag = host_tag()
    if tag:
        head, dot, lab = key.partition(".")
        return lab if dot and head == tag and LAB_ID_RE.match(lab) else None
    return key if LAB_ID_RE.match(key) else None


def check_lab_id(lab: str) -> str:
    if not isinstance(lab, str) or not LAB_ID_RE.match(lab):
        raise TopologyError(f"lab id {lab!r} must be 1-8 characters a-z and 0-9")
    return lab


def check_host_name(name: object) -> str:
    """`name` if it is a valid lab host name (HOST_NAME_RE), else ValueError saying why."""
    if not isinstance(name, str) or not HOST_NAME_RE.match(name):
        raise ValueError(f"host name {name!r} must be {HOST_NAME_RULE}")
    return name


def derive_lab_id(name: str) -> str:
    """A stable lab id from a document name: up to 4 readable characters plus 4 of a hash (`seed-lab` -> `seed1a2b`)."""
    readable = re.sub(r"[^a-z0-9]", "", name.lower())[:4]
    return readable + _hash(name, 4)


def _hash(text: str, length: int) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return base64.b32encode(digest).decode().lower()[:length]


def fabric_namespace(lab: str) -> str:
    """The lab's fabric namespace: its bridges, the host ends of its links, its taps and VM processes."""
    return f"{ns_prefix()}{lab}"


def node_namespace(lab: str, node: str) -> str:
    return f"{ns_prefix()}{lab}-{node}"


#: the node part of a lab's tunnel namespace (netops.vxlan): no document node is called so (names start with a letter)
TUNNEL_NODE = "_tunnels"


def tunnel_namespace(lab: str) -> str:
    """The namespace of a lab's VXLAN tunnels across hosts: the host's (not the lab's cell), so no lab process can
    reach the devices that send to the underlay (netops.vxlan)."""
    return f"{ns_prefix()}{lab}-{TUNNEL_NODE}"


def parse_namespace(name: str) -> tuple[str, str | None] | None:
    """(lab, node) for a Topolab-shaped namespace name (node None for the fabric), else None."""
    prefix = ns_prefix()
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix):]
    lab, sep, node = rest.partition("-")
    if not LAB_ID_RE.match(lab):
        return None
    if not sep:
        return lab, None
    return (lab, node) if NODE_NAME_RE.match(node) or node == TUNNEL_NODE else None


def fabric_ifname(node: str, interface: str) -> str:
    """Fabric-side name of the veth whose other end is `node:interface` (or of a VM's tap)."""
    return "v" + _hash(f"{node}:{interface}", 12)


# A Linux bridge takes at most 1023 ports (BR_MAX_PORTS). A switch with more links than SWITCH_PORTS is built as a
# tree: a root bridge (bridge_ifname) with one trunk per leaf bridge, each leaf holding SWITCH_PORTS ports at most.
SWITCH_PORTS = 1000


def switch_leaf_ifname(switch: str, leaf: int) -> str:
    """Name of leaf bridge `leaf` of a switch built as a tree, in the fabric namespace."""
    return "b" + _hash(f"leaf:{switch}:{leaf}", 12)


def switch_trunk_ifnames(switch: str, leaf: int) -> tuple[str, str]:
    """(leaf end, root end) of the veth that joins leaf bridge `leaf` to its switch's root bridge."""
    return "t" + _hash(f"trunk:{switch}:{leaf}:leaf", 12), "t" + _hash(f"trunk:{switch}:{leaf}:root", 12)


def bridge_ifname(node: str) -> str:
    """Name of a bridge node's (or an external's) bridge inside the fabric namespace."""
    return "b" + _hash(f"bridge:{node}", 12)


def link_bridge_ifname(link_key: str) -> str:
    """A bridge made for one point-to-point link that needs one (e.g. a VM wired straight to a router)."""
    return "p" + _hash(f"link:{link_key}", 12)


def root_ifname(lab: str, node: str) -> str:
    """Root-namespace end of an external node's door: `tl<lab><4 hash chars>`, at most 14 bytes (a simulated host's
    tag is hashed with the node)."""
    tag = host_tag()
    return f"tl{lab}{_hash(f'{tag}:{node}' if tag else node, 4)}"


def root_peer_ifname(lab: str, node: str) -> str:
    """Fabric-namespace end of an external node's door."""
    return "x" + _hash(f"external:{lab}:{node}", 12)


def tag(lab: str, *parts: str) -> str:
    """The ifalias/comment that marks an object as this lab's: `topolab:<lab>:<parts...>`."""
    return ":".join((tag_prefix(), lab, *parts))


def parse_tag(text: str | None) -> tuple[str, list[str]] | None:
    if not text:
        return None
    fields = text.split(":")
    if len(fields) < 2 or fields[0] != tag_prefix() or not LAB_ID_RE.match(fields[1]):
        return None
    return fields[1], fields[2:]


def nft_table(lab: str) -> str:
    """Name of the lab's nft table in the root namespace (host masquerade for `external` with `nat: true`)."""
    tag = host_tag()
    return f"topolab_{tag}_{lab}" if tag else f"topolab_{lab}"


def run_root() -> Path:
    """The machine's run root (what simulated hosts share: the host ip_forward record)."""
    return Path(os.environ.get("TOPOLAB_RUN_DIR", "/run/topolab"))


def labs_root() -> Path:
    """Where this host's lab run dirs are: the run root, or `<run root>/host-<tag>` for a simulated host."""
    tag = host_tag()
    return run_root() / f"host-{tag}" if tag else run_root()


def run_dir(lab: str) -> Path:
    """Per-lab directory for pid files, dnsmasq leases, VM overlays and console/QMP sockets."""
    return labs_root() / check_lab_id(lab)
