"""Node and link actions from the canvas's right-click menu, in real Chromium against real daphne and a real Celery
agent (issue 18): Stop turns a node grey, Set link down draws the link dashed, and the kernel agrees."""
from __future__ import annotations

import os
import subprocess
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
    "version": 1, "name": "e2e-actions",
    "nodes": {
        "r1": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.1.254/24"}}, "ui": {"x": 300, "y": 120}},
        "sw": {"kind": "bridge", "ui": {"x": 300, "y": 280}},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}},
               "routes": [{"to": "default", "via": "10.0.1.254"}], "ui": {"x": 160, "y": 420}},
        "h2": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.2/24"}}, "ui": {"x": 440, "y": 420}},
    },
    "links": [{"endpoints": ["r1:eth0", "sw"]}, {"endpoints": ["h1:eth0", "sw"]}, {"endpoints": ["h2:eth0", "sw"]}],
}


def right_click(page, js_point: str) -> None:
    """Right-click the canvas at the rendered point `js_point` (JS evaluating to {x, y} inside the canvas)."""
    box = page.locator("#canvas").bounding_box()
    point = page.evaluate(f"() => {js_point}")
    page.mouse.click(box["x"] + point["x"], box["y"] + point["y"], button="right")


def state_of(page, node: str) -> str:
    return page.evaluate(f"() => window.topolab.cy.getElementById('{node}').data('deployState')")


def ip_link(lab: Lab, node: str) -> str:
    return subprocess.run(["ip", "netns", "exec", f"tl-{lab.lab_id}-{node}", "ip", "-o", "link", "show", "eth0"],
                          capture_output=True, text=True, timeout=30).stdout


def test_the_right_click_menu_stops_a_node_grey_and_sets_a_link_down_dashed(
        page, login, screenshot, celery_worker, kernel_lock):
    user = get_user_model().objects.create_user("rita", password=PASSWORD)
    lab = Lab.objects.create(owner=user, name="e2e-actions", document=DOC)
    login(page, "rita", PASSWORD)
    page.goto(f"/labs/{lab.pk}/")
    page.wait_for_function("window.topolab && window.topolab.deploy && window.topolab.actions")
    try:
        # before a deploy there is nothing to act on: no menu
        right_click(page, "window.topolab.cy.getElementById('h2').renderedPosition()")
        expect(page.locator("#ctx-menu")).to_have_count(0)
        page.click("#btn-deploy")
        page.wait_for_function(
            "() => window.topolab.cy.nodes().every((n) => n.data('deployState') === 'running')", timeout=60_000)
        page.wait_for_function("() => window.topolab.deploy.state.deployed && !window.topolab.deploy.state.run")

        right_click(page, "window.topolab.cy.getElementById('h2').renderedPosition()")
        menu = page.locator("#ctx-menu")
        expect(menu).to_be_visible()
        expect(menu.locator(".ctx-title")).to_have_text("h2")
        expect(menu.locator("button[data-action='start']")).to_have_count(0)
        screenshot(page, "actions-menu")
        menu.locator("button[data-action='stop']").click()
        page.wait_for_function("() => window.topolab.cy.getElementById('h2').data('deployState') === 'stopped'",
                               timeout=60_000)
        assert page.evaluate("() => window.topolab.cy.getElementById('h2').style('background-image-opacity')") \
            == "0.35"
        assert f"tl-{lab.lab_id}-h2" not in lab_namespaces(lab.lab_id)  # the kernel agrees
        page.wait_for_function("() => !window.topolab.deploy.state.run")

        right_click(page, "window.topolab.cy.getElementById('link-1').renderedMidpoint()")
        expect(page.locator("#ctx-menu .ctx-title")).to_have_text("h1:eth0 – sw")
        page.locator("#ctx-menu button[data-action='link-down']").click()
        page.wait_for_function(
            "() => window.topolab.cy.getElementById('link-1').style('line-style') === 'dashed'", timeout=60_000)
        flags = ip_link(lab, "h1")
        assert "NO-CARRIER" in flags and "LOWER_UP" not in flags, flags
        page.wait_for_function("() => !window.topolab.deploy.state.run")
        screenshot(page, "actions-stopped-and-down")  # var/artifacts/actions-stopped-and-down.png

        # the properties panel offers the same on the selected node, and Start brings h2 back
        page.evaluate("() => { window.topolab.cy.getElementById('h2').select(); }")
        start = page.locator("[data-role='running-actions'] button[data-action='start']")
        expect(start).to_be_visible()
        start.click()
        page.wait_for_function("() => window.topolab.cy.getElementById('h2').data('deployState') === 'running'",
                               timeout=60_000)
        assert f"tl-{lab.lab_id}-h2" in lab_namespaces(lab.lab_id)
        # a reload shows the downed link dashed still (from the lab's snapshot)
        page.reload()
        page.wait_for_function("window.topolab && window.topolab.actions")
        page.wait_for_function(
            "() => window.topolab.cy.getElementById('link-1').style('line-style') === 'dashed'", timeout=15_000)
        assert state_of(page, "h2") == "running"
    finally:
        from rest_framework.test import APIClient

        from webapp.runs.models import LabState, Run

        api = APIClient()
        api.force_authenticate(user)
        deadline = time.monotonic() + 60
        while Run.objects.filter(lab=lab, status__in=["queued", "running"]).exists():
            assert time.monotonic() < deadline
            time.sleep(0.5)
        if LabState.objects.filter(lab=lab, deployed=True).exists():
            api.post(f"/api/labs/{lab.pk}/destroy")
            while LabState.objects.filter(lab=lab, deployed=True).exists() and time.monotonic() < deadline:
                time.sleep(0.5)
    assert lab_namespaces(lab.lab_id) == []
