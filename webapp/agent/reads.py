"""The stream agent answers another host's check part (webapp.checks.agent.peer_asker) about a node of a lab across
hosts that runs on this host: the addresses it has on an interface, or the leases its DHCP server there holds
(netops.labcheck_run.read_for_peer says what is read and how). A check on host a that pings h2 on host b, whose
address is a lease, or that asks a VM's address of the router that leases it on another host, asks this.

    lab.read {"lab": lab pk, "node": name, "read": "addresses" | "leases", "interface": name, "reply": channel}
             -> {"ok": true, "value": [...]} | {"ok": false, "message": why}

Only a node that the lab's last deploy placed on this host (TOPOLAB_HOST) is read, of the document that deploy ran
(LabState.deployed_document): the node and interface names are looked up in it, so nothing from the message becomes
a path or an argv. The lab must be an integer. The message comes over the channel layer, which only the web tier
and the agents reach (the browser never writes to it).
"""
from __future__ import annotations

from typing import Any

from django.conf import settings

from netops import labcheck_run
from netops.errors import NetopsError
from netops.topology import parse_document


def answer(m: dict[str, Any]) -> dict[str, Any]:
    """The answer to a lab.read (synchronous: the database and the kernel; run it off the loop)."""
    from webapp.labs.models import Lab
    from webapp.runs.models import LabState
    from webapp.runs.parts import lab_span

    lab_pk, node = m.get("lab"), m.get("node")
    if not isinstance(lab_pk, int) or isinstance(lab_pk, bool) or not isinstance(node, str):
        return {"ok": False, "message": "a read names a lab by its id and a node by its name"}
    here = settings.TOPOLAB_HOST
    if lab_span(lab_pk).placement.get(node) != here:
        return {"ok": False, "message": f"node {node!r} of lab {lab_pk} does not run on host {here}"}
    state = LabState.objects.filter(lab_id=lab_pk, deployed=True).first()
    lab_id = Lab.objects.filter(pk=lab_pk).values_list("lab_id", flat=True).first()
    if state is None or not state.deployed_document or lab_id is None:
        return {"ok": False, "message": f"lab {lab_pk} is not deployed"}
    try:
        topology = parse_document(state.deployed_document)
        value = labcheck_run.read_for_peer(lab_id, topology, node, {"read": m.get("read"),
                                                                     "interface": m.get("interface")})
    except NetopsError as exc:
        return {"ok": False, "message": f"host {here}: {getattr(exc, 'message', exc)}"}
    return {"ok": True, "value": value}
