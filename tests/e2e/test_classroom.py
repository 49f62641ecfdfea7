"""A class in real Chromium against real daphne and a real agent: an instructor publishes a template and makes an
invite code, a student signs up with it, starts the lab, deploys it and sees it running; the instructor sees it
on the class dashboard and destroys it; nothing is left in the kernel.
"""
from __future__ import annotations

import os
import time

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect
from support import lab_namespaces

from webapp.accounts.models import Profile, Role
from webapp.classroom import services
from webapp.labs.models import Lab
from webapp.runs.models import Run

pytestmark = [pytest.mark.e2e, pytest.mark.kernel, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

if os.geteuid() != 0:
    pytest.skip("the agent needs root", allow_module_level=True)

PASSWORD = "correct horse battery"
DOC = {
    "version": 1, "name": "lab-1",
    "nodes": {
        "r1": {"kind": "router", "interfaces": {"eth0": {"address": "10.0.1.254/24"}}},
        "br-in": {"kind": "bridge"},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}},
               "routes": [{"to": "default", "via": "10.0.1.254"}]},
    },
    "links": [{"endpoints": ["r1:eth0", "br-in"]}, {"endpoints": ["h1:eth0", "br-in"]}],
}
INSTRUCTIONS = "# Lab 1\n\nPing **r1** from h1.\n\n<script>window.owned = true</script>\n"


def wait_for(predicate, timeout: float = 90, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_student_signs_up_starts_the_template_and_runs_it(page, browser, live_server_url, login, celery_worker,
                                                            kernel_lock, screenshot):
    irene = get_user_model().objects.create_user("irene", password=PASSWORD)
    Profile.objects.create(user=irene, role=Role.INSTRUCTOR)
    net101 = services.create_classroom(irene, "net101")
    source = Lab.objects.create(owner=irene, name="lab-1", document=DOC)

    # The instructor publishes her lab as a class template, with instructions.
    login(page, "irene", PASSWORD)
    page.goto(f"/templates/new/?lab={source.pk}")
    page.fill("#id_title", "Lab 1: ping your router")
    page.fill("#id_instructions", INSTRUCTIONS)
    page.select_option("#id_visibility", "class")
    page.check(f"input[name=classrooms][value='{net101.pk}']")
    with page.expect_navigation():
        page.click("#publish-form button[type=submit]")
    expect(page.locator("main h1").first).to_have_text("Lab 1: ping your router")

    # ... and makes an invite code on the class dashboard.
    page.goto(f"/classes/{net101.pk}/")
    with page.expect_navigation():
        page.click("#btn-new-invite")
    code = page.locator("#invite-codes .invite-code").first.inner_text().strip()
    assert code

    # A student signs up with it, starts the lab and lands in the editor, instructions beside the canvas.
    student_context = browser.new_context(base_url=live_server_url, viewport={"width": 1280, "height": 800})
    student_context.set_default_timeout(15_000)
    student = student_context.new_page()
    lab = None
    try:
        student.goto(f"/accounts/signup/?code={code}")
        expect(student.locator("#id_code")).to_have_value(code)
        student.fill("#id_username", "sam")
        student.fill("#id_password1", "a-Long-passphrase-9")
        student.fill("#id_password2", "a-Long-passphrase-9")
        with student.expect_navigation():
            student.click("button[type=submit]")
        assert student.url.endswith("/templates/")
        with student.expect_navigation():
            student.click("#templates button:has-text('Start lab')")
        assert "/labs/" in student.url
        lab = Lab.objects.get(owner__username="sam")
        assert lab.lab_id != source.lab_id
        panel = student.locator("#lab-instructions")
        expect(panel).to_contain_text("Ping r1 from h1")
        expect(panel).to_contain_text("<script>window.owned = true</script>")  # shown as text
        assert student.evaluate("window.owned") is None

        # Deploy: the editor's Deploy button when the deploy pipeline's UI is there, else the API.
        if student.locator("#btn-deploy").count():
            student.click("#btn-deploy")
            expect(student.locator("#deploy-status")).to_contain_text("Deployed", timeout=90_000)
        else:
            status = student.evaluate("""async (pk) => {
                const csrf = document.cookie.split('; ').find(c => c.startsWith('csrftoken=')).split('=')[1];
                const r = await fetch(`/api/labs/${pk}/deploy/`, {method: 'POST',
                    headers: {'X-CSRFToken': csrf}, credentials: 'same-origin'});
                return r.status;
            }""", lab.pk)
            assert status == 202
        wait_for(lambda: Run.objects.filter(lab=lab, kind="deploy", status="succeeded").exists(), what="deploy")
        assert lab_namespaces(lab.lab_id), "the deploy left nothing in the kernel"
        screenshot(student, "e2e/classroom-student-deployed")

        # The instructor sees it running on the dashboard, opens it read-only, and destroys it.
        page.goto(f"/classes/{net101.pk}/")
        row = page.locator(f"#class-labs tr[data-lab='{lab.pk}']")
        expect(row).to_have_attribute("data-state", "running")
        expect(row).to_contain_text("sam")
        page.goto(f"/labs/{lab.pk}/")
        expect(page.locator("#editor")).to_have_attribute("data-editable", "false")
        page.goto(f"/classes/{net101.pk}/")
        with page.expect_navigation():
            row.locator("button:has-text('Destroy')").click()
        wait_for(lambda: Run.objects.filter(lab=lab, kind="destroy", status="succeeded").exists(), what="destroy")
        assert lab_namespaces(lab.lab_id) == []
        page.goto(f"/classes/{net101.pk}/")
        expect(page.locator(f"#class-labs tr[data-lab='{lab.pk}']")).to_have_attribute("data-state", "stopped")
    finally:
        student_context.close()
        if lab is not None and lab_namespaces(lab.lab_id):
            from netops import engine

            engine.down(lab.lab_id)
