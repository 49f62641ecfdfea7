"""Deploy and Destroy from the editor in real Chromium, against real daphne and a real Celery agent (root):
every node turns green without a reload, Destroy (confirmed) turns them grey, and the kernel agrees."""
from __future__ import annotations

import os
import time

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect
from support import lab_namespaces

from webapp.labs.models import Lab

pytestmark = [pytest.mark.e2e, pytest.mark.kernel, pytest.mark.django_db(transaction=True)]

if os.geteuid() != 0:
    pytest.skip("the agent needs root", allow_module_level=True)

PASSWORD = "correct horse battery"
DOC = {
    "version": 1, "name": "e2e-deploy",
    "nodes": {
        "r1": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.1.254/24"}}, "ui": {"x": 300, "y": 120}},
        "sw": {"kind": "bridge", "ui": {"x": 300, "y": 280}},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}},
               "routes": [{"to": "default", "via": "10.0.1.254"}], "ui": {"x": 160, "y": 420}},
        "h2": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.2/24"}}, "ui": {"x": 440, "y": 420}},
    },
    "links": [{"endpoints": ["r1:eth0", "sw"]}, {"endpoints": ["h1:eth0", "sw"]}, {"endpoints": ["h2:eth0", "sw"]}],
}
STATES = "() => Object.fromEntries(window.topolab.cy.nodes().map((n) => [n.id(), n.data('deployState')]))"


def test_deploy_turns_nodes_green_live_and_destroy_turns_them_grey(page, login, screenshot, celery_worker, kernel_lock):
    user = get_user_model().objects.create_user("dora", password=PASSWORD)
    lab = Lab.objects.create(owner=user, name="e2e-deploy", document=DOC)
    login(page, "dora", PASSWORD)
    page.goto(f"/labs/{lab.pk}/")
    page.wait_for_function("window.topolab && window.topolab.deploy")
    expect(page.locator("#deploy-status")).to_have_text("Not deployed")
    assert set(page.evaluate(STATES).values()) == {"absent"}
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    try:
        page.click("#btn-deploy")
        page.wait_for_function(
            "() => window.topolab.cy.nodes().every((n) => n.data('deployState') === 'running')", timeout=60_000)
        expect(page.locator("#deploy-status")).to_have_text("Deployed")
        assert page.evaluate(STATES) == {"r1": "running", "sw": "running", "h1": "running", "h2": "running"}
        colour = page.evaluate("() => window.topolab.cy.getElementById('h1').style('underlay-color')")
        assert colour.replace(" ", "") == "rgb(22,163,74)", colour  # green
        assert len(lab_namespaces(lab.lab_id)) == 4  # fabric + r1, h1, h2: the kernel agrees
        page.click("#btn-deploy-log")
        expect(page.locator("#deploy-log-list li").first).to_be_visible()
        screenshot(page, "deploy")  # var/artifacts/deploy.png

        page.goto("/labs/")
        expect(page.locator(f"tr[data-lab='{lab.pk}'] .badge-running")).to_be_visible()
        page.goto(f"/labs/{lab.pk}/")
        page.wait_for_function("window.topolab && window.topolab.deploy")
        page.wait_for_function("() => window.topolab.cy.getElementById('h1').data('deployState') === 'running'")
        navigations.clear()

        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#btn-destroy")
        page.wait_for_function(
            "() => window.topolab.cy.nodes().every((n) => n.data('deployState') === 'absent')", timeout=60_000)
        expect(page.locator("#deploy-status")).to_have_text("Destroyed")
        assert navigations == [], "the page reloaded"
        screenshot(page, "destroyed")
    finally:
        from webapp.runs.models import LabState, Run

        if LabState.objects.filter(lab=lab, deployed=True).exists():  # a failure above: clean up via the API
            from rest_framework.test import APIClient

            api = APIClient()
            api.force_authenticate(user)
            deadline = time.monotonic() + 60
            while Run.objects.filter(lab=lab, status__in=["queued", "running"]).exists():
                assert time.monotonic() < deadline
                time.sleep(0.5)
            api.post(f"/api/labs/{lab.pk}/destroy")
            while LabState.objects.filter(lab=lab, deployed=True).exists() and time.monotonic() < deadline:
                time.sleep(0.5)
    assert lab_namespaces(lab.lab_id) == []
