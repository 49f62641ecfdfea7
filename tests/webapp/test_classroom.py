"""Classes, invite codes, sign-up, templates (publish, visibility, versions, Start lab), instructions, dashboard.

People: irene instructs net101 with students alice and bob; ivan instructs net202; oscar is in no class.
"""
from __future__ import annotations

import os
import re
import subprocess
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient
from support import KERNEL_LOCK, lab_namespaces, wait_run

from webapp.accounts.models import Profile, Role
from webapp.classroom import services
from webapp.classroom.models import InviteCode, LabOrigin, Template, Visibility
from webapp.labs.models import Lab
from webapp.runs.models import LabState, Run

pytestmark = [pytest.mark.webapp, pytest.mark.django_db]

# The seed lab (examples/seed-lab.yaml) without what needs the host: the VM image and the host bridge.
SEED_LIKE = {
    "version": 1, "name": "seed-like",
    "nodes": {
        "r1": {"kind": "router", "interfaces": {
            "eth0": {"address": "10.0.1.254/24", "dhcp_server": {"range": "10.0.1.100-10.0.1.150"}}}},
        "br-in": {"kind": "bridge"},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.1/24"}},
               "routes": [{"to": "default", "via": "10.0.1.254"}]},
        "h2": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.2/24"}},
               "routes": [{"to": "default", "via": "10.0.1.254"}]},
    },
    "links": [{"endpoints": ["r1:eth0", "br-in"]}, {"endpoints": ["h1:eth0", "br-in"]},
              {"endpoints": ["h2:eth0", "br-in"]}],
}
EVIL = """# Lab 1

Ping **r1** from `h1`.

<script>alert("owned")</script>
<img src=x onerror="alert(1)">
[click me](javascript:alert(document.cookie))
[docs](https://example.org/ping)
"""


@pytest.fixture
def people():
    User = get_user_model()

    def user(name, role=Role.STUDENT):
        u = User.objects.create_user(name)
        Profile.objects.create(user=u, role=role)
        return u

    P = SimpleNamespace(irene=user("irene", Role.INSTRUCTOR), ivan=user("ivan", Role.INSTRUCTOR),
                        alice=user("alice"), bob=user("bob"), oscar=user("oscar"))

    P.net101 = services.create_classroom(P.irene, "net101")
    P.net101.members.add(P.alice, P.bob)
    P.net202 = services.create_classroom(P.ivan, "net202")
    P.net202.members.add(P.oscar)
    return P


