"""FRR in real Chromium: a router's panel edits OSPF into the document, Deploy, "FRR (vtysh)" opens r1's vtysh and
shows its OSPF neighbor Full; screenshot."""
from __future__ import annotations

import os
import time

import pytest
from django.contrib.auth import get_user_model
from e2e.editor_page import drop, wire
from playwright.sync_api import expect

from netops import procs
from webapp.labs.models import Lab

pytestmark = [pytest.mark.e2e, pytest.mark.kernel, pytest.mark.django_db(transaction=True)]

if os.geteuid() != 0:
    pytest.skip("the agents need root", allow_module_level=True)

PASSWORD = "correct horse battery"
DOC = {
    "version": 1, "name": "e2e-frr",
    "nodes": {
        "r1": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.12.1/30"}}, "ui": {"x": 250, "y": 200}},
        "r2": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.12.2/30"}},
               "routing": {"ospf": {"areas": {0: {"interfaces": ["eth0"]}}, "hello": 1, "dead": 4}},
               "ui": {"x": 550, "y": 200}},
    },
    "links": [{"endpoints": ["r1:eth0", "r2:eth0"]}],
}
NODE_CENTRE = """(name) => {
    const n = window.topolab.cy.getElementById(name);
    const p = n.renderedPosition();
    const r = window.topolab.cy.container().getBoundingClientRect();
    return {x: r.left + p.x, y: r.top + p.y};
}"""


def click_node(page, name: str) -> None:
    point = page.evaluate(NODE_CENTRE, name)
    page.mouse.click(point["x"], point["y"])


def doc(page) -> dict:
    return page.evaluate("window.topolab.state.doc")


def test_ospf_from_the_panel_then_vtysh_on_r1_shows_the_neighbor_full(page, login, screenshot, celery_worker,
                                                                      stream_agent, kernel_lock):
    from netops import engine

    user = get_user_model().objects.create_user("frieda", password=PASSWORD)
    lab = Lab.objects.create(owner=user, name="e2e-frr", document=DOC)
    login(page, "frieda", PASSWORD)
    page.goto(f"/labs/{lab.pk}/")
    page.wait_for_function("window.topolab && window.topolab.deploy && window.topolab.consoles")
    try:
        # r1's panel: loopback, eth0 in area 0, timers, and lo passive in area 0
        click_node(page, "r1")
        page.fill("#panel input[data-role=loopback]", "10.255.0.1/32")
        page.locator("#panel input[data-role=loopback]").press("Enter")
        page.fill("#panel input[data-role=ospf-area][data-iface=eth0]", "0")
        page.locator("#panel input[data-role=ospf-area][data-iface=eth0]").press("Enter")
        page.locator("#panel input[data-role=ospf-hello]").fill("1")
        page.locator("#panel input[data-role=ospf-hello]").press("Enter")
        page.locator("#panel input[data-role=ospf-dead]").fill("4")
        page.locator("#panel input[data-role=ospf-dead]").press("Enter")
        page.fill("#panel input[data-role=ospf-area][data-iface=lo]", "0")
        page.check("#panel input[data-role=ospf-passive][data-iface=lo]")
        expect(page.locator("#save-status")).to_have_text("Saved", timeout=10_000)
        expect(page.locator("#problem-count")).to_have_text("0")
        routing = doc(page)["nodes"]["r1"]["routing"]
        assert routing["loopback"] == "10.255.0.1/32"
        assert routing["ospf"]["areas"] == {"0": {"interfaces": ["eth0"], "passive": ["lo"]}}
        assert routing["ospf"]["hello"] == 1 and routing["ospf"]["dead"] == 4
        # a bad ASN is shown at its field
        page.fill("#panel input[data-role=bgp-asn]", "0")
        page.locator("#panel input[data-role=bgp-asn]").press("Enter")
        expect(page.locator("#panel .field.invalid .field-error")).to_contain_text("out of range", timeout=10_000)
        page.fill("#panel input[data-role=bgp-asn]", "")
        page.locator("#panel input[data-role=bgp-asn]").press("Enter")
        expect(page.locator("#problem-count")).to_have_text("0", timeout=10_000)

        page.click("#btn-deploy")
        page.wait_for_function(
            "() => window.topolab.cy.nodes().every((n) => n.data('deployState') === 'running')", timeout=60_000)
        click_node(page, "r1")
        page.click("#btn-vtysh")
        terminal = page.locator(".term-screen[data-node=r1]")
        expect(terminal.locator(".xterm-rows")).to_contain_text("r1#", timeout=20_000)
        deadline = time.monotonic() + 20
        while True:
            terminal.click()
            page.keyboard.type("show ip ospf neighbor\n")
            try:
                expect(terminal.locator(".xterm-rows")).to_contain_text("Full", timeout=2_000)
                break
            except AssertionError:
                assert time.monotonic() < deadline, terminal.inner_text()
        expect(terminal.locator(".xterm-rows")).to_contain_text("10.0.12.2")
        screenshot(page, "frr-vtysh")
        page.locator(".dock-tab[data-kind=console] .dock-close").click()
        deadline = time.monotonic() + 15
        while [p for p in procs.find(lab.lab_id) if p.role.startswith("console:")]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        engine.down(lab.lab_id)
    assert procs.find(lab.lab_id) == []


