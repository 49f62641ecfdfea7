"""Lab checks in real Chromium against real daphne and a real agent: an instructor publishes a template with checks,
two students start it; one completes the lab and one does not. The student's checks panel marks each check live and
highlights the nodes a failing one names, and hides the hidden check; "Check all" on the class dashboard shows 100%
for one and a partial score for the other; the CSV has both. Screenshots in var/artifacts/e2e/.
"""
from __future__ import annotations

import copy
import csv
import io
import json
import os
import time

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect
from rest_framework.test import APIClient
from support import lab_namespaces, wait_run

from webapp.accounts.models import Profile, Role
from webapp.classroom import services
from webapp.labs.models import Lab
from webapp.runs.models import Run

pytestmark = [pytest.mark.e2e, pytest.mark.kernel, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

if os.geteuid() != 0:
    pytest.skip("the agent needs root", allow_module_level=True)

PASSWORD = "correct horse battery"
CHECKS = [
    {"id": "reach", "title": "h1 reaches h2", "points": 2, "ping": {"from": "h1", "to": "h2"}},
    {"id": "route", "title": "h1 has a default route", "visibility": "title",
     "route": {"node": "h1", "to": "default", "via": "10.0.1.254"}},
    {"id": "gateway", "title": "h1 reaches its gateway", "ping": {"from": "h1", "to": "10.0.1.254"}},
    {"id": "secret", "title": "h2 routes through r1", "visibility": "hidden",
     "command": {"node": "h2", "run": ["ip", "route"], "output_matches": r"default via 10\.0\.2\.254"}},
]
# The assignment: h1 has no default route yet; the students add it.
DOC = {
    "version": 1, "name": "lab-2",
    "nodes": {
        "r1": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.1.254/24"},
                                                "eth1": {"address": "10.0.2.254/24"}},
               "ui": {"x": 300, "y": 200}},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}}, "ui": {"x": 120, "y": 200}},
        "h2": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.2.1/24"}},
               "routes": [{"to": "default", "via": "10.0.2.254"}], "ui": {"x": 480, "y": 200}},
    },
    "links": [{"endpoints": ["h1:eth0", "r1:eth0"]}, {"endpoints": ["r1:eth1", "h2:eth0"]}],
    "checks": CHECKS,
}


