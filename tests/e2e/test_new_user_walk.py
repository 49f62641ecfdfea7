"""A new user's path, end to end by mouse, in real Chromium against real daphne, a real Celery agent and the stream
agent (root): sign in (lands on My labs), build a LAN (router serving DHCP, switch, two hosts), deploy, see h2's
leased address on its label and in its panel, open h1's console (twice: one tab), edit (the status says the edit is
not deployed), reload (the log shows the last run), deploy again, destroy; the kernel is clean at the end."""
from __future__ import annotations

import os
import re

import pytest
from django.contrib.auth import get_user_model
from e2e.editor_page import doc, drop, rect, saved, select_node, wire
from playwright.sync_api import expect
from support import lab_namespaces

from webapp.labs.models import Lab

pytestmark = [pytest.mark.e2e, pytest.mark.kernel, pytest.mark.django_db(transaction=True)]

if os.geteuid() != 0:
    pytest.skip("the agents need root", allow_module_level=True)

PASSWORD = "correct horse battery"
ALL_RUNNING = "() => window.topolab.cy.nodes().every((n) => n.data('deployState') === 'running')"
LEASED = re.compile(r"10\.0\.1\.(1[0-4][0-9]|150)\b")


def fill(page, selector: str, value: str) -> None:
    field = page.locator(selector)
    field.fill(value)
    field.press("Enter")


def test_a_new_user_builds_deploys_edits_and_destroys_a_lan(page, screenshot, celery_worker, stream_agent,
                                                           kernel_lock):
    from netops import engine

    get_user_model().objects.create_user("newbie", password=PASSWORD)
    page.goto("/accounts/login/")
    expect(page.locator("#signup-link")).to_be_visible()
    page.fill("#id_username", "newbie")
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url.endswith("/labs/"), page.url  # My labs, where the work is

    page.fill("#new-lab-name", "first")
    with page.expect_navigation():
        page.click("#create-lab button[type=submit]")
    page.wait_for_function("window.topolab && window.topolab.deploy && window.topolab.consoles")
    lab = Lab.objects.get(document__name="first")  # the name lives in the document only
    screenshot(page, "walk-0-empty")
    try:
        drop(page, "router", 420, 90)
        drop(page, "bridge", 420, 230)
        drop(page, "host", 280, 380)
        drop(page, "host", 560, 380)
        page.click("#btn-link")
        wire(page, "r1", "br1")
        wire(page, "h1", "br1")
        wire(page, "h2", "br1")
        page.keyboard.press("Escape")
        select_node(page, "r1")
        fill(page, "#panel input[data-role=address][data-iface=eth0]", "10.0.1.254/24")
        fill(page, "#panel input[data-role=dhcp-range]", "10.0.1.100-10.0.1.150")
        select_node(page, "h1")
        fill(page, "#panel input[data-role=address][data-iface=eth0]", "10.0.1.1/24")
        select_node(page, "h2")
        page.check("#panel input[data-role=dhcp][data-iface=eth0]")
        saved(page)
        expect(page.locator("#problem-count")).to_have_text("0")
        screenshot(page, "walk-1-built")

        toolbar = rect(page, ".toolbar")
        page.click("#btn-deploy")
        page.wait_for_function(ALL_RUNNING, timeout=60_000)
        expect(page.locator("#deploy-status")).to_have_text("Deployed")
        assert rect(page, ".toolbar") == toolbar
        # h2's lease, from the lab's status, on its label and in its panel
        page.wait_for_function("(re) => new RegExp(re).test(window.topolab.cy.getElementById('h2').data('label'))",
                               arg=LEASED.pattern, timeout=30_000)
        assert "10.0.1.254/24" in page.evaluate("window.topolab.cy.getElementById('r1').data('label')")
        select_node(page, "h2")
        expect(page.locator("#panel [data-role=leased]")).to_have_text(LEASED)

        select_node(page, "h1")
        page.click("#btn-console")
        expect(page.locator(".dock-body.console .term-status")).to_contain_text("connected", timeout=20_000)
        page.click("#btn-console")
        expect(page.locator(".dock-tab[data-kind=console]")).to_have_count(1)
        assert rect(page, "#canvas")["bottom"] <= rect(page, "#term-dock")["y"] + 1
        screenshot(page, "walk-2-deployed")

        fill(page, "#panel input[data-role=node-description]", "the static one")
        saved(page)
        expect(page.locator("#deploy-status")).to_have_text("Edits not deployed")
        screenshot(page, "walk-3-edited")

        page.reload()
        page.wait_for_function("window.topolab && window.topolab.deploy")
        expect(page.locator("#deploy-status")).to_have_text("Edits not deployed")
        page.click("#btn-deploy-log")
        expect(page.locator("#deploy-log-list li").last).to_have_text("deploy finished")
        page.click("#btn-deploy")
        expect(page.locator("#deploy-status")).to_have_text("Deployed", timeout=60_000)
        screenshot(page, "walk-4-redeployed")

        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#btn-destroy")
        expect(page.locator("#deploy-status")).to_have_text("Destroyed", timeout=60_000)
        assert doc(page)["nodes"]["h1"]["description"] == "the static one"
        screenshot(page, "walk-5-destroyed")
    finally:
        engine.down(lab.lab_id)
    assert lab_namespaces(lab.lab_id) == []