TRIANGLE = {
    "version": 1, "name": "e2e-triangle",
    "nodes": {
        "r1": {"kind": "router", "interfaces": {"eth0": {}, "eth1": {}}, "ui": {"x": 300, "y": 120}},
        "r2": {"kind": "router", "interfaces": {"eth0": {}, "eth1": {}}, "ui": {"x": 180, "y": 330}},
        "r3": {"kind": "router", "interfaces": {"eth0": {}, "eth1": {}}, "ui": {"x": 420, "y": 330}},
    },
    "links": [{"endpoints": ["r1:eth0", "r2:eth0"]}, {"endpoints": ["r1:eth1", "r3:eth0"]},
              {"endpoints": ["r2:eth1", "r3:eth1"]}],
}


def test_address_the_lab_ospf_everywhere_deploy_and_vtysh_shows_both_neighbors(page, login, screenshot,
                                                                               celery_worker, stream_agent,
                                                                               kernel_lock):
    from netops import engine

    user = get_user_model().objects.create_user("otto", password=PASSWORD)
    lab = Lab.objects.create(owner=user, name="e2e-triangle",
                             document={"version": 1, "name": "e2e-triangle", "nodes": {}, "links": []})
    login(page, "otto", PASSWORD)
    page.goto(f"/labs/{lab.pk}/")
    page.wait_for_function("window.topolab && window.topolab.deploy && window.topolab.consoles")
    try:
        # drawn with the mouse: three routers from the palette, wired into a triangle
        for x, y in ((300, 120), (180, 330), (420, 330)):
            drop(page, "router", x, y)
        page.click("#btn-link")
        for a, b in (("r1", "r2"), ("r1", "r3"), ("r2", "r3")):
            wire(page, a, b)
        page.keyboard.press("Escape")
        drawn = doc(page)
        assert {n: sorted(v["interfaces"]) for n, v in drawn["nodes"].items()} == \
            {n: sorted(v["interfaces"]) for n, v in TRIANGLE["nodes"].items()}
        assert [lk["endpoints"] for lk in drawn["links"]] == [lk["endpoints"] for lk in TRIANGLE["links"]]
        page.locator("#canvas").click(position={"x": 20, "y": 20})  # nothing selected: the lab's panel
        page.click("#btn-address-lab")
        page.click("#btn-ospf-everywhere")
        d = doc(page)
        assert all(d["nodes"][r]["interfaces"][i]["address"].endswith("/31") for r in ("r1", "r2", "r3")
                   for i in ("eth0", "eth1"))
        assert d["nodes"]["r1"]["routing"]["ospf"]["areas"]["0"] == {"interfaces": ["eth0", "eth1"], "passive": ["lo"]}
        page.keyboard.press("Control+z")  # undo takes OSPF back off, the addresses stay
        assert "ospf" not in doc(page)["nodes"]["r1"]["routing"]
        page.keyboard.press("Control+Shift+z")
        assert "ospf" in doc(page)["nodes"]["r1"]["routing"]
        expect(page.locator("#save-status")).to_have_text("Saved", timeout=10_000)
        expect(page.locator("#problem-count")).to_have_text("0")

        page.click("#btn-deploy")
        page.wait_for_function(
            "() => window.topolab.cy.nodes().every((n) => n.data('deployState') === 'running')", timeout=60_000)
        click_node(page, "r1")
        page.click("#btn-vtysh")
        terminal = page.locator(".term-screen[data-node=r1]")
        expect(terminal.locator(".xterm-rows")).to_contain_text("r1#", timeout=20_000)
        deadline = time.monotonic() + 60  # default timers (hello 10 s): adjacencies take a few hellos
        while True:
            terminal.click()
            page.keyboard.type("show ip ospf neighbor\n")
            time.sleep(2)
            if terminal.locator(".xterm-rows").inner_text().count("Full/") >= 2:
                break
            assert time.monotonic() < deadline, terminal.inner_text()
        screenshot(page, "frr-triangle-vtysh")
    finally:
        engine.down(lab.lab_id)
    assert procs.find(lab.lab_id) == []


