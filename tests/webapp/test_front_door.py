"""The front door as a new user meets it: the favicon, the sign-in page's way to sign up, where sign-in lands,
and the snapshot's deployed version (the editor's "Deployed" only while no newer edit exists)."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from webapp.labs import services as lab_services
from webapp.runs import services as runs
from webapp.runs.models import Run

pytestmark = [pytest.mark.webapp, pytest.mark.django_db]
PASSWORD = "correct horse battery"


def test_favicon_ico_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert b"<svg" in b"".join(response.streaming_content)


def test_every_page_names_its_icon(client):
    assert 'rel="icon"' in client.get("/accounts/login/").content.decode()


def test_the_sign_in_page_links_to_sign_up(client):
    body = client.get("/accounts/login/").content.decode()
    assert 'href="/accounts/signup/"' in body
    assert client.get("/accounts/signup/").status_code == 200


def test_signing_in_lands_on_my_labs(client):
    get_user_model().objects.create_user("bob", password=PASSWORD)
    response = client.post("/accounts/login/", {"username": "bob", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/labs/"


def test_signing_in_still_follows_next(client):
    get_user_model().objects.create_user("bob", password=PASSWORD)
    response = client.post("/accounts/login/?next=/templates/", {"username": "bob", "password": PASSWORD,
                                                                 "next": "/templates/"})
    assert response["Location"] == "/templates/"


def test_the_snapshot_says_which_version_is_deployed():
    user = get_user_model().objects.create_user("dee", password=PASSWORD)
    lab = lab_services.create_lab(user, "versions").lab
    assert runs.snapshot(lab)["deployed_version"] is None
    run = Run.objects.create(lab=lab, kind="deploy", status="running")
    runs.set_deployed(lab.pk, True)
    document = {"version": 1, "name": "versions", "links": [],
                "nodes": {"h1": {"kind": "host", "ui": {"x": 1, "y": 2}}}}
    runs.finish(run, version=lab.version, document=document)
    snap = runs.snapshot(lab)
    assert snap["deployed"] is True and snap["deployed_version"] == lab.version
    # what runs, without the canvas positions (moving a node is no edit of it)
    assert snap["deployed_document"] == {"version": 1, "name": "versions", "links": [], "nodes": {"h1": {"kind": "host"}}}
    destroy = Run.objects.create(lab=lab, kind="destroy", status="running")
    runs.set_deployed(lab.pk, False)
    runs.finish(destroy)
    assert runs.snapshot(lab)["deployed_version"] is None  # nothing runs
    assert runs.snapshot(lab)["deployed_document"] is None


def test_a_vms_status_lists_the_address_its_router_leased_it():
    observed = {"nodes": {
        "r1": {"kind": "router", "state": "running", "interfaces": {}, "leases": [
            {"mac": "52:54:00:AA:BB:CC", "ip": "10.0.1.120", "hostname": "vm1", "expires": 1},
            {"mac": "52:54:00:00:00:02", "ip": "10.0.1.121", "hostname": "", "expires": 1}]},
        "vm1": {"kind": "vm", "state": "running", "interfaces": {"eth0": {"addresses": [], "mac": "52:54:00:aa:bb:cc"}}},
        # no MAC in the document: the one qemu was given
        "vm2": {"kind": "vm", "state": "running", "interfaces": {"eth0": {"addresses": [], "mac": None}},
                "vm": {"macs": {"eth0": "52:54:00:00:00:02"}}},
        "vm3": {"kind": "vm", "state": "running", "interfaces": {"eth0": {"addresses": [], "mac": "52:54:00:00:00:09"}}},
    }}
    nodes = runs.with_leased_addresses(observed)["nodes"]
    assert nodes["vm1"]["interfaces"]["eth0"]["addresses"] == ["10.0.1.120"]
    assert nodes["vm2"]["interfaces"]["eth0"] == {"addresses": ["10.0.1.121"], "mac": "52:54:00:00:00:02"}
    assert nodes["vm3"]["interfaces"]["eth0"]["addresses"] == []  # no lease yet
    assert runs.with_leased_addresses(observed)["nodes"]["vm1"]["interfaces"]["eth0"]["addresses"] == ["10.0.1.120"]
