"""The rtnetlink codec: pyroute2 0.9.7's message classes, with templates for speed. No socket here.

Every message is built and parsed by pyroute2's classes (`ifinfmsg`, `ifaddrmsg`, `rtmsg`, `tcmsg`, `nlmsgerr`),
their NLA maps and tc plugins, which encode and decode without a socket. What this module adds to them:

- Templates. pyroute2's encoder is generic Python: on the CI VM, idle, about 150 us for a veth create and 40 us
  for an address, where the whole 500-host deploy has about 1.3 ms per host for everything (2500 such messages
  would add a third to it). So a message of a given shape (class, type, flags, which attributes in which nesting, the values that
  decide how pyroute2 encodes the rest, and the byte length of each string) is encoded by pyroute2 once; where each
  value lies in those bytes, and in which format, is read off the encoded pyroute2 objects. Later messages of that
  shape are a copy of those bytes with their own values written at those offsets (3-7 us).
  `encode(..., template=False)` goes straight through pyroute2; the unit tests check both give the same bytes.
- `decode(..., keep=)`: a copy of a message with only the attributes the caller reads, for pyroute2 to decode (see
  there why).
- `decode_error`: the errno and extended-ack message of an NLMSG_ERROR, which pyroute2's `nlmsgerr` reads only once
  the echoed request is cut out.
"""
from __future__ import annotations

import ipaddress
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink import (
    NLA_F_NESTED,
    NLA_F_NET_BYTEORDER,
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    nla,
    nla_slot,
    nlmsg,
    nlmsg_atoms,
    nlmsgerr,
)
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

HEADER = struct.Struct("=" + "".join(fmt for _name, fmt in nlmsg.header))  # length, type, flags, seq, pid
SEQ_OFFSET = struct.calcsize("=" + "".join(fmt for _name, fmt in nlmsg.header[:3]))
assert nlmsg.header[3][0] == "sequence_number"
_NLA = struct.Struct("=" + "".join(fmt for _name, fmt in nla.header))  # length, type
_NLA_TYPE = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER)
_ERROR = struct.Struct("=" + nlmsgerr.fields[0][1])
_MESSAGES = MarshalRtnl.msg_map  # rtnetlink message type -> pyroute2 class

# values that decide how pyroute2 encodes the rest of the message (the NLA classes of the data that follows, the
# address family of IP attributes): part of a template's shape, never written into a template
_STRUCTURAL = frozenset({"family", "IFLA_INFO_KIND", "TCA_KIND"})

Writer = Callable[[bytearray, int, Any], None]
IP = ipaddress.IPv4Address | ipaddress.IPv6Address  # IP attribute values: pyroute2 gets them as text


def _write_str(buf: bytearray, offset: int, value: str) -> None:
    raw = value.encode()
    buf[offset:offset + len(raw)] = raw  # the NUL after it is the template's (same length by shape)


def _write_mac(buf: bytearray, offset: int, value: str) -> None:
    buf[offset:offset + 6] = bytes.fromhex(value.replace(":", ""))


def _write_ip(buf: bytearray, offset: int, value: IP) -> None:
    raw = value.packed
    buf[offset:offset + len(raw)] = raw


def _writer(cell: nla) -> Writer:
    """How to write a new value into an NLA pyroute2 encoded, by its pyroute2 class."""
    if isinstance(cell, nlmsg_atoms.asciiz):
        return _write_str
    if isinstance(cell, nlmsg_atoms.l2addr):
        return _write_mac
    if isinstance(cell, (nlmsg_atoms.ipaddr, nlmsg_atoms.target)):
        return _write_ip
    fields = list(cell.fields)
    if len(fields) == 1 and len(fields[0][1]) == 1 and fields[0][1] in "bBhHiIqQ":
        return struct.Struct(fields[0][1]).pack_into
    raise TypeError(f"no template writer for {type(cell).__name__}")


def _field_offsets(cls: type) -> dict[str, tuple[int, str]]:
    """Offset (after the netlink header) and format of each fixed field, laid out as pyroute2's ft_encode does:
    one after the other."""
    out, offset = {}, HEADER.size
    for name, fmt in cls.fields:
        out[name] = (offset, fmt)
        offset += struct.calcsize(fmt)
    return out