def routed_triangle() -> dict:
    """The triangle addressed, OSPF area 0 with lab timers and a loopback on each router, and r4 an eBGP peer of r1
    (AS 65004 announcing its loopback)."""
    doc = {"version": 1, "name": "e2e-routing-panel", "nodes": {}, "links": []}
    addresses = {"r1": ("10.0.12.1/30", "10.0.13.1/30"), "r2": ("10.0.12.2/30", "10.0.23.1/30"),
                 "r3": ("10.0.13.2/30", "10.0.23.2/30")}
    where = {"r1": (300, 120), "r2": (180, 330), "r3": (420, 330)}
    for i, (name, (a, b)) in enumerate(addresses.items(), 1):
        doc["nodes"][name] = {
            "kind": "router", "ui": {"x": where[name][0], "y": where[name][1]},
            "interfaces": {"eth0": {"address": a}, "eth1": {"address": b}},
            "routing": {"loopback": f"10.255.0.{i}/32",
                        "ospf": {"areas": {0: {"interfaces": ["eth0", "eth1"], "passive": ["lo"]}},
                                 "hello": 1, "dead": 4}}}
    r1 = doc["nodes"]["r1"]
    r1["interfaces"]["eth2"] = {"address": "198.51.100.1/30"}
    r1["routing"]["bgp"] = {"asn": 65001, "neighbors": [{"address": "198.51.100.2", "asn": 65004}],
                            "redistribute": ["ospf"]}
    doc["nodes"]["r4"] = {"kind": "router", "ui": {"x": 560, "y": 120},
                          "interfaces": {"eth0": {"address": "198.51.100.2/30"}},
                          "routing": {"loopback": "10.255.4.4/32",
                                      "bgp": {"asn": 65004, "neighbors": [{"address": "198.51.100.1", "asn": 65001}],
                                              "networks": ["10.255.4.4/32"]}}}
    doc["links"] = [{"endpoints": ["r1:eth0", "r2:eth0"]}, {"endpoints": ["r1:eth1", "r3:eth0"]},
                    {"endpoints": ["r2:eth1", "r3:eth1"]}, {"endpoints": ["r1:eth2", "r4:eth0"]}]
    return doc


EDGE_CENTRE = """(index) => {
    const e = window.topolab.cy.getElementById(`link-${index}`);
    const p = e.renderedMidpoint();
    const r = window.topolab.cy.container().getBoundingClientRect();
    return {x: r.left + p.x, y: r.top + p.y};
}"""