def api(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def source(people) -> Lab:
    return Lab.objects.create(owner=people.irene, name="seed-like", document=SEED_LIKE)


@pytest.fixture
def template(people, source) -> Template:
    return services.publish(people.irene, source, title="Lab 1: ping", description="Ping your router",
                            instructions=EVIL, visibility=Visibility.CLASS, classrooms=[people.net101])


# ---------------------------------------------------------------------------------------------- sign-up


def test_the_signup_page_fills_in_the_code_from_the_link(people):
    invite = services.create_invite(people.net101, people.irene)
    page = Client().get(f"/accounts/signup/?code={invite.code}").content.decode()
    assert f'value="{invite.code}"' in page


def test_a_new_student_signs_up_with_an_invite_code_and_joins_the_class(people):
    invite = services.create_invite(people.net101, people.irene, max_uses=5)
    client = Client()
    response = client.post("/accounts/signup/", {"code": invite.code, "username": "carol",
                                                 "password1": "a-Long-passphrase-9", "password2": "a-Long-passphrase-9"})
    assert response.status_code == 302 and response["Location"] == "/templates/"
    carol = get_user_model().objects.get(username="carol")
    assert carol.profile.role == Role.STUDENT
    assert people.net101.members.filter(pk=carol.pk).exists()
    invite.refresh_from_db()
    assert invite.uses == 1
    assert client.get("/templates/").status_code == 200  # signed in


@pytest.mark.parametrize("case, reason", [
    ("unknown", "no such invite code"),
    ("expired", "this invite code has expired"),
    ("used up", "this invite code has been used up"),
])
def test_it_refuses_a_bad_invite_code_and_creates_nobody(people, case, reason):
    invite = services.create_invite(people.net101, people.irene, max_uses=1)
    code = invite.code
    if case == "unknown":
        code = "nope"
    elif case == "expired":
        InviteCode.objects.filter(pk=invite.pk).update(expires=timezone.now() - timedelta(minutes=1))
    else:
        InviteCode.objects.filter(pk=invite.pk).update(uses=1)
    response = Client().post("/accounts/signup/", {"code": code, "username": "mallory",
                                                   "password1": "a-Long-passphrase-9",
                                                   "password2": "a-Long-passphrase-9"})
    assert response.status_code == 200
    assert reason in response.content.decode()
    assert not get_user_model().objects.filter(username="mallory").exists()


def test_the_last_use_of_a_code_goes_to_one_person_only(people):
    invite = services.create_invite(people.net101, people.irene, max_uses=1)
    services.sign_up(invite.code, "first", "a-Long-passphrase-9")
    with pytest.raises(services.InviteError):
        services.sign_up(invite.code, "second", "a-Long-passphrase-9")
    assert not get_user_model().objects.filter(username="second").exists()


# ---------------------------------------------------------------------------------------------- classes


def test_an_instructor_creates_a_class_and_an_invite_code_through_the_api(people):
    irene = api(people.irene)
    created = irene.post("/api/classes/", {"name": "net303"}, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    invite = irene.post(f"/api/classes/{pk}/invites/", {"max_uses": 3}, format="json")
    assert invite.status_code == 201
    assert invite.json()["signup_url"] == f"/accounts/signup/?code={invite.json()['code']}"
    assert [c["name"] for c in irene.get("/api/classes/").json()] == ["net101", "net303"]


def test_students_cannot_create_classes(people):
    assert api(people.alice).post("/api/classes/", {"name": "mine"}, format="json").status_code == 403


@pytest.mark.parametrize("who", ["ivan", "alice", "oscar"])
def test_only_the_classes_instructors_see_or_manage_it(people, who):
    client = api(getattr(people, who))
    pk = people.net101.pk
    assert client.get(f"/api/classes/{pk}/").status_code == 404
    assert client.get(f"/api/classes/{pk}/labs/").status_code == 404
    assert client.post(f"/api/classes/{pk}/invites/", {}, format="json").status_code == 404
    assert client.delete(f"/api/classes/{pk}/members/{people.alice.pk}/").status_code == 404
    page = Client()
    page.force_login(getattr(people, who))
    assert page.get(f"/classes/{pk}/").status_code == 404
    assert people.net101.members.filter(pk=people.alice.pk).exists()


def test_the_dashboard_shows_every_members_lab_with_its_state(people, template):
    alice_lab = services.start_lab(people.alice, template)
    bob_lab = services.start_lab(people.bob, template)
    Lab.objects.create(owner=people.oscar, name="not in net101")
    LabState.objects.create(lab=alice_lab, deployed=True, nodes={"r1": "running", "h1": "running"})
    Run.objects.create(lab=bob_lab, kind="deploy", status="running")

    rows = {r["owner"]: r for r in api(people.irene).get(f"/api/classes/{people.net101.pk}/labs/").json()}
    assert set(rows) == {"alice", "bob"}
    assert rows["alice"]["running"] is True and rows["alice"]["nodes"] == {"r1": "running", "h1": "running"}
    assert rows["alice"]["template"] == "Lab 1: ping v1"
    assert rows["bob"]["running"] is False and rows["bob"]["run"]["status"] == "running"

    page = Client()
    page.force_login(people.irene)
    html = page.get(f"/classes/{people.net101.pk}/").content.decode()
    assert f'data-lab="{alice_lab.pk}" data-state="running"' in html
    assert f'data-lab="{bob_lab.pk}" data-state="deploy-running"' in html
    assert f'href="/labs/{alice_lab.pk}/"' in html


def test_the_instructor_destroys_a_students_lab_from_the_dashboard(people, template):
    lab = services.start_lab(people.alice, template)
    LabState.objects.create(lab=lab, deployed=True, nodes={"h1": "running"})
    page = Client()
    page.force_login(people.irene)
    response = page.post(f"/classes/{people.net101.pk}/labs/{lab.pk}/destroy/")
    assert response.status_code == 302
    run = Run.objects.get(lab=lab)
    assert (run.kind, run.started_by) == ("destroy", people.irene)

    page.force_login(people.ivan)
    assert page.post(f"/classes/{people.net101.pk}/labs/{lab.pk}/destroy/").status_code == 404


# ---------------------------------------------------------------------------------------------- templates


def test_an_instructor_publishes_a_lab_as_a_template_with_a_frozen_version(people, source):
    response = api(people.irene).post("/api/templates/", {
        "lab": source.pk, "title": "Lab 1", "description": "d", "instructions": "Do **this**",
        "visibility": "class", "classrooms": [people.net101.pk]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["latest_version"] == 1 and body["instructions_html"] == "<p>Do <strong>this</strong></p>"
    source.document = {**SEED_LIKE, "nodes": {}}
    source.save()
    version = Template.objects.get(pk=body["id"]).latest_version()
    assert version.document["nodes"] == SEED_LIKE["nodes"]  # a copy, not a reference to the lab


@pytest.mark.parametrize("who, data, status, words", [
    ("alice", {}, 403, "Only instructors"),
    ("irene", {"classrooms": "net202"}, 400, "you do not instruct net202"),
    ("irene", {"classrooms": None}, 400, "needs at least one class"),
    ("irene", {"lab": "broken"}, 400, "nodes.h1"),
    ("ivan", {"classrooms": "net202"}, 403, "your own labs"),
])
def test_publishing_is_refused_with_a_reason(people, source, who, data, status, words):
    lab = source
    if who == "alice":
        lab = Lab.objects.create(owner=people.alice, name="mine", document=SEED_LIKE)
    if data.get("lab") == "broken":
        lab = Lab.objects.create(owner=people.irene, name="broken", document={
            "version": 1, "nodes": {"h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.0.300/24"}}}},
            "links": []})
    classes = {"net202": [people.net202.pk], None: []}.get(data.get("classrooms", ""), [people.net101.pk])
    response = api(getattr(people, who)).post("/api/templates/", {
        "lab": lab.pk, "title": "t", "visibility": "class", "classrooms": classes}, format="json")
    assert response.status_code == status, response.content
    assert words in response.content.decode()
    assert not Template.objects.exists()


def test_class_templates_are_visible_to_the_class_only(people, template):
    for who, sees in [("alice", True), ("bob", True), ("irene", True), ("oscar", False), ("ivan", False)]:
        client = api(getattr(people, who))
        listed = [t["id"] for t in client.get("/api/templates/").json()]
        assert (template.pk in listed) == sees, who
        assert client.get(f"/api/templates/{template.pk}/").status_code == (200 if sees else 404), who
        assert (client.post(f"/api/templates/{template.pk}/start/").status_code == 201) == sees, who


def test_public_templates_are_visible_to_everybody_signed_in(people, template):
    template.visibility = Visibility.PUBLIC
    template.save()
    assert api(people.oscar).post(f"/api/templates/{template.pk}/start/").status_code == 201
    assert api(None).get("/api/templates/").status_code == 403


def test_link_templates_are_reached_through_their_share_link_only(people, template):
    template.visibility = Visibility.LINK
    template.save()
    oscar = api(people.oscar)
    assert template.pk not in [t["id"] for t in oscar.get("/api/templates/").json()]
    assert oscar.get(f"/api/templates/{template.pk}/").status_code == 404
    assert oscar.get("/api/templates/shared/wrong-token/").status_code == 404
    shared = oscar.get(f"/api/templates/shared/{template.share_token}/")
    assert shared.status_code == 200 and shared.json()["share_url"] is None  # only the owner sees the link
    assert api(people.irene).get(f"/api/templates/{template.pk}/").json()["share_url"] == \
        f"/t/{template.share_token}/"
    started = oscar.post(f"/api/templates/shared/{template.share_token}/start/")
    assert started.status_code == 201
    assert Lab.objects.get(pk=started.json()["id"]).owner == people.oscar


def test_start_lab_clones_the_latest_version_into_a_new_lab_of_mine(people, template, source):
    response = api(people.alice).post(f"/api/templates/{template.pk}/start/")
    assert response.status_code == 201
    lab = Lab.objects.get(pk=response.json()["id"])
    assert lab.owner == people.alice and lab.lab_id != source.lab_id
    assert lab.document["nodes"] == SEED_LIKE["nodes"] and lab.name == "Lab 1: ping"
    assert response.json()["url"] == f"/labs/{lab.pk}/"
    assert LabOrigin.objects.get(lab=lab).template_version.number == 1


def test_publishing_again_makes_a_new_version_and_started_labs_keep_theirs(people, template, source):
    first = services.start_lab(people.alice, template)
    source.document = {**SEED_LIKE, "nodes": {**SEED_LIKE["nodes"], "h3": {"kind": "host"}}}
    source.save()
    response = api(people.irene).post(f"/api/templates/{template.pk}/publish/", {"instructions": "v2"},
                                      format="json")
    assert response.status_code == 201 and response.json()["latest_version"] == 2
    assert api(people.alice).post(f"/api/templates/{template.pk}/publish/", {}, format="json").status_code == 403

    second = services.start_lab(people.bob, template)
    first.refresh_from_db()
    assert "h3" not in first.document["nodes"] and "h3" in second.document["nodes"]
    assert services.lab_instructions(first)["version"] == 1
    assert services.lab_instructions(second)["markdown"] == "v2"


# ---------------------------------------------------------------------------------------------- instructions


def test_instructions_are_rendered_without_any_way_to_run_script(people, template):
    lab = services.start_lab(people.alice, template)
    body = api(people.alice).get(f"/api/labs/{lab.pk}/instructions/").json()
    html = body["html"]
    assert "<h1>Lab 1</h1>" in html and "<strong>r1</strong>" in html
    assert "<script" not in html and "&lt;script&gt;" in html
    assert "<img" not in html and "&lt;img" in html  # the raw tag is text, so onerror is inert
    assert "javascript:" not in html.lower()
    assert '<a href="https://example.org/ping">docs</a>' in html
    page = Client()
    page.force_login(people.irene)
    detail = page.get(f"/templates/{template.pk}/").content.decode()
    assert "<script>alert" not in detail and "&lt;script&gt;alert" in detail


def test_a_lab_without_a_template_has_no_instructions(people):
    lab = Lab.objects.create(owner=people.alice, name="scratch")
    assert api(people.alice).get(f"/api/labs/{lab.pk}/instructions/").json()["template"] is None


def test_the_editor_page_loads_the_instructions_panel(people, template):
    lab = services.start_lab(people.alice, template)
    page = Client()
    page.force_login(people.alice)
    html = page.get(f"/labs/{lab.pk}/").content.decode()
    assert "js/classroom/instructions.js" in html
    from django.contrib.staticfiles import finders

    assert finders.find("js/classroom/instructions.js")


def test_every_classroom_operation_says_who_may_call_it():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    ops = [(path, op) for path, item in schema["paths"].items() for op in item.values()
           if isinstance(op, dict) and (path.startswith(("/api/classes", "/api/templates"))
                                        or path.endswith("/instructions/"))]
    assert len(ops) >= 11
    for path, op in ops:
        assert "Who may call" in op.get("description", ""), f"{path} {op['operationId']}"


# ---------------------------------------------------------------------------------------------- for real


def sh(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def lab_leftovers(lab_id: str) -> list[str]:
    """Anything of the lab in the kernel: namespaces, root-namespace links, processes naming the lab id."""
    left = lab_namespaces(lab_id)
    left += [line for line in sh("ip", "-o", "link").stdout.splitlines() if lab_id in line]
    left += [line for line in sh("ps", "-eo", "pid,args").stdout.splitlines() if lab_id in line]
    return left


def mac(ns: str, dev: str) -> str:
    return re.search(r"link/ether (\S+)", sh("ip", "netns", "exec", ns, "ip", "link", "show", dev).stdout).group(1)


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(os.geteuid() != 0, reason="the agent needs root")
def test_two_students_run_the_same_template_at_once_and_never_meet(people, celery_worker):
    source = Lab.objects.create(owner=people.irene, name="seed-like", document=SEED_LIKE)
    published = api(people.irene).post("/api/templates/", {
        "lab": source.pk, "title": "Lab 1", "visibility": "class", "classrooms": [people.net101.pk]},
        format="json")
    assert published.status_code == 201, published.content
    template_pk = published.json()["id"]
    labs = {}
    for student in (people.alice, people.bob):
        started = api(student).post(f"/api/templates/{template_pk}/start/")
        assert started.status_code == 201
        labs[student.username] = Lab.objects.get(pk=started.json()["id"])
    a, b = labs["alice"], labs["bob"]
    assert a.lab_id != b.lab_id and a.document == b.document

    KERNEL_LOCK.acquire()
    try:
        # Both students press Deploy at the same moment.
        responses = {}
        barrier = threading.Barrier(2)

        def deploy(name, user):
            barrier.wait()
            responses[name] = api(user).post(f"/api/labs/{labs[name].pk}/deploy/")

        threads = [threading.Thread(target=deploy, args=(n, u)) for n, u in
                   (("alice", people.alice), ("bob", people.bob))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for name, response in responses.items():
            assert response.status_code == 202, (name, response.content)
        for name, response in responses.items():
            run = wait_run(response.json()["id"])
            assert run.status == "succeeded", (name, run.error)

        a_ns, b_ns = set(lab_namespaces(a.lab_id)), set(lab_namespaces(b.lab_id))
        assert f"tl-{a.lab_id}-h1" in a_ns and f"tl-{b.lab_id}-h1" in b_ns and not a_ns & b_ns

        # Each host pings its own router: the reply comes from its own lab's r1 (by MAC), never the other's.
        for lab, other in ((a, b), (b, a)):
            ping = sh("ip", "netns", "exec", f"tl-{lab.lab_id}-h1", "ping", "-c", "2", "-W", "2", "10.0.1.254")
            assert ping.returncode == 0, ping.stdout + ping.stderr
            neigh = sh("ip", "netns", "exec", f"tl-{lab.lab_id}-h1", "ip", "neigh", "show", "10.0.1.254").stdout
            assert mac(f"tl-{lab.lab_id}-r1", "eth0") in neigh
            assert mac(f"tl-{other.lab_id}-r1", "eth0") not in neigh

        # Take alice's router off her switch: the same address is still up in bob's lab, and she cannot reach it.
        sh("ip", "netns", "exec", f"tl-{a.lab_id}-r1", "ip", "link", "set", "eth0", "down")
        sh("ip", "netns", "exec", f"tl-{a.lab_id}-h1", "ip", "neigh", "flush", "all")
        lost = sh("ip", "netns", "exec", f"tl-{a.lab_id}-h1", "ping", "-c", "2", "-W", "1", "10.0.1.254")
        assert lost.returncode != 0, "alice's host reached a router at 10.0.1.254 that is not hers"
        assert sh("ip", "netns", "exec", f"tl-{b.lab_id}-h1", "ping", "-c", "1", "-W", "2",
                  "10.0.1.254").returncode == 0

        # The instructor destroys both labs; nothing of either is left.
        for lab in (a, b):
            response = api(people.irene).post(f"/api/labs/{lab.pk}/destroy/")
            assert response.status_code == 202, response.content
            assert wait_run(response.json()["id"]).status == "succeeded"
        assert lab_leftovers(a.lab_id) == [] and lab_leftovers(b.lab_id) == []
    finally:
        from netops import engine

        for lab in (a, b):
            if lab_namespaces(lab.lab_id):
                engine.down(lab.lab_id)
        KERNEL_LOCK.release()