def _shape(attrs: list, values: list) -> tuple:
    """The shape of an attribute list (names, nesting, structural values, string lengths); its other values are
    appended to `values` in order."""
    out = []
    for name, value in attrs:
        if isinstance(value, dict):
            if set(value) - {"attrs"}:
                raise TypeError(f"{name}: only nested attribute lists can be templated")
            out.append((name, "nested", _shape(value["attrs"], values)))
        elif name in _STRUCTURAL:
            out.append((name, "const", value))
        else:
            values.append(value)
            if isinstance(value, str):
                out.append((name, len(value.encode())))
            else:  # an int, or an IP address (its width is its version's, whatever its text)
                out.append((name, value.version if isinstance(value, IP) else type(value).__name__))
    return tuple(out)


@dataclass
class _Template:
    data: bytes
    slots: list[tuple[int, Writer]]  # in the order `_shape` lists the values

    def fill(self, values: list) -> bytearray:
        buf = bytearray(self.data)
        for (offset, write), value in zip(self.slots, values, strict=False):
            write(buf, offset, value)
        return buf


def _as_pyroute2(attrs: list) -> list:
    """`attrs` as pyroute2 takes them: IP addresses as text."""
    return [(name, {"attrs": _as_pyroute2(value["attrs"])} if isinstance(value, dict) and "attrs" in value
             else str(value) if isinstance(value, IP) else value) for name, value in attrs]


def _pyroute2_message(cls: type, mtype: int, flags: int, fields: dict, attrs: list) -> nlmsg:
    msg = cls()
    for name, value in fields.items():
        msg[name] = value
    msg["attrs"] = _as_pyroute2(attrs)
    msg["header"]["type"] = mtype
    msg["header"]["flags"] = flags
    msg.encode()
    return msg


def _slots(cell: nlmsg, attrs: list, out: list[tuple[int, Writer]]) -> None:
    """Where pyroute2 put each non-structural value of `attrs`: walk the encoded NLA objects alongside."""
    for (name, value), slot in zip(attrs, cell["attrs"], strict=False):
        if not isinstance(slot, nla_slot):  # pyroute2 skips names its NLA map does not have
            raise KeyError(f"{name} is not an attribute of {type(cell).__name__}")
        encoded = slot.cell[1]
        if isinstance(value, dict):
            _slots(encoded, value["attrs"], out)
        elif name not in _STRUCTURAL:
            out.append((encoded.offset + _NLA.size, _writer(encoded)))


def _build_template(cls: type, mtype: int, flags: int, fields: dict, attrs: list) -> _Template:
    msg = _pyroute2_message(cls, mtype, flags, fields, attrs)
    offsets = _field_offsets(cls)
    slots: list[tuple[int, Writer]] = []
    for name in fields:
        if name not in _STRUCTURAL:
            offset, fmt = offsets[name]
            slots.append((offset, struct.Struct(fmt).pack_into))
    _slots(msg, attrs, slots)
    return _Template(bytes(msg.data), slots)


_templates: dict[tuple, _Template] = {}
_building = threading.Lock()  # namespace workers build requests on several threads; pyroute2 compiles its NLA maps


def encode(cls: type, mtype: int, flags: int, fields: dict, attrs: list, *, template: bool = True) -> bytearray:
    """One netlink message (header included, sequence number 0) encoded by pyroute2's `cls`.

    `fields` are the message's fixed fields, `attrs` its NLAs as pyroute2 takes them ((name, value) pairs, nested
    ones as {"attrs": [...]}), but IP addresses as `ipaddress` objects. With `template`, the bytes come from the
    template of the message's shape (encoded by pyroute2 the first time it is seen) with these values written in."""
    if not template:
        return _pyroute2_message(cls, mtype, flags, fields, attrs).data
    values = [v for k, v in fields.items() if k not in _STRUCTURAL]
    key = (cls, mtype, flags, tuple((k, v if k in _STRUCTURAL else None) for k, v in fields.items()),
           _shape(attrs, values))
    tpl = _templates.get(key)
    if tpl is None:
        with _building:
            tpl = _templates.get(key) or _build_template(cls, mtype, flags, fields, attrs)
            _templates[key] = tpl
    return tpl.fill(values)



def nla_numbers(cls: type) -> dict[str, int]:
    """Attribute name -> type number, from the pyroute2 class's NLA map (a position, or given first)."""
    return {entry[-2]: (entry[0] if len(entry) == 3 else i) for i, entry in enumerate(cls.nla_map)}


