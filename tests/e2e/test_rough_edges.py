"""The rough edges a new user hit in the editor (issue #18's list), each walked in real Chromium against real daphne:
the toolbar, interface names, placeholders, the External panel, errors that outlive their fix, the dock, the
capture table, inline rename, router labels, the deployed status, the deploy log after a reload, self-links."""
from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from e2e.editor_page import centre, doc, double_click, drop, fits, open_editor, rect, saved, select_node, wire
from playwright.sync_api import expect

from webapp.labs import services
from webapp.labs.models import Lab
from webapp.runs import services as runs
from webapp.runs.models import LabState, Run

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"
LAN = {
    "version": 1, "name": "lan",
    "nodes": {
        "wan": {"kind": "external", "nat": True, "address": "203.0.113.1/24", "ui": {"x": 300, "y": 40}},
        # drawn uplink first, as a user does: eth0 faces the outside, eth1 the LAN
        "r1": {"kind": "router", "interfaces": {
            "eth0": {"address": "203.0.113.2/24"},
            "eth1": {"address": "10.0.1.254/24", "dhcp_server": {"range": "10.0.1.100-10.0.1.150"}}},
            "routes": [{"to": "default", "via": "203.0.113.1"}], "nat": {"masquerade": ["eth0"]},
            "ui": {"x": 300, "y": 160}},
        "br1": {"kind": "bridge", "ui": {"x": 300, "y": 280}},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}}, "ui": {"x": 200, "y": 420}},
        "h2": {"kind": "host", "interfaces": {"eth0": {"address": "dhcp"}}, "ui": {"x": 400, "y": 420}},
    },
    "links": [{"endpoints": ["r1:eth0", "wan"]}, {"endpoints": ["r1:eth1", "br1"]},
              {"endpoints": ["h1:eth0", "br1"]}, {"endpoints": ["h2:eth0", "br1"]}],
}


@pytest.fixture
def user():
    return get_user_model().objects.create_user("nelly", password=PASSWORD)


@pytest.fixture
def lab(user):
    return services.create_lab(user, "lan", "", json.loads(json.dumps(LAN))).lab


@pytest.fixture
def editor(page, login, user, lab):
    login(page, "nelly", PASSWORD)
    open_editor(page, lab.pk)
    return page


def contrast(page, selector: str) -> float:
    """WCAG contrast ratio of an element's text against the first opaque background behind it."""
    return page.evaluate("""(s) => {
        const el = document.querySelector(s);
        const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
        const lum = ([r, g, b]) => {
            const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
            return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
        };
        let bg = null;
        for (let n = el; n && !bg; n = n.parentElement) {
            const c = rgb(getComputedStyle(n).backgroundColor);
            if (c.length < 4 || c[3] > 0.99) bg = c;
        }
        const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(bg || [255, 255, 255])];
        return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    }""", selector)


def test_a_long_save_error_shortens_in_one_toolbar_row_and_nothing_moves(editor, lab):
    page = editor
    before = {s: rect(page, s) for s in (".toolbar", "#canvas", "#btn-deploy")}
    long = "the server said no: " + "this change could not be stored because of a reason that takes many words " * 4
    page.route(f"**/api/labs/{lab.pk}/", lambda route: route.fulfill(
        status=400, content_type="application/json", body=json.dumps({"detail": long}))
        if route.request.method == "PUT" else route.continue_())
    drop(page, "host", 600, 420)
    status = page.locator("#save-status")
    expect(status).to_have_attribute("data-state", "error", timeout=10_000)
    assert long.strip() in status.get_attribute("title")  # the whole text is in its tooltip
    assert page.evaluate("() => { const s = document.querySelector('#save-status'); return s.scrollWidth > s.clientWidth; }")
    after = {s: rect(page, s) for s in before}
    assert after == before, (before, after)  # no second row: the canvas and Deploy stay under the cursor


