"""Web-tier logic of consoles and captures: who may open what, the audit log, and asking the agent.

The web tier never touches the kernel: it checks names against the lab's document and asks the stream agent
(webapp.agent) over the channel layer, which checks them again against what is deployed.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from netops import capture as netcapture
from netops import kinds
from netops.errors import Problem, TopologyError
from netops.naming import NODE_NAME_RE
from webapp.labs import permissions
from webapp.labs.models import Lab
from webapp.labs.permissions import visible_labs

from . import conf
from .models import Capture, ConsoleSession

IFNAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}")  # fullmatch only
AGENT_TIMEOUT = 15.0


class AgentUnavailable(Exception):
    """The stream agent did not answer in time (not running, or overloaded)."""


def can_console(user, lab: Lab) -> bool:
    return permissions.can_console(user, lab)


def lab_for(user, pk: int) -> Lab | None:
    """The lab if `user` may see it at all (else None: answer 404)."""
    return visible_labs(user).filter(pk=pk).first()


#: what a console runs: a shell (or a VM's serial line), or FRR's vtysh of a node with routing: (netops.frr)
CONSOLE_PROGRAMS = ("shell", "vtysh")


def console_target(user, lab: Lab, node: str, program: str = "shell") -> tuple[str, str]:
    """(kind of node, "") when `user` may open a console (`program`: shell or vtysh) on `node` of `lab`; else
    ("", reason). vtysh only on a node whose document has routing: (the agent checks that FRR runs)."""
    if not can_console(user, lab):
        return "", "forbidden"
    if not isinstance(node, str) or not NODE_NAME_RE.fullmatch(node):
        return "", "not-found"
    entry = ((lab.document or {}).get("nodes") or {}).get(node, {})
    kind = entry.get("kind")
    if not kinds.known(kind) or kinds.get(kind).console is None or program not in CONSOLE_PROGRAMS:
        return "", "not-found"
    if program == "vtysh" and ("routing" not in kinds.get(kind).keys or not entry.get("routing")):
        return "", "not-found"
    return kind, ""


def sessions_of(lab: Lab):
    """The lab's audit log, newest first: its consoles and captures (with the capture of each, when there is one)."""
    return ConsoleSession.objects.filter(lab=lab).select_related("capture")


def open_consoles(user) -> int:
    return ConsoleSession.objects.filter(user=user, kind=ConsoleSession.Kind.CONSOLE, ended__isnull=True).count()


def _lock_user(user) -> None:
    """Serialise one user's claims: the user's row is locked (select_for_update on PostgreSQL, FOR NO KEY UPDATE: the
    sessions' inserts that reference the user do not wait for it; on SQLite every write transaction is IMMEDIATE,
    so claims run one at a time anyway). Counting and creating then cannot interleave."""
    get_user_model().objects.select_for_update(no_key=True).filter(pk=user.pk).first()


def claim_console(user, lab: Lab, node: str) -> ConsoleSession | None:
    """Open a console session if the user has fewer than conf.console_max_open() open; None otherwise.
    Checked and claimed in one transaction, so parallel opens never exceed the limit."""
    with transaction.atomic():
        _lock_user(user)
        if open_consoles(user) >= conf.console_max_open():
            return None
        return start_session(user, lab, node, ConsoleSession.Kind.CONSOLE)


def start_session(user, lab: Lab, node: str, kind: str) -> ConsoleSession:
    return ConsoleSession.objects.create(user=user, username=user.get_username(), lab=lab, lab_ref=lab.lab_id,
                                         node=node[:64], kind=kind)


def end_session(pk: int, *, reason: str = "", bytes_in: int | None = None, bytes_out: int | None = None) -> None:
    fields = {"ended": timezone.now()}
    if reason:
        fields["reason"] = reason[:200]
    if bytes_in is not None:
        fields["bytes_in"] = bytes_in
    if bytes_out is not None:
        fields["bytes_out"] = bytes_out
    ConsoleSession.objects.filter(pk=pk, ended__isnull=True).update(**fields)


# ---------------------------------------------------------------------------------------------- captures


