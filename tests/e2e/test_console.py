"""Consoles and captures in real Chromium against real daphne, a real Celery agent (deploy) and the real stream agent
(root): deploy from the editor, open a console on h1 and run a command, capture the h1 link while h1 pings r1."""
from __future__ import annotations

import os
import time

import pytest
from django.contrib.auth import get_user_model
from e2e.editor_page import centre
from playwright.sync_api import expect
from support import lab_processes

from netops import procs
from webapp.labs.models import Lab

pytestmark = [pytest.mark.e2e, pytest.mark.kernel, pytest.mark.django_db(transaction=True)]

if os.geteuid() != 0:
    pytest.skip("the agents need root", allow_module_level=True)

PASSWORD = "correct horse battery"
DOC = {
    "version": 1, "name": "e2e-console",
    "nodes": {
        "r1": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.1.254/24"}}, "ui": {"x": 300, "y": 120}},
        "sw": {"kind": "bridge", "ui": {"x": 300, "y": 260}},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}},
               "routes": [{"to": "default", "via": "10.0.1.254"}], "ui": {"x": 200, "y": 380}},
    },
    "links": [{"endpoints": ["r1:eth0", "sw"]}, {"endpoints": ["h1:eth0", "sw"]}],
}
def click_node(page, name: str) -> None:
    point = centre(page, name)
    page.mouse.click(point["x"], point["y"])


def test_a_console_runs_a_command_and_a_capture_lists_the_pings(page, login, screenshot, celery_worker, stream_agent,
                                                                   kernel_lock):
    from netops import engine

    user = get_user_model().objects.create_user("connie", password=PASSWORD)
    lab = Lab.objects.create(owner=user, name="e2e-console", document=DOC)
    login(page, "connie", PASSWORD)
    page.goto(f"/labs/{lab.pk}/")
    page.wait_for_function("window.topolab && window.topolab.deploy && window.topolab.consoles")
    try:
        page.click("#btn-deploy")
        page.wait_for_function(
            "() => window.topolab.cy.nodes().every((n) => n.data('deployState') === 'running')", timeout=60_000)

        click_node(page, "h1")
        page.click("#btn-console")
        terminal = page.locator(".term-screen[data-node=h1]")
        expect(page.locator(".dock-body.console .term-status")).to_contain_text("connected", timeout=20_000)
        expect(terminal.locator(".xterm-rows")).to_contain_text("h1:", timeout=20_000)  # the prompt
        terminal.click()
        page.keyboard.type("ip -br addr show dev eth0\n")
        expect(terminal.locator(".xterm-rows")).to_contain_text("10.0.1.1/24", timeout=15_000)
        screenshot(page, "console")

        page.evaluate("() => { const cy = window.topolab.cy; cy.elements().unselect(); "
                      "cy.getElementById('link-1').select(); }")
        page.click("#btn-capture")
        page.fill(".dock-body.capture .capture-filter", "icmp")
        page.click(".dock-body.capture .capture-start")
        expect(page.locator(".dock-body.capture .capture-status")).to_contain_text("Capturing on h1:eth0", timeout=20_000)

        page.click(".dock-tab[data-kind=console]")
        terminal.click()
        page.keyboard.type("ping -c 3 -i 0.3 10.0.1.254\n")
        page.click(".dock-tab[data-kind=capture]")
        rows = page.locator(".dock-body.capture .packet-list tbody tr")
        expect(rows.filter(has_text="echo request").first).to_be_visible(timeout=20_000)
        expect(rows.filter(has_text="echo reply").first).to_be_visible()
        first = rows.filter(has_text="echo request").first.locator("td")
        assert first.nth(2).inner_text() == "10.0.1.1" and first.nth(3).inner_text() == "10.0.1.254"
        screenshot(page, "capture")
        page.click(".dock-body.capture .capture-stop")
        expect(page.locator(".dock-body.capture .capture-status")).to_contain_text("Stopped")
        assert page.locator(".dock-body.capture .capture-download").get_attribute("href").endswith("/pcap")

        page.locator(".dock-tab[data-kind=console] .dock-close").click()  # closing the tab ends the shell
        deadline = time.monotonic() + 15
        while lab_processes(lab.lab_id):  # the shell and the capture's tcpdump (the node's init stays)
            assert time.monotonic() < deadline, lab_processes(lab.lab_id)
            time.sleep(0.2)
    finally:
        engine.down(lab.lab_id)
    assert procs.find(lab.lab_id) == []