def test_interfaces_are_renamed_and_swapped_in_the_node_panel(editor):
    page = editor
    select_node(page, "r1")
    name = page.locator("#panel input[data-role=iface-name][data-iface=eth0]")
    expect(name).to_have_value("eth0")
    name.fill("eth1")  # the name r1 already has: the two swap, in one action
    name.press("Enter")
    saved(page)
    r1 = doc(page)["nodes"]["r1"]
    assert r1["interfaces"]["eth0"] == {"address": "10.0.1.254/24", "dhcp_server": {"range": "10.0.1.100-10.0.1.150"}}
    assert r1["interfaces"]["eth1"] == {"address": "203.0.113.2/24"}
    assert r1["nat"] == {"masquerade": ["eth1"]}  # NAT follows the uplink to its new name
    assert [link["endpoints"] for link in doc(page)["links"]][:2] == [["r1:eth1", "wan"], ["r1:eth0", "br1"]]
    expect(page.locator("#problem-count")).to_have_text("0")

    lan = page.locator("#panel input[data-role=iface-name][data-iface=eth0]")
    lan.fill("lan0")
    lan.press("Enter")
    assert "lan0" in doc(page)["nodes"]["r1"]["interfaces"]
    bad = page.locator("#panel input[data-role=iface-name][data-iface=lan0]")
    bad.fill("no spaces please")
    bad.press("Enter")
    expect(page.locator("#panel .iface[data-path='nodes.r1.interfaces.lan0'] .iface-head .field-error")).to_contain_text(
        "letters, digits")
    assert "lan0" in doc(page)["nodes"]["r1"]["interfaces"]


def test_placeholders_are_examples_styled_as_hints(editor):
    page = editor
    drop(page, "router", 620, 160)
    drop(page, "host", 620, 420)
    page.click("#btn-link")

    wire(page, "r2", "h3")
    page.keyboard.press("Escape")
    select_node(page, "r2")
    inputs = page.locator("#panel input[placeholder], #panel textarea[placeholder]")
    placeholders = inputs.evaluate_all("(els) => els.map((e) => e.placeholder)")
    assert placeholders, "the panel has fields with placeholders"
    for text in placeholders:
        assert not text[:1].isdigit(), f"{text!r} looks like a value"
    address = page.locator("#panel input[data-role=address]").first
    assert address.get_attribute("placeholder").startswith("e.g.")
    assert page.locator("#panel input[data-role=dhcp-range]").first.get_attribute("placeholder").startswith("e.g.")
    style = address.evaluate("(el) => { const s = getComputedStyle(el, '::placeholder'); return [s.fontStyle, s.color]; }")
    value = address.evaluate("(el) => getComputedStyle(el).color")
    assert style[0] == "italic" and style[1] != value, style


def test_the_external_panel_preselects_nothing_and_speaks_the_forms_words(editor):
    page = editor
    drop(page, "external", 620, 60)
    select_node(page, "wan1")
    bridge_radio = page.locator("#panel input[data-role=external-bridge]")
    nat_radio = page.locator("#panel input[data-role=external-nat]")
    expect(bridge_radio).not_to_be_checked()
    expect(nat_radio).not_to_be_checked()
    saved(page)
    connection = page.locator("#panel [data-path='nodes.wan1.connection'] > .field-error")
    expect(connection).to_have_text("Choose how wan1 reaches the host's network: a host bridge or NAT")
    expect(page.locator("#panel [data-path='nodes.wan1'] > .field-error")).to_be_hidden()  # not under Name
    assert "nat: true" not in page.locator("#panel").inner_text()

    nat_radio.check()
    expect(page.locator("#panel input[data-role=external-bridge-name]")).to_be_hidden()
    address = page.locator("#panel input[data-role=external-address]")
    expect(address).to_be_visible()
    saved(page)
    expect(page.locator("#panel [data-path='nodes.wan1.address'] > .field-error")).to_have_text(
        "Enter the host-side gateway address, e.g. 203.0.113.1/24")
    address.fill("198.51.100.1/24")
    address.press("Enter")
    saved(page)
    assert doc(page)["nodes"]["wan1"] == {"kind": "external", "nat": True, "address": "198.51.100.1/24",
                                          "ui": doc(page)["nodes"]["wan1"]["ui"]}
    expect(page.locator("#panel .field.invalid, #panel .group.invalid")).to_have_count(0)


def test_no_tooltip_outlives_the_node_it_was_about(editor):
    page = editor
    drop(page, "external", 620, 60)  # invalid until it has a connection: hovering shows why
    saved(page)
    point = centre(page, "wan1")
    page.mouse.click(point["x"], point["y"])
    page.mouse.move(point["x"] + 90, point["y"] + 90, steps=3)
    page.mouse.move(point["x"] + 1, point["y"] + 1, steps=3)
    tooltip = page.locator("#tooltip")
    expect(tooltip).to_be_visible()
    page.keyboard.press("Delete")  # the node goes from under the pointer
    assert "wan1" not in doc(page)["nodes"]
    expect(tooltip).to_be_hidden()