def test_the_router_panel_shows_routes_and_full_neighbors_and_the_links_mark_up_adjacencies(
        page, login, screenshot, celery_worker, stream_agent, kernel_lock):
    from netops import engine

    user = get_user_model().objects.create_user("rosa", password=PASSWORD)
    lab = Lab.objects.create(owner=user, name="e2e-routing-panel", document=routed_triangle())
    login(page, "rosa", PASSWORD)
    page.goto(f"/labs/{lab.pk}/")
    page.wait_for_function("window.topolab && window.topolab.deploy")
    try:
        click_node(page, "r1")
        expect(page.locator("#panel [data-role=routing-live-hint]")).to_contain_text("Deploy the lab")
        page.click("#btn-deploy")
        page.wait_for_function(
            "() => window.topolab.cy.nodes().every((n) => n.data('deployState') === 'running')", timeout=90_000)

        # the canvas: the three OSPF links green with an OSPF badge, r1-r4 violet with BGP, and the legend
        page.wait_for_function("""() => {
            const cy = window.topolab.cy;
            // the link turns BGP with the first end whose session is up: wait for r1's side too (CI once read
            // the lines between r4's session and r1's)
            return [0, 1, 2].every((i) => cy.getElementById(`link-${i}`).hasClass('adj-ospf'))
                && cy.getElementById('link-3').hasClass('adj-bgp')
                && (cy.getElementById('link-3').data('adjacency') || [])
                    .some((line) => line.includes('BGP Established with 198.51.100.2'));
        }""", timeout=60_000)
        edges = page.evaluate("""() => window.topolab.cy.edges().map((e) => ({
            index: e.data('index'), classes: e.classes(), label: e.data('adjLabel'),
            color: e.style('line-color'), lines: e.data('adjacency')}))""")
        by_index = {e["index"]: e for e in edges}
        for i in (0, 1, 2):
            assert by_index[i]["label"] == "OSPF" and "adj-bgp" not in by_index[i]["classes"], by_index[i]
            assert by_index[i]["color"] == "rgb(22,163,74)"
        assert by_index[3]["label"] == "BGP" and "adj-ospf" not in by_index[3]["classes"]
        assert by_index[3]["color"] == "rgb(124,58,237)"
        assert any("BGP Established with 198.51.100.2" in line for line in by_index[3]["lines"]), by_index[3]
        legend = page.locator("#adjacency-legend")
        expect(legend).to_be_visible()
        expect(legend).to_contain_text("OSPF Full")
        expect(legend).to_contain_text("BGP Established")
        # the tooltip of r1-r2 says who is Full with whom
        page.locator("#canvas").click(position={"x": 5, "y": 5})
        point = page.evaluate(EDGE_CENTRE, 0)
        page.mouse.move(point["x"], point["y"])
        expect(page.locator("#tooltip")).to_contain_text("OSPF Full/", timeout=5_000)
        expect(page.locator("#tooltip")).to_contain_text("with 10.255.0.2")

        # r1's panel: both OSPF neighbors Full, the BGP session Established, the others' loopbacks in its table
        click_node(page, "r1")
        live = page.locator("#panel [data-role=routing-live]")
        expect(live).to_be_visible(timeout=10_000)
        deadline = time.monotonic() + 30
        while True:
            rows = live.locator("[data-role=ospf-neighbors] tbody tr")
            prefixes = live.locator("[data-role=routes] tbody tr[data-protocol=ospf]").evaluate_all(
                "(rows) => rows.map((r) => r.dataset.prefix)")
            if (rows.count() == 2 and live.locator("[data-role=ospf-neighbors] .nbr-state.up").count() == 2
                    and {"10.255.0.2/32", "10.255.0.3/32"} <= set(prefixes)
                    and live.locator("[data-role=bgp-sessions] .nbr-state.up").count() == 1
                    and live.locator("[data-role=routes] tr[data-prefix='10.255.4.4/32'][data-protocol=bgp]").count()
                    # the shortest path, once SPF has r1-r2 (a moment after both are Full it may still go via r3)
                    and "10.0.12.2 (eth0)" in live.locator(
                        "[data-role=routes] tr[data-prefix='10.255.0.2/32'][data-protocol=ospf]").inner_text()):
                break
            assert time.monotonic() < deadline, live.inner_text()
            live.locator("[data-role=routing-refresh]").click()
            expect(live.locator("[data-role=routing-live-when]")).not_to_contain_text("asking again", timeout=20_000)
        neighbors = live.locator("[data-role=ospf-neighbors]").inner_text()
        assert "10.255.0.2" in neighbors and "10.255.0.3" in neighbors and "Full/" in neighbors
        session = live.locator("[data-role=bgp-sessions] tr[data-peer='198.51.100.2']").inner_text()
        assert "65004" in session and "Established" in session
        via = live.locator("[data-role=routes] tr[data-prefix='10.255.0.2/32'][data-protocol=ospf]").inner_text()
        assert "10.0.12.2 (eth0)" in via and "O>*" in via
        expect(live.locator("[data-role=routing-live-when]")).to_contain_text("routes")
        live.scroll_into_view_if_needed()
        screenshot(page, "frr-routing-panel")
        # r2's panel asks r2's own FRR: its two neighbors, r1 among them
        click_node(page, "r2")
        live2 = page.locator("#panel [data-role=routing-live][data-node=r2]")
        expect(live2.locator("[data-role=ospf-neighbors] tbody tr")).to_have_count(2, timeout=20_000)
        expect(live2.locator("[data-role=ospf-neighbors]")).to_contain_text("10.255.0.1")
    finally:
        engine.down(lab.lab_id)
    assert procs.find(lab.lab_id) == []