def check_capture_request(lab: Lab, data: dict) -> tuple[dict, list[Problem]]:
    """Validate a capture request against the lab's document: a link index, or a node and one of its interface
    names; a filter that passes netops.capture.check_filter. Returns (clean fields, problems)."""
    problems: list[Problem] = []
    doc = lab.document or {}
    nodes, links = doc.get("nodes") or {}, doc.get("links") or []
    link, node, iface = data.get("link"), data.get("node"), data.get("interface")
    clean: dict = {"link": None, "node": "", "interface": ""}
    if link is not None:
        if node not in (None, "") or iface not in (None, ""):
            problems.append(Problem("link", "give a link or a node interface, not both"))
        elif not isinstance(link, int) or isinstance(link, bool) or not 0 <= link < len(links):
            problems.append(Problem("link", f"there is no link {link!r} in this lab"))
        else:
            clean["link"] = link
    else:
        if not isinstance(node, str) or not NODE_NAME_RE.fullmatch(node) or node not in nodes:
            problems.append(Problem("node", f"there is no node {node!r} in this lab"))
        elif (not isinstance(iface, str) or not IFNAME_RE.fullmatch(iface)
              or iface not in ((nodes[node] or {}).get("interfaces") or {})):
            problems.append(Problem("interface", f"{iface!r} is not an interface of {node}"))
        else:
            clean["node"], clean["interface"] = node, iface
    try:
        clean["filter"] = netcapture.check_filter(data.get("filter") or "")
    except TopologyError as exc:
        problems += exc.problems
    return clean, problems


def running_captures(user) -> int:
    return Capture.objects.filter(started_by=user, status__in=Capture.ACTIVE).count()


def claim_capture(user, lab: Lab, clean: dict) -> Capture | None:
    """Create a capture if the user has fewer than conf.capture_max_running() running; None otherwise (checked and
    claimed in one transaction, like claim_console)."""
    with transaction.atomic():
        _lock_user(user)
        if running_captures(user) >= conf.capture_max_running():
            return None
        return create_capture(user, lab, clean)


def create_capture(user, lab: Lab, clean: dict) -> Capture:
    label = f"links.{clean['link']}" if clean["link"] is not None else f"{clean['node']}:{clean['interface']}"
    session = start_session(user, lab, label, ConsoleSession.Kind.CAPTURE)
    return Capture.objects.create(lab=lab, started_by=user, session=session, link=clean["link"], node=clean["node"],
                                  interface=clean["interface"], filter=clean["filter"], label=label,
                                  max_bytes=conf.capture_max_bytes(), max_seconds=conf.capture_max_seconds())


def start_message(cap: Capture) -> dict:
    return {"type": "capture.start", "capture": cap.pk, "lab": cap.lab.lab_id, "link": cap.link,
            "node": cap.node or None, "interface": cap.interface or None, "filter": cap.filter,
            "max_bytes": cap.max_bytes, "max_seconds": cap.max_seconds, "session": cap.session_id,
            "group": cap.group}


def apply_start_reply(cap: Capture, reply: dict) -> Capture:
    if reply.get("ok"):
        Capture.objects.filter(pk=cap.pk, status=Capture.Status.STARTING).update(
            status=Capture.Status.RUNNING, label=reply.get("label", cap.label)[:200],
            agent_channel=reply.get("agent", "")[:200], host=str(reply.get("host") or "")[:63])
    else:
        fail_capture(cap, reply.get("message") or "the agent refused the capture")
    cap.refresh_from_db()
    return cap


def fail_capture(cap: Capture, message: str) -> None:
    Capture.objects.filter(pk=cap.pk, status__in=Capture.ACTIVE).update(
        status=Capture.Status.FAILED, message=message[:500], ended=timezone.now())
    if cap.session_id:
        end_session(cap.session_id, reason=message)


def captures_of(lab: Lab):
    return Capture.objects.filter(lab=lab).select_related("started_by")


# ---------------------------------------------------------------------------------------------- the agent


def agent_channel_for(lab: Lab, node: str | None = None, link: int | None = None) -> str:
    """The stream agent's channel for a console or capture of `node` (or of link index `link`) in `lab`: the
    shared one for a lab on one host as before hosts existed, else that of the host that runs the node (a link: the
    host of its first end that is placed)."""
    from webapp.runs.parts import lab_span

    where = lab_span(lab.pk)
    placement, hosts = where.placement, where.hosts
    if not hosts:
        return conf.agent_channel()
    if node is None and link is not None:
        try:
            ends = [str(e).split(":", 1)[0] for e in (lab.document.get("links") or [])[link]["endpoints"]]
        except (IndexError, KeyError, TypeError, AttributeError):
            ends = []
        node = next((e for e in ends if e in placement), None)
    host = placement.get(node) if node else None
    return conf.agent_channel(host or hosts[0])


async def ask_agent(message: dict, *, channel: str | None = None, timeout: float = AGENT_TIMEOUT) -> dict:
    """Send `message` to the agent (its shared channel, or a given agent's own) and wait for its one reply."""
    layer = get_channel_layer()
    reply = await layer.new_channel()  # "specific": process-local channels must share one prefix (one receive loop)
    await layer.send(channel or conf.agent_channel(), {**message, "reply": reply})
    try:
        return await asyncio.wait_for(layer.receive(reply), timeout)
    except TimeoutError as exc:
        raise AgentUnavailable(f"the stream agent did not answer within {timeout:.0f} s (is it running?)") from exc