def test_a_refused_deploy_stops_saying_so_once_its_problems_are_fixed(editor):
    page = editor
    select_node(page, "h1")
    address = page.locator("#panel input[data-role=address][data-iface=eth0]")
    address.fill("10.0.1.300/24")
    address.press("Enter")
    saved(page)
    page.click("#btn-deploy")
    expect(page.locator("#deploy-status")).to_have_text("Fix the problems first")
    assert fits(page, "#deploy-status")
    assert page.evaluate("window.topolab.cy.getElementById('h1').hasClass('deploy-failed')")
    address.fill("10.0.1.3/24")
    address.press("Enter")
    saved(page)
    expect(page.locator("#problem-count")).to_have_text("0")
    expect(page.locator("#deploy-status")).to_have_text("Not deployed")
    assert not page.evaluate("window.topolab.cy.getElementById('h1').hasClass('deploy-failed')")
    assert not page.evaluate("window.topolab.cy.getElementById('h1').hasClass('has-error')")


def test_the_dock_takes_room_from_the_canvas_resizes_collapses_and_keeps_one_tab_per_node(editor, screenshot):
    page = editor
    full = rect(page, "#canvas")
    select_node(page, "h1")
    page.click("#btn-console")
    dock = page.locator("#term-dock")
    expect(dock).to_be_visible()
    canvas, docked = rect(page, "#canvas"), rect(page, "#term-dock")
    assert canvas["bottom"] <= docked["y"] + 1, (canvas, docked)  # the canvas ends where the dock starts
    assert canvas["height"] < full["height"]
    # every node the canvas shows is the canvas's to click, none is under the dock
    for name in ("wan", "r1", "br1", "h1", "h2"):
        p = centre(page, name)
        if canvas["y"] <= p["y"] <= canvas["bottom"]:
            assert page.evaluate("([x, y]) => Boolean(document.elementFromPoint(x, y).closest('#canvas'))",
                                 [p["x"], p["y"]]), name
    page.click("#btn-console")  # again: the same tab, not a second one
    expect(page.locator(".dock-tab[data-kind=console]")).to_have_count(1)

    handle = rect(page, ".dock-resize")
    page.mouse.move(handle["x"] + 200, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(handle["x"] + 200, handle["y"] - 100, steps=5)
    page.mouse.up()
    taller = rect(page, "#term-dock")
    assert abs(taller["height"] - docked["height"] - 100) < 6, (docked, taller)
    assert abs(rect(page, "#canvas")["bottom"] - taller["y"]) < 2

    page.click(".dock-collapse")
    expect(page.locator(".dock-bodies")).to_be_hidden()
    assert rect(page, "#term-dock")["height"] < 50
    assert rect(page, "#canvas")["height"] > taller["y"] - full["y"]

    page.click("#btn-deploy-log")  # the log is a tab of the dock too, never over the canvas
    expect(page.locator(".dock-tab[data-kind=log]")).to_be_visible()
    expect(page.locator("#deploy-log")).to_be_visible()
    assert rect(page, "#canvas")["bottom"] <= rect(page, "#term-dock")["y"] + 1
    double_click(page, "r1")
    box = rect(page, "#inline-rename")
    assert page.evaluate("([x, y]) => document.elementFromPoint(x, y).id",
                         [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2]) == "inline-rename"
    page.keyboard.press("Escape")
    screenshot(page, "editor-dock")


def test_the_capture_table_is_legible(editor):
    page = editor
    page.evaluate("() => { const cy = window.topolab.cy; cy.elements().unselect(); cy.getElementById('link-2').select(); }")
    page.click("#btn-capture")
    expect(page.locator(".dock-body.capture .packet-list")).to_be_visible()
    page.evaluate("""() => {
        const body = document.querySelector('.dock-body.capture .packet-list tbody');
        for (const proto of ['ICMP', 'ARP', 'TCP', 'UDP', 'DHCP', 'DNS', 'IPv6']) {
            const tr = document.createElement('tr');
            tr.dataset.proto = proto;
            tr.innerHTML = `<td>1</td><td>0.000001</td><td>10.0.1.1</td><td>10.0.1.254</td><td>${proto}</td><td>98</td><td>x</td>`;
            body.append(tr);
        }
    }""")
    assert contrast(page, ".dock-body.capture .packet-list th") >= 4.5
    for proto in ("ICMP", "ARP", "TCP", "UDP", "DHCP", "DNS", "IPv6"):
        ratio = contrast(page, f".dock-body.capture .packet-list tr[data-proto={proto}] td")
        assert ratio >= 4.5, (proto, ratio)


def test_an_invalid_inline_rename_says_why_on_enter_and_in_full_when_left(editor):
    page = editor
    double_click(page, "h1")
    page.fill("#inline-rename", "r1")
    page.keyboard.press("Enter")
    why = page.locator("#inline-rename-error")
    expect(why).to_be_visible()
    expect(why).to_contain_text("a node named r1 already exists")
    expect(page.locator("#inline-rename")).to_be_visible()  # still open, to fix
    page.fill("#inline-rename", "9lives")
    expect(why).to_contain_text("a letter, then up to 31 letters")
    page.fill("#inline-rename", "h2")
    page.locator("#panel").click(position={"x": 5, "y": 5})  # leave the box with a duplicate name
    notice = page.locator("#canvas-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("h1 was not renamed to “h2”: a node named h2 already exists")
    assert "h1" in doc(page)["nodes"]
    width = notice.evaluate("(el) => [el.scrollWidth, el.clientWidth]")
    assert width[0] <= width[1]  # in full, not cut


def test_a_routers_label_shows_its_lan_gateway_not_its_uplink(editor):
    label = editor.evaluate("window.topolab.cy.getElementById('r1').data('label')")
    assert "10.0.1.254/24" in label and "203.0.113.2" not in label, label


def test_a_link_from_a_node_to_itself_says_why_it_is_refused(editor):
    page = editor
    page.click("#btn-link")
    q = centre(page, "h2")
    page.mouse.click(q["x"], q["y"])  # a click is no attempt at a link: nothing to say
    page.wait_for_timeout(300)
    expect(page.locator("#canvas-notice")).to_be_hidden()
    p = centre(page, "h1")
    page.mouse.move(p["x"], p["y"])
    page.mouse.down()
    page.mouse.move(p["x"] + 60, p["y"] - 40, steps=5)
    page.mouse.move(p["x"] + 3, p["y"] + 2, steps=5)
    page.wait_for_timeout(150)
    page.mouse.up()
    expect(page.locator("#canvas-notice")).to_contain_text("h1 cannot be linked to itself")
    assert len(doc(page)["links"]) == 4


def deployed_by_a_run(lab) -> Run:
    """The rows a finished deploy leaves (no agent needed to look at them)."""
    run = Run.objects.create(lab=lab, kind="deploy", status="running")
    runs.record_event(lab.pk, run.pk, "run.started", kind="deploy", message="deploy started")
    runs.record_event(lab.pk, run.pk, "run.step", node="h1", step=1, total=2, message="create namespace")
    for node in LAN["nodes"]:
        runs.record_event(lab.pk, run.pk, "node.state", node=node, state="running")
    runs.set_deployed(lab.pk, True)
    runs.finish(run, version=lab.version, document=lab.document)
    return run


def test_deployed_means_no_undeployed_edits_and_the_log_shows_the_last_run_after_a_reload(page, login, user, lab):
    lab.document["nodes"]["h2"]["interfaces"]["eth0"]["address"] = "10.0.1.2/24"  # no lease to wait for
    lab.save()
    run = deployed_by_a_run(lab)
    assert LabState.objects.get(lab=lab).deployed
    login(page, "nelly", PASSWORD)
    open_editor(page, lab.pk)
    expect(page.locator("#deploy-status")).to_have_text("Deployed")
    page.click("#btn-deploy-log")
    lines = page.locator("#deploy-log-list li")
    expect(lines.first).to_have_text(f"deploy #{run.pk} started")
    expect(lines.filter(has_text="[1/2] h1: create namespace")).to_have_count(1)
    expect(lines.last).to_have_text("deploy finished")

    status = page.locator("#deploy-status")
    moved_from = doc(page)["nodes"]["h2"]["ui"]
    p = centre(page, "h2")  # moving a node is not an edit of what runs
    page.mouse.move(p["x"], p["y"])
    page.mouse.down()
    page.mouse.move(p["x"] + 30, p["y"] - 10, steps=5)
    page.mouse.move(p["x"] + 60, p["y"] - 20, steps=5)
    page.mouse.up()
    page.wait_for_function("(ui) => window.topolab.state.doc.nodes.h2.ui.x !== ui.x", arg=moved_from)
    saved(page)
    assert Lab.objects.get(pk=lab.pk).version > lab.version
    expect(status).to_have_text("Deployed")

    select_node(page, "h1")
    address = page.locator("#panel input[data-role=address][data-iface=eth0]")
    address.fill("10.0.1.9/24")
    address.press("Enter")
    saved(page)
    expect(status).to_have_text("Edits not deployed")
    assert fits(page, "#deploy-status")
    assert "you are editing version" in status.get_attribute("title")
    address.fill("10.0.1.1/24")  # back as deployed
    address.press("Enter")
    saved(page)
    expect(status).to_have_text("Deployed")
