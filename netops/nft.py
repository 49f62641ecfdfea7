"""nftables rulesets as text, built by pure functions from validated values and loaded with `nft -f -`.

Every table carries `comment "topolab:<lab>:..."` (naming.tag). Inside node namespaces the table is `topolab`
(router NAT) and `topolab_lc` (link conditions, netops.linkcond); in the root namespace the lab's table is
`naming.nft_table(lab)`. Tables are found again by their comment, never by name alone: a table without our tag is
never modified or deleted, whatever it is called.

nft 1.0.6 leaves table comments out of its JSON output, so `list_tables()` reads them from `nft -a -t list
ruleset` text (the `comment` line that directly follows each `table ... { # handle N` line).

Why a program and not netlink (rtnetlink goes through pyroute2's codec in netops.kernel.netlink): pyroute2 0.9.7
has nfnetlink message classes for nftables, but its ready-made rule expressions are only masquerade, verdicts and
IPv4 address matches; everything else these rulesets use (interface-name matches, `numgen`, `ct state`, nat
statements, rule and table comments) would be raw expression attributes assembled here, a re-implementation of
what nft compiles from text. So the text is the interface.
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass

from . import naming
from .errors import ApplyError
from .kernel.host import HOST, Kernel
from .model import IPInterface

NODE_TABLE = "topolab"
FAMILY = "inet"
EXTERNAL_TAG = "external"  # second part of the tag of an external's chains in the lab's root table
_TABLE_LINE = re.compile(r"^table (\w+) (\S+) \{(?: # handle (\d+))?$")
_COMMENT_LINE = re.compile(r'^\tcomment "([^"]*)"$')
_CHAIN_LINE = re.compile(r"^\tchain (\w+) \{(?: # handle (\d+))?$")
_CHAIN_COMMENT_LINE = re.compile(r'^\t\tcomment "([^"]*)"$')


@dataclass(frozen=True)
class NftTable:
    family: str
    name: str
    handle: int | None
    comment: str | None

    @property
    def lab(self) -> str | None:
        tag = naming.parse_tag(self.comment)
        return tag[0] if tag else None


# ---------------------------------------------------------------------------------------------- checks


def check_ifname(name: str, element: str = "") -> str:
    """An interface name safe to place inside an nft double-quoted string."""
    if (not isinstance(name, str) or not name or len(name.encode()) > naming.IFNAME_MAX
            or not re.fullmatch(r"[A-Za-z0-9_.@-]+", name)):
        raise ApplyError(f"interface name {name!r} is not valid here", element=element)
    return name


def check_comment(text: str) -> str:
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,128}", text):
        raise ApplyError(f"nft comment {text!r} is not valid")
    return text


def chain_suffix(text: str) -> str:
    """nft 1.0.6 allows neither quoted chain names nor dashes: a stable hash of the node name instead."""
    return hashlib.sha256(text.encode()).hexdigest()[:10]


# ---------------------------------------------------------------------------------------------- builders


def replace_table(family: str, name: str, comment: str, body: list[str]) -> str:
    """A transaction that atomically replaces table `family name` with `body` (lines inside the table)."""
    check_comment(comment)
    lines = [
        f"table {family} {name}",  # create if missing, so the delete below cannot fail
        f"delete table {family} {name}",
        f"table {family} {name} {{",
        f'\tcomment "{comment}"',
        *(f"\t{line}" for line in body),
        "}",
    ]
    return "\n".join(lines) + "\n"


def router_nat_ruleset(lab: str, node: str, masquerade: list[str] | tuple[str, ...]) -> str:
    """Table `inet topolab` for a router namespace: masquerade everything leaving each listed interface."""
    naming.check_lab_id(lab)
    element = f"nodes.{node}.nat.masquerade"
    rules = [f'oifname "{check_ifname(i, element)}" masquerade' for i in masquerade]
    body = [
        "chain postrouting {",
        "\ttype nat hook postrouting priority srcnat; policy accept;",
        *(f"\t{r}" for r in rules),
        "}",
    ]
    return replace_table(FAMILY, NODE_TABLE, naming.tag(lab, node, "nat"), body)


def external_nat_commands(lab: str, node: str, root_ifname: str, address: IPInterface) -> str:
    """Chains for one `external` node with `nat: true` in the lab's root table, replacing that node's chains only
    (a lab may have several such externals sharing `naming.nft_table(lab)`).

    `address` is the fabric end of the transit link (netops.uplinks): the only source accepted from the door.
    Traffic from it leaving by any other interface is masqueraded and its forwarding (and its replies') accepted
    in our own chain; anything else arriving on the door is dropped (a lab could rewrite its own fabric's rules, not
    these), and nothing from the door reaches the host itself but replies. Other firewalls' chains on the forward
    hook still get their say.
    """
    naming.check_lab_id(lab)
    element = f"nodes.{node}"
    check_ifname(root_ifname, element)
    if not isinstance(address, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        raise ApplyError(f"{address!r} is not an interface address", element=f"{element}.address")
    table = naming.nft_table(lab)
    ipfam = "ip" if address.version == 4 else "ip6"
    source = address.ip
    suffix = chain_suffix(node)
    post, fwd, inp = f"post_{suffix}", f"fwd_{suffix}", f"in_{suffix}"
    comment = check_comment(naming.tag(lab, EXTERNAL_TAG, node))
    lines = [
        f'add table {FAMILY} {table} {{ comment "{check_comment(naming.tag(lab))}" ; }}',
        f'add chain {FAMILY} {table} {post} {{ type nat hook postrouting priority srcnat; policy accept; '
        f'comment "{comment}" ; }}',
        f'add chain {FAMILY} {table} {fwd} {{ type filter hook forward priority filter; policy accept; '
        f'comment "{comment}" ; }}',
        f'add chain {FAMILY} {table} {inp} {{ type filter hook input priority filter; policy accept; '
        f'comment "{comment}" ; }}',
        f"flush chain {FAMILY} {table} {post}",
        f"flush chain {FAMILY} {table} {fwd}",
        f"flush chain {FAMILY} {table} {inp}",
        f'add rule {FAMILY} {table} {post} {ipfam} saddr {source} oifname != "{root_ifname}" masquerade',
        f'add rule {FAMILY} {table} {fwd} iifname "{root_ifname}" {ipfam} saddr {source} accept',
        f'add rule {FAMILY} {table} {fwd} iifname "{root_ifname}" drop',
        f'add rule {FAMILY} {table} {fwd} oifname "{root_ifname}" ct state established,related accept',
        f'add rule {FAMILY} {table} {inp} iifname "{root_ifname}" ct state established,related accept',
        f'add rule {FAMILY} {table} {inp} iifname "{root_ifname}" drop',
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- listing


def parse_tables(text: str) -> list[NftTable]:
    """Tables and their comments from `nft -a -t list ruleset` (or `list tables`) text."""
    tables: list[NftTable] = []
    pending: tuple[str, str, int | None] | None = None
    for line in text.splitlines():
        m = _TABLE_LINE.match(line)
        if m:
            if pending:
                tables.append(NftTable(*pending, None))
            pending = (m.group(1), m.group(2), int(m.group(3)) if m.group(3) else None)
            continue
        if pending:
            c = _COMMENT_LINE.match(line)
            tables.append(NftTable(*pending, c.group(1) if c else None))
            pending = None
    if pending:
        tables.append(NftTable(*pending, None))
    return tables


def parse_chains(text: str) -> dict[str, tuple[int | None, str | None]]:
    """Chains of one table from `nft -a list table ...` text: name -> (handle, comment)."""
    chains: dict[str, tuple[int | None, str | None]] = {}
    pending: tuple[str, int | None] | None = None
    for line in text.splitlines():
        m = _CHAIN_LINE.match(line)
        if m:
            pending = (m.group(1), int(m.group(2)) if m.group(2) else None)
            chains[pending[0]] = (pending[1], None)
            continue
        if pending:
            c = _CHAIN_COMMENT_LINE.match(line)
            if c:
                chains[pending[0]] = (pending[1], c.group(1))
            pending = None
    return chains


def list_tables(namespace: str | None = None, *, kernel: Kernel = HOST) -> list[NftTable]:
    return parse_tables(kernel.run(["nft", "-a", "-t", "list", "ruleset"], namespace=namespace).stdout.decode())


def list_lab_tables(lab: str | None = None, namespace: str | None = None, *, kernel: Kernel = HOST) -> list[NftTable]:
    """Tables (root namespace by default) whose comment is a Topolab tag, of `lab` or of any lab."""
    return [t for t in list_tables(namespace, kernel=kernel) if t.lab is not None and (lab is None or t.lab == lab)]


def load(ruleset: str, namespace: str | None, element: str, *, kernel: Kernel = HOST) -> None:
    """`nft -f -` with `ruleset` (built by the pure functions of this module or of its callers) in `namespace`."""
    kernel.run(["nft", "-f", "-"], namespace=namespace, input=ruleset.encode(), element=element)


def _refuse_foreign(namespace: str | None, family: str, name: str, lab: str, element: str, kernel: Kernel) -> None:
    for t in list_tables(namespace, kernel=kernel):
        if (t.family, t.name) == (family, name) and t.lab != lab:
            where = f"namespace {namespace}" if namespace else "the root namespace"
            raise ApplyError(f"nft table {family} {name} in {where} is not Topolab's (comment {t.comment!r}); "
                             "not touching it", element=element)


# ---------------------------------------------------------------------------------------------- apply


def apply_router_nat(lab: str, node: str, namespace: str, masquerade: list[str] | tuple[str, ...], *,
                     kernel: Kernel = HOST) -> None:
    """Masquerade on `masquerade` interfaces of a router namespace; idempotent; empty list removes the table."""
    element = f"nodes.{node}.nat"
    _refuse_foreign(namespace, FAMILY, NODE_TABLE, lab, element, kernel)
    if not masquerade:
        delete_node_table(lab, node, namespace, kernel=kernel)
        return
    load(router_nat_ruleset(lab, node, masquerade), namespace, element, kernel=kernel)


def delete_node_table(lab: str, node: str, namespace: str, name: str = NODE_TABLE, *, kernel: Kernel = HOST) -> None:
    for t in list_tables(namespace, kernel=kernel):
        if (t.family, t.name) == (FAMILY, name) and t.lab == lab:
            load(f"delete table {t.family} handle {t.handle}\n", namespace, f"nodes.{node}", kernel=kernel)


def apply_external_nat(lab: str, node: str, root_ifname: str, address: IPInterface, *,
                       kernel: Kernel = HOST) -> None:
    """Host masquerade for an `external` node with `nat: true`, in the lab's table of the root namespace."""
    element = f"nodes.{node}"
    _refuse_foreign(None, FAMILY, naming.nft_table(lab), lab, element, kernel)
    load(external_nat_commands(lab, node, root_ifname, address), None, element, kernel=kernel)


def _lab_table_text(lab: str, kernel: Kernel) -> tuple[NftTable, str] | None:
    """The lab's root table (only if it carries the lab's tag) and its `nft -a list table` text; None if absent."""
    naming.check_lab_id(lab)
    done = kernel.run(["nft", "-a", "list", "table", FAMILY, naming.nft_table(lab)], check=False)
    if done.returncode != 0:
        return None
    text = done.stdout.decode()
    tables = parse_tables(text)
    if len(tables) != 1 or tables[0].lab != lab:
        return None
    return tables[0], text


def external_nat_chains(lab: str, *, kernel: Kernel = HOST) -> dict[str, list[str]]:
    """Externals of `lab` with chains in the lab's root table (one `nft` run): node -> its chain names."""
    found = _lab_table_text(lab, kernel)
    out: dict[str, list[str]] = {}
    if found is None:
        return out
    for chain, (_, comment) in parse_chains(found[1]).items():
        tag = naming.parse_tag(comment)
        if tag and tag[0] == lab and len(tag[1]) == 2 and tag[1][0] == EXTERNAL_TAG:
            out.setdefault(tag[1][1], []).append(chain)
    return out


def delete_external_nat(lab: str, node: str, *, kernel: Kernel = HOST) -> bool:
    """Delete the chains of external `node` from the lab's root table (by handle, only those tagged for it); the
    table too once no chain is left in it. Idempotent. Returns whether the lab's table is gone."""
    element = f"nodes.{node}"
    found = _lab_table_text(lab, kernel)
    if found is None:
        return True
    table, text = found
    chains = parse_chains(text)
    mine = [(name, handle) for name, (handle, comment) in chains.items()
            if comment == naming.tag(lab, EXTERNAL_TAG, node) and handle is not None]
    if mine:
        load("".join(f"delete chain {FAMILY} {table.name} handle {h}\n" for _, h in mine), None, element,
             kernel=kernel)
    if len(mine) == len(chains) and table.handle is not None:
        load(f"delete table {FAMILY} handle {table.handle}\n", None, element, kernel=kernel)
        return True
    return False


def delete_lab_tables(lab: str, *, kernel: Kernel = HOST) -> list[str]:
    """Delete every root-namespace table tagged for `lab` (by handle, exactly those); returns `family name`s."""
    naming.check_lab_id(lab)
    deleted = []
    for t in list_lab_tables(lab, kernel=kernel):
        load(f"delete table {t.family} handle {t.handle}\n", None, f"lab {lab}", kernel=kernel)
        deleted.append(f"{t.family} {t.name}")
    return deleted