# ---------------------------------------------------------------------------------------------- pcap files

PCAP_CHUNK = 256 * 1024  # one request, one answer of this size
PCAP_WINDOW = 4  # chunks a download has asked for and not yet had: the agent reads ahead by at most this much


class PcapUnavailable(Exception):
    """A capture's pcap cannot be had from its host; `status` is the HTTP answer (404: no file, 503: no answer)."""

    def __init__(self, message: str, status: int = 503) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class PcapStream:
    """A download from the stream agent of the capture's host (webapp.agent.pcaps): its first chunk is in, the rest
    are asked for PCAP_WINDOW ahead of what the browser took, up to the file's size when the download began."""

    capture: int
    host: str
    size: int
    first: bytes
    reply: str  # this download's own channel, for the agent's answers

    async def chunks(self) -> AsyncIterator[bytes]:
        if self.first:
            yield self.first
        asked = had = len(self.first)
        answers: dict[int, bytes] = {}  # by offset: the agent answers each read in a task of its own
        while had < self.size:
            while asked < self.size and asked - had < PCAP_WINDOW * PCAP_CHUNK:
                size = min(PCAP_CHUNK, self.size - asked)
                await _ask_pcap(self.capture, self.host, self.reply,
                                {"type": "capture.read", "offset": asked, "size": size}, wait=False)
                asked += size
            while had not in answers:
                answer = await _pcap_answer(self.capture, self.host, self.reply, "capture.read")
                if isinstance(answer.get("offset"), int) and had <= answer["offset"] < asked:
                    answers[answer["offset"]] = answer["data"]
            data = answers.pop(had)
            if len(data) < min(PCAP_CHUNK, self.size - had):
                raise PcapUnavailable(f"capture {self.capture}: its pcap file on host {self.host} shrank during "
                                      f"the download (to {had + len(data)} of {self.size} bytes)")
            had += len(data)
            yield data


async def open_pcap(cap: Capture) -> PcapStream:
    """Begin the download of `cap`'s pcap from its host's stream agent: its first chunk and size, or
    PcapUnavailable naming the capture (never ran, file gone, host not answering within conf.pcap_timeout())."""
    if not cap.host:
        raise PcapUnavailable(f"capture {cap.pk} has no pcap file: it never ran on a host", 404)
    reply = await get_channel_layer().new_channel()
    answer = await _ask_pcap(cap.pk, cap.host, reply, {"type": "capture.read", "offset": 0, "size": PCAP_CHUNK})
    size = int(answer.get("size") or 0)
    return PcapStream(cap.pk, cap.host, size, answer["data"][:size], reply)


async def pcap_backlog(cap: Capture, last: int) -> list[dict]:
    """The last `last` packet summaries in `cap`'s file, from its host's stream agent (or PcapUnavailable)."""
    if not cap.host:
        return []
    reply = await get_channel_layer().new_channel()
    answer = await _ask_pcap(cap.pk, cap.host, reply, {"type": "capture.backlog", "last": last})
    packets = answer.get("packets")
    return packets if isinstance(packets, list) else []


async def _ask_pcap(capture: int, host: str, reply: str, message: dict, *, wait: bool = True) -> dict:
    """A request to the stream agent of `host` (its own channel: only it holds the file) and (`wait`) its answer."""
    try:
        await get_channel_layer().send(conf.agent_channel(host), {**message, "capture": capture, "reply": reply})
    except ChannelFull:
        raise PcapUnavailable(f"capture {capture}: the stream agent of host {host}, which holds its pcap file, is "
                              f"not reading its requests (its channel is full)") from None
    return await _pcap_answer(capture, host, reply, message["type"]) if wait else {}


async def _pcap_answer(capture: int, host: str, reply: str, kind: str) -> dict:
    """The next answer on `reply`, within conf.pcap_timeout(); a refusal or no answer is PcapUnavailable."""
    timeout = conf.pcap_timeout()
    try:
        answer = await asyncio.wait_for(get_channel_layer().receive(reply), timeout)
    except TimeoutError:
        raise PcapUnavailable(f"capture {capture}: the stream agent of host {host}, which holds its pcap file, did "
                              f"not answer within {timeout:g} s (is it running?)") from None
    if not answer.get("ok"):
        raise PcapUnavailable(str(answer.get("message") or f"capture {capture}: host {host} refused to read it"),
                              404 if answer.get("gone") else 503)
    if kind == "capture.read" and not isinstance(answer.get("data"), bytes):
        raise PcapUnavailable(f"capture {capture}: host {host} answered without data")
    return answer