def wait_for(predicate, timeout: float = 120, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def deploy(user, lab: Lab) -> None:
    response = api(user).post(f"/api/labs/{lab.pk}/deploy")
    assert response.status_code == 202, response.content
    run = wait_run(response.json()["id"], timeout=180)
    assert run.status == "succeeded", run.error


def test_check_all_grades_a_class_one_complete_and_one_partial(page, browser, live_server_url, login, celery_worker,
                                                               kernel_lock, screenshot):
    User = get_user_model()
    irene = User.objects.create_user("irene", password=PASSWORD)
    Profile.objects.create(user=irene, role=Role.INSTRUCTOR)
    students = {}
    for name in ("alice", "bob"):
        students[name] = User.objects.create_user(name, password=PASSWORD)
        Profile.objects.create(user=students[name], role=Role.STUDENT)
    net101 = services.create_classroom(irene, "net101")
    net101.members.add(*students.values())
    source = Lab.objects.create(owner=irene, name="lab-2", document=DOC)

    # The instructor publishes her lab, checks and all, as a class template.
    login(page, "irene", PASSWORD)
    page.goto(f"/templates/new/?lab={source.pk}")
    page.fill("#id_title", "Lab 2: route to h2")
    page.select_option("#id_visibility", "class")
    page.check(f"input[name=classrooms][value='{net101.pk}']")
    with page.expect_navigation():
        page.click("#publish-form button[type=submit]")
    template = services.Template.objects.get(title="Lab 2: route to h2")
    assert [c["id"] for c in template.latest_version().document["checks"]] == ["reach", "route", "gateway", "secret"]

    labs = {name: services.start_lab(user, template) for name, user in students.items()}
    alice_context = browser.new_context(base_url=live_server_url, viewport={"width": 1280, "height": 800})
    alice_context.set_default_timeout(15_000)
    alice = alice_context.new_page()
    try:
        for name, lab in labs.items():
            deploy(students[name], lab)

        # Alice checks her lab before finishing it: red marks, h1 and h2 highlighted, the hidden check not shown.
        login(alice, "alice", PASSWORD)
        alice.goto(f"/labs/{labs['alice'].pk}/")
        panel = alice.locator("#checks-panel")
        expect(panel.locator(".check-item")).to_have_count(3)
        expect(panel).to_contain_text("1 more check is hidden by the instructor")
        expect(panel).not_to_contain_text("h2 routes through r1")
        alice.click("#btn-check")
        reach = panel.locator(".check-item[data-check=reach]")
        expect(reach).to_have_attribute("data-status", "failed", timeout=60_000)
        expect(reach).to_contain_text("h1 -> h2 (10.0.2.1): no reply")
        expect(panel.locator(".check-item[data-check=gateway]")).to_have_attribute("data-status", "passed")
        expect(panel.locator(".check-item[data-check=route]")).to_have_attribute("data-status", "failed")
        expect(panel.locator("#checks-score")).to_have_text("2/5 (40%)", timeout=30_000)
        marked = alice.evaluate("['h1', 'h2', 'r1'].map(n => window.topolab.cy.getElementById(n).hasClass('check-failed'))")
        assert marked == [True, True, False]
        screenshot(alice, "e2e/checks-student-before")

        # ... then completes it (h1's default route) and deploys again; the panel turns green.
        lab = labs["alice"]
        lab.refresh_from_db()
        document = copy.deepcopy(lab.document)
        document["nodes"]["h1"]["routes"] = [{"to": "default", "via": "10.0.1.254"}]
        response = api(students["alice"]).put(f"/api/labs/{lab.pk}/", {"version": lab.version, "document": document},
                                              format="json")
        assert response.status_code == 200, response.content
        deploy(students["alice"], lab)
        alice.reload()
        alice.click("#btn-check")
        expect(panel.locator("#checks-score")).to_have_text("5/5 (100%)", timeout=60_000)
        expect(panel.locator(".check-item[data-status=passed]")).to_have_count(3)
        assert alice.evaluate("window.topolab.cy.elements('.check-failed').length") == 0
        screenshot(alice, "e2e/checks-student-done")

        # The instructor grades the whole class in one click.
        page.goto(f"/classes/{net101.pk}/")
        page.click("#btn-check-all")
        expect(page.locator("#check-all-progress")).to_have_text("Checked 2 labs.", timeout=90_000)
        rows = page.locator("#scores-table tbody tr")
        expect(page.locator("#scores-table tr[data-owner=alice]")).to_have_attribute("data-percent", "100")
        expect(page.locator("#scores-table tr[data-owner=bob]")).to_have_attribute("data-percent", "40")
        expect(rows).to_have_count(2)
        bob_row = page.locator("#scores-table tr[data-owner=bob]")
        expect(bob_row.locator("td[data-check=reach]")).to_have_text("✗")
        expect(bob_row.locator("td[data-check=secret]")).to_have_text("✓")  # the instructor sees every check
        expect(page.locator("#scores-table thead")).to_contain_text("h2 routes through r1")
        screenshot(page, "e2e/checks-class-dashboard")
        assert Run.objects.filter(kind="check", status="succeeded").count() == 4  # alice twice, and check all

        with page.expect_download() as download:
            page.click("#btn-scores-csv")
        table = list(csv.reader(io.StringIO(open(download.value.path()).read())))
        assert table[0][-4:] == ["reach", "route", "gateway", "secret"]
        scores = {row[0]: row for row in table[1:]}
        assert scores["alice"][4:7] == ["5", "5", "100.0"] and scores["bob"][4:7] == ["2", "5", "40.0"]
        assert scores["bob"][-4:] == ["0", "0", "1", "1"]
    finally:
        alice_context.close()
        from netops import engine

        for lab in labs.values():
            if lab_namespaces(lab.lab_id):
                engine.down(lab.lab_id)


def test_the_owner_edits_checks_in_the_panel_and_problems_name_their_path(page, login, screenshot):
    """No agent needed: the checks are part of the document, edited in the panel, validated like the rest."""
    User = get_user_model()
    User.objects.create_user("olga", password=PASSWORD)
    doc = {k: v for k, v in copy.deepcopy(DOC).items() if k != "checks"}
    lab = Lab.objects.create(owner=User.objects.get(username="olga"), name="lab-2", document=doc)
    login(page, "olga", PASSWORD)
    page.goto(f"/labs/{lab.pk}/")
    panel = page.locator("#checks-panel")
    expect(panel).to_contain_text("No checks")
    expect(page.locator("#btn-check")).to_be_disabled()
    page.click("#btn-checks-edit")
    bad = [{"id": "reach", "title": "h1 reaches h2", "ping": {"from": "h9", "to": "h2"}}]
    page.fill("#checks-editor", json.dumps(bad))
    page.click("#btn-checks-apply")
    expect(page.locator("#save-status")).to_have_text("Saved", timeout=10_000)
    problem = page.locator("#problem-list [data-path='checks.0.ping.from']")
    expect(problem).to_be_visible()
    expect(problem).to_contain_text("unknown node 'h9'")
    page.click("#btn-checks-edit")
    page.fill("#checks-editor", json.dumps(CHECKS))
    page.click("#btn-checks-apply")
    expect(page.locator("#problem-count")).to_have_text("0", timeout=10_000)
    expect(panel.locator(".check-item")).to_have_count(4)
    panel.locator(".check-item[data-check=reach] .check-visibility").select_option("hidden")
    expect(page.locator("#save-status")).to_have_text("Saved", timeout=10_000)
    wait_for(lambda: Lab.objects.get(pk=lab.pk).document["checks"][0].get("visibility") == "hidden",
             what="the visibility saved")
    panel.locator(".check-item[data-check=gateway] .check-remove").click()
    expect(panel.locator(".check-item")).to_have_count(3)
    wait_for(lambda: [c["id"] for c in Lab.objects.get(pk=lab.pk).document["checks"]] == ["reach", "route", "secret"],
             what="the removal saved")
    expect(page.locator("#btn-check")).to_be_enabled()
    screenshot(page, "e2e/checks-owner-editing")
