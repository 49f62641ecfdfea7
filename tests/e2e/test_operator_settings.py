"""Operator settings in Chromium, against daphne as `make run` starts it (DEBUG off): every static file of the
editor loads (ours and /static/vendor/ from node_modules), an error page shows no traceback, and the editor says
which version runs when it is not the one being edited."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from webapp.labs.models import Lab
from webapp.runs import services as run_services

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

DOC = {"version": 1, "name": "v", "nodes": {"h1": {"kind": "host"}}, "links": []}


@pytest.fixture
def dora(login, page):
    user = get_user_model().objects.create_user("dora", password="correct horse battery")
    login(page, "dora", "correct horse battery")
    return user


def test_with_debug_off_every_static_file_of_the_editor_loads(page, dora):
    lab = Lab.objects.create(owner=dora, name="static", document=DOC)
    statics: dict[str, int] = {}
    page.on("response", lambda r: statics.__setitem__(r.url, r.status) if "/static/" in r.url else None)
    page.goto(f"/labs/{lab.pk}/")
    page.wait_for_selector("#editor[data-ready=true]")
    page.wait_for_load_state("networkidle")
    vendor = [u for u in statics if "/static/vendor/" in u]
    ours = [u for u in statics if "/static/js/" in u or "/static/css/" in u]
    assert vendor and ours, statics
    assert {u: s for u, s in statics.items() if s not in (200, 304)} == {}


def test_an_error_page_shows_no_traceback_and_no_url_list(page, dora):
    response = page.goto("/labs/999999/")
    assert response.status == 404
    text = page.content()
    assert "Traceback" not in text and "URLconf" not in text and "api/labs" not in text
    response = page.goto("/static/js/editor/no-such-file.js")
    assert response.status == 404 and "Traceback" not in page.content()


def test_the_editor_says_which_version_runs_while_another_is_edited(page, dora, screenshot):
    lab = Lab.objects.create(owner=dora, name="versions", document=DOC, version=3)
    page.goto(f"/labs/{lab.pk}/")
    page.wait_for_selector("#editor[data-ready=true]")
    assert page.locator("#deploy-versions").is_hidden()  # nothing deployed: nothing to compare
    run_services.set_deployed(lab.pk, True, DOC, 1)
    page.reload()
    page.wait_for_selector("#editor[data-ready=true]")
    line = page.locator("#deploy-versions")
    line.wait_for(state="visible")
    assert line.inner_text() == "deployed: version 1, editing: version 3"
    screenshot(page, "e2e/versions-line")
    run_services.set_deployed(lab.pk, True, DOC, 3)
    page.reload()
    page.wait_for_selector("#editor[data-ready=true]")
    assert page.locator("#deploy-versions").is_hidden()


def test_a_students_docker0_uplink_shows_on_the_canvas_and_deploy_is_refused(page, dora, screenshot):
    doc = {"version": 1, "name": "up", "links": [{"endpoints": ["r1:eth0", "wan"]}],
           "nodes": {"r1": {"kind": "router", "interfaces": {"eth0": {"address": "203.0.113.2/24"}},
                            "ui": {"x": 100, "y": 100}},
                     "wan": {"kind": "external", "bridge": "docker0", "ui": {"x": 300, "y": 100}}}}
    lab = Lab.objects.create(owner=dora, name="uplink", document=doc)
    page.goto(f"/labs/{lab.pk}/")
    page.wait_for_selector("#editor[data-ready=true]")
    problems = page.locator("#problem-list li")
    problems.first.wait_for()
    assert "'docker0' is not a bridge labs may use on this server" in problems.first.inner_text()
    page.click("#btn-deploy")
    page.locator("#deploy-status[data-state=error]").wait_for()
    screenshot(page, "e2e/docker0-refused")
    from webapp.runs.models import Run

    assert not Run.objects.filter(lab=lab).exists()


@pytest.fixture(scope="module")
def bridges_server(daphne_with):
    """A second daphne whose operator allows the host bridges br-lab and br-e2e (TOPOLAB_UPLINK_BRIDGES)."""
    with daphne_with("daphne-bridges", TOPOLAB_UPLINK_BRIDGES="br-lab,br-e2e") as url:
        yield url


def test_the_external_panel_offers_the_bridges_the_operator_allows(browser, bridges_server, screenshot):
    from webapp.accounts.models import Profile, Role

    user = get_user_model().objects.create_user("ivy", password="correct horse battery")
    Profile.objects.create(user=user, role=Role.INSTRUCTOR)
    doc = {"version": 1, "name": "panel", "links": [],
           "nodes": {"wan": {"kind": "external", "bridge": "br-lab", "ui": {"x": 200, "y": 200}}}}
    lab = Lab.objects.create(owner=user, name="panel", document=doc)
    context = browser.new_context(base_url=bridges_server, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        page.goto("/accounts/login/")
        page.fill("#id_username", "ivy")
        page.fill("#id_password", "correct horse battery")
        with page.expect_navigation():
            page.click("button[type=submit]")
        page.goto(f"/labs/{lab.pk}/")
        page.wait_for_selector("#editor[data-ready=true]")
        assert page.locator("#problem-list li.empty").count() == 1  # br-lab is allowed for an instructor
        page.evaluate("() => window.topolab.cy.getElementById('wan').select()")
        options = page.locator("datalist[data-role=uplink-bridges] option")
        options.first.wait_for(state="attached")
        assert [options.nth(i).get_attribute("value") for i in range(options.count())] == ["br-lab", "br-e2e"]
        assert "Allowed on this server: br-lab, br-e2e" in page.locator("#panel").inner_text()
        screenshot(page, "e2e/external-panel-bridges")
    finally:
        context.close()
