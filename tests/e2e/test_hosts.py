"""Host badges in Chromium (issue 13, part 2): a lab whose last deploy ran across hosts shows each node's host
under it, on that host's colour, with a toolbar toggle; a lab on one host shows neither. The run across hosts is
stored as the agents store it (the deploy itself is tested against simulated hosts elsewhere): this tests what the
user sees of it."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from webapp.labs.models import Lab
from webapp.runs import services as run_services
from webapp.runs.models import Run

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ETH0 = {"interfaces": {"eth0": {}}}
DOC = {"version": 1, "name": "hosts", "nodes": {
    "sw": {"kind": "bridge", "ui": {"x": 300, "y": 160}},
    "h1": {"kind": "host", **ETH0, "ui": {"x": 160, "y": 320}},
    "h2": {"kind": "host", **ETH0, "ui": {"x": 300, "y": 320}},
    "h3": {"kind": "host", **ETH0, "ui": {"x": 440, "y": 320}},
}, "links": [{"endpoints": [f"h{i}:eth0", "sw"]} for i in (1, 2, 3)]}
PLACEMENT = {"h1": "lab-a", "h2": "lab-b", "h3": "lab-b"}
BADGES = """() => Object.fromEntries(window.topolab.cy.nodes().map((n) =>
  [n.id(), n.hasClass('on-host') ? [n.data('host'), n.style('text-background-color'), n.style('label')] : null]))"""


@pytest.fixture
def hana(login, page):
    user = get_user_model().objects.create_user("hana", password="correct horse battery")
    login(page, "hana", "correct horse battery")
    return user


def _deployed_across_hosts(lab: Lab) -> None:
    Run.objects.create(lab=lab, kind=Run.Kind.DEPLOY, status=Run.Status.SUCCEEDED, document=DOC, lab_version=1,
                       span={"placement": PLACEMENT, "underlays": {"lab-a": "100.64.0.1", "lab-b": "100.64.0.2"},
                             "vnis": {"sw": 4096}, "mtu": 1450},
                       parts={"lab-a": {"status": "succeeded"}, "lab-b": {"status": "succeeded"}})
    run_services.set_deployed(lab.pk, True, DOC, 1)


def test_each_node_shows_its_host_on_the_hosts_colour_and_the_toggle_hides_them(page, hana, screenshot):
    lab = Lab.objects.create(owner=hana, name="hosts", document=DOC)
    _deployed_across_hosts(lab)
    page.goto(f"/labs/{lab.pk}/")
    page.wait_for_selector("#editor[data-ready=true]")
    toggle = page.locator("#btn-hosts")
    toggle.wait_for(state="visible")
    page.wait_for_function("() => window.topolab.cy.nodes('.on-host').length === 3")
    badges = page.evaluate(BADGES)
    assert badges["sw"] is None  # a switch runs wherever its ports are: no badge
    assert {n: b[0] for n, b in badges.items() if b} == PLACEMENT
    assert badges["h2"][1] == badges["h3"][1] != badges["h1"][1]  # one colour per host
    assert badges["h1"][2] == "h1\n\u2302 lab-a"
    screenshot(page, "e2e/host-badges")
    toggle.click()
    assert toggle.get_attribute("aria-pressed") == "false"
    page.wait_for_function("() => window.topolab.cy.nodes('.on-host').length === 0")
    toggle.click()
    page.wait_for_function("() => window.topolab.cy.nodes('.on-host').length === 3")


def test_a_lab_on_one_host_shows_no_badges_and_no_toggle(page, hana):
    lab = Lab.objects.create(owner=hana, name="one", document=DOC)
    run_services.set_deployed(lab.pk, True, DOC, 1)
    page.goto(f"/labs/{lab.pk}/")
    page.wait_for_selector("#editor[data-ready=true]")
    page.wait_for_function("() => window.topolab.deploy?.state.deployed === true")  # the snapshot has come
    assert page.locator("#btn-hosts").is_hidden()
    assert page.evaluate("() => window.topolab.cy.nodes('.on-host').length") == 0