Keep = dict[int, "Keep | None"]  # attribute type -> None (the whole attribute) or what to keep inside it


def keep_only(cls: type, names: dict[str, dict | None]) -> Keep:
    """A `decode(keep=)` filter from attribute names: {"IFLA_IFNAME": None, "IFLA_LINKINFO": {"IFLA_INFO_KIND":
    None}} (nested names by the NLA class pyroute2 decodes that attribute with)."""
    numbers = nla_numbers(cls)
    out: Keep = {}
    for name, inner in names.items():
        out[numbers[name]] = None if inner is None else keep_only(getattr(cls, dict(_map(cls))[name]), inner)
    return out


def _map(cls: type) -> list[tuple[str, str]]:
    """(name, NLA class name) of a pyroute2 NLA map."""
    return [(entry[-2], entry[-1]) for entry in cls.nla_map]


def _filtered(data: bytes, pos: int, end: int, keep: Keep) -> bytearray:
    """The attributes in data[pos:end] whose type is in `keep`, nested ones filtered in turn."""
    out = bytearray()
    while pos + _NLA.size <= end:
        nla_len, nla_type = _NLA.unpack_from(data, pos)
        if nla_len < _NLA.size:
            break
        padded = (nla_len + 3) & ~3
        if (nla_type & _NLA_TYPE) in keep:
            inner = keep[nla_type & _NLA_TYPE]
            if inner is None:
                out += data[pos:pos + padded]
            else:
                body = _filtered(data, pos + _NLA.size, pos + nla_len, inner)
                out += _NLA.pack(_NLA.size + len(body), nla_type) + body
        pos += padded
    return out


def decode(data: bytes, offset: int, keep: Keep | None = None) -> nlmsg:
    """The message at `offset` (its netlink header first), decoded by the pyroute2 class of its type; with `keep`,
    a copy holding only the attributes in it (see `keep_only()`).

    Why `keep`: pyroute2 makes a Python object per attribute as it decodes (each decoded only when read), and
    objects that refer to each other, which only the cycle collector frees. A link reply has about 45 attributes,
    its IFLA_LINKINFO up to 40 more for a bridge port, and Topolab reads seven; decoding all of them made looking up
    a link about 5 times dearer (about 240 us against 45 on the CI VM) and a 500-host deploy collect 160 000
    objects."""
    mtype = HEADER.unpack_from(data, offset)[1]
    cls = _MESSAGES.get(mtype, nlmsg)
    if keep is not None:
        length = HEADER.unpack_from(data, offset)[0]
        start = offset + HEADER.size + sum(struct.calcsize(fmt) for _name, fmt in cls.fields)
        copy = bytearray(data[offset:start]) + _filtered(data, start, offset + length, keep)
        struct.pack_into("=I", copy, 0, len(copy))
        data, offset = copy, 0
    msg = cls(data, offset=offset)
    msg.decode()
    return msg


def attr_values(msg: nlmsg, names: frozenset[str]) -> dict[str, Any]:
    """The decoded values of the attributes in `names` (the last of repeated ones), in one pass over the message's
    attribute slots. pyroute2's get_attr scans them all for each name and first maps the name through its
    prefix rules (name2nla), which made it the dearest part of reading a link (17 us a call, more than decoding)."""
    return {slot.name: slot.value for slot in msg["attrs"] if slot.name in names}



def decode_error(data: bytes, offset: int) -> tuple[int, str]:
    """(errno, the kernel's extended ack message or "") of an NLMSG_ERROR message at `offset`.

    The attributes follow the request's header echoed after the error code (or the whole request without
    NETLINK_CAP_ACK), which pyroute2's `nlmsgerr` does not skip: it decodes a copy without the echo."""
    length, _type, flags, _seq, _pid = HEADER.unpack_from(data, offset)
    err = -_ERROR.unpack_from(data, offset + HEADER.size)[0]
    if not err or not flags & NLM_F_ACK_TLVS:
        return err, ""
    start = offset + HEADER.size + _ERROR.size
    echoed = HEADER.size if flags & NLM_F_CAPPED else HEADER.unpack_from(data, start)[0]
    tlvs = data[start + echoed: offset + length]
    head = bytearray(data[offset: start])
    struct.pack_into("=I", head, 0, len(head) + len(tlvs))
    msg = nlmsgerr(bytes(head) + tlvs)
    msg.decode()
    return err, msg.get_attr("NLMSGERR_ATTR_MSG") or ""
