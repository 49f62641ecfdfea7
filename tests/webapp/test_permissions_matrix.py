"""Who may do what with a lab: a matrix over every lab API endpoint and WebSocket route that exists.

People: the owner (alice), a classmate (bob), an outsider (oscar), the instructor of their class (irene),
an instructor of another class (ivan), and nobody signed in. The endpoints are enumerated from the URLconf
and the ASGI routing at test time; one that the matrix does not know fails `test_every_lab_endpoint_is_covered`,
so a new endpoint cannot be forgotten.

Expected, per endpoint capability:
- view (read):           owner, instructor
- edit:                  owner
- deploy (and destroy):  owner, instructor
- console:               owner, instructor
- everybody else: 404 (the lab does not exist for them); anonymous: 401/403 (or WebSocket close 4403).
"""
from __future__ import annotations

import asyncio
import os
import re
from types import SimpleNamespace

import pytest
from channels.testing import WebsocketCommunicator
from django.apps import apps
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLResolver, get_resolver
from rest_framework.test import APIClient
from support import lab_namespaces, wait_run

from webapp.accounts.models import Profile, Role
from webapp.classroom.models import Classroom
from webapp.labs import permissions
from webapp.labs.models import Lab

pytestmark = [pytest.mark.webapp, pytest.mark.django_db]

PEOPLE = ("owner", "classmate", "outsider", "instructor", "other_instructor", "anonymous")
ALLOWED = {
    "view": {"owner", "instructor"},
    "edit": {"owner"},
    "deploy": {"owner", "instructor"},
    "console": {"owner", "instructor"},
}
DOC = {
    "version": 1, "name": "matrix",
    "nodes": {"h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.9.0.1/24"}}},
              "br1": {"kind": "bridge"}},
    "links": [{"endpoints": ["h1:eth0", "br1"]}],
}

# (normalised route, method) -> (app, capability, request path, JSON body or None). Entries of apps that are
# not installed are skipped. Paths are formatted with the lab's pk and the pks of one of its runs and captures.
ENDPOINTS: dict[tuple[str, str], tuple[str, str, str, dict | None]] = {
    ("api/labs/", "get"): ("labs", "list", "/api/labs/", None),
    ("api/labs/", "post"): ("labs", "create", "/api/labs/", {"name": "mine"}),
    ("api/labs/import/", "post"): ("labs", "create", "/api/labs/import/", {"text": "version: 1\nnodes: {}\n"}),
    ("api/labs/(?P<pk>[0-9]+)/", "get"): ("labs", "view", "/api/labs/{pk}/", None),
    ("api/labs/(?P<pk>[0-9]+)/", "put"): ("labs", "edit", "/api/labs/{pk}/", {"version": 1, "document": DOC}),
    ("api/labs/(?P<pk>[0-9]+)/", "patch"): ("labs", "edit", "/api/labs/{pk}/", {"version": 1, "name": "renamed"}),
    ("api/labs/(?P<pk>[0-9]+)/", "delete"): ("labs", "edit", "/api/labs/{pk}/", None),
    ("api/labs/(?P<pk>[0-9]+)/duplicate/", "post"): ("labs", "edit", "/api/labs/{pk}/duplicate/", {}),
    ("api/labs/(?P<pk>[0-9]+)/export/", "get"): ("labs", "view", "/api/labs/{pk}/export/", None),
    ("api/labs/(?P<pk>[0-9]+)/uplinks/", "get"): ("labs", "view", "/api/labs/{pk}/uplinks/", None),
    ("api/labs/<int:pk>/export", "get"): ("labs", "view", "/api/labs/{pk}/export", None),
    ("api/labs/(?P<pk>[0-9]+)/deploy/?", "post"): ("runs", "deploy", "/api/labs/{pk}/deploy/", None),
    ("api/labs/(?P<pk>[0-9]+)/destroy/?", "post"): ("runs", "deploy", "/api/labs/{pk}/destroy/", None),
    ("api/labs/(?P<pk>[0-9]+)/actions/?", "post"):
        ("runs", "deploy", "/api/labs/{pk}/actions/", {"action": "stop", "node": "h1"}),
    ("api/labs/(?P<pk>[0-9]+)/runs/?", "get"): ("runs", "view", "/api/labs/{pk}/runs/", None),
    ("api/labs/(?P<pk>[0-9]+)/events/?", "get"): ("runs", "view", "/api/labs/{pk}/events/", None),
    ("api/labs/(?P<pk>[0-9]+)/status/?", "get"): ("runs", "view", "/api/labs/{pk}/status/", None),
    ("api/labs/(?P<pk>[0-9]+)/nodes/(?P<node>[A-Za-z][A-Za-z0-9_-]{0,31})/routing/?", "get"):
        ("runs", "view", "/api/labs/{pk}/nodes/h1/routing/", None),
    ("api/runs/(?P<pk>[0-9]+)/?", "get"): ("runs", "view", "/api/runs/{run}/", None),
    ("api/labs/<int:pk>/instructions/", "get"): ("classroom", "view", "/api/labs/{pk}/instructions/", None),
    ("api/labs/(?P<pk>[0-9]+)/captures/?", "get"): ("consoles", "console", "/api/labs/{pk}/captures/", None),
    ("api/labs/(?P<pk>[0-9]+)/captures/?", "post"): ("consoles", "console", "/api/labs/{pk}/captures/", {"link": 99}),
    ("api/labs/(?P<pk>[0-9]+)/captures/(?P<capture>[0-9]+)/?", "get"):
        ("consoles", "console", "/api/labs/{pk}/captures/{capture}/", None),
    ("api/labs/(?P<pk>[0-9]+)/captures/(?P<capture>[0-9]+)/stop/?", "post"):
        ("consoles", "console", "/api/labs/{pk}/captures/{capture}/stop/", None),
    ("api/labs/(?P<pk>[0-9]+)/captures/(?P<capture>[0-9]+)/pcap/?", "get"):
        ("consoles", "console", "/api/labs/{pk}/captures/{capture}/pcap/", None),
    ("api/labs/(?P<pk>[0-9]+)/console-sessions/?", "get"):
        ("consoles", "view", "/api/labs/{pk}/console-sessions/", None),
    ("api/labs/(?P<pk>[0-9]+)/check/?", "post"): ("checks", "deploy", "/api/labs/{pk}/check", None),
    ("api/labs/<int:pk>/checks/", "get"): ("checks", "view", "/api/labs/{pk}/checks/", None),
    ("api/labs/<int:pk>/reset/", "post"): ("checks", "edit", "/api/labs/{pk}/reset/", None),
}

# WebSocket routes: pattern -> capability. Consoles and captures need can_console.
WEBSOCKETS: dict[str, str] = {
    "^ws/labs/(?P<pk>[0-9]+)/$": "view",
    "^ws/labs/(?P<pk>[0-9]+)/console/(?P<node>[^/]{1,64})/$": "console",
    "^ws/labs/(?P<pk>[0-9]+)/captures/(?P<capture>[0-9]+)/$": "console",
}
DENIED_CLOSE_CODES = {4401, 4403, 4404}


# ---------------------------------------------------------------------------------------------- enumeration


def _walk(patterns, prefix: str = ""):
    """(route, pattern) for every URL pattern; each regex segment loses its leading ^ and trailing $."""
    for p in patterns:
        segment = str(p.pattern).removeprefix("^").removesuffix("$")
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + segment)
        else:
            yield prefix + segment, p


def _methods(pattern) -> list[str]:
    callback = pattern.callback
    actions = getattr(callback, "actions", None)
    if actions:
        # DRF maps HEAD to the GET action (newer versions list it): it is GET's permission, covered with GET
        return sorted(m for m in actions if m != "head")
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    return [m for m in ("get", "post", "put", "patch", "delete") if view_class and hasattr(view_class, m)]


def lab_api_endpoints() -> set[tuple[str, str]]:
    """Every (route, method) under /api/labs/ and /api/runs/ in the URLconf."""
    found = set()
    for route, pattern in _walk(get_resolver().url_patterns):
        if route.startswith(("api/labs", "api/runs")):
            for method in _methods(pattern):
                found.add((route, method))
    return found


def websocket_routes() -> list[str]:
    from webapp.asgi import websocket_urlpatterns

    return [str(p.pattern) for p in websocket_urlpatterns()]


def test_every_lab_endpoint_is_covered():
    missing = lab_api_endpoints() - set(ENDPOINTS)
    assert not missing, f"endpoints not in the permission matrix (add them to ENDPOINTS): {sorted(missing)}"


def test_the_matrix_names_no_endpoint_that_is_gone():
    installed = {key for key, entry in ENDPOINTS.items() if apps.is_installed(f"webapp.{entry[0]}")}
    stale = installed - lab_api_endpoints()
    assert not stale, f"ENDPOINTS names routes that no longer exist: {sorted(stale)}"


def test_every_websocket_route_is_covered():
    routes = websocket_routes()
    assert routes, "no WebSocket routes at all: the lab events route is expected"
    unknown = [r for r in routes if r not in WEBSOCKETS]
    assert not unknown, f"WebSocket routes not in the permission matrix: {unknown}"


# ---------------------------------------------------------------------------------------------- people


@pytest.fixture
def people():
    User = get_user_model()

    def user(name: str, role: str | None = None):
        u = User.objects.create_user(name)  # no password: clients sign in with force_login, and fast
        if role:
            Profile.objects.create(user=u, role=role)
        return u

    p = SimpleNamespace(
        owner=user("alice", Role.STUDENT), classmate=user("bob", Role.STUDENT), outsider=user("oscar"),
        instructor=user("irene", Role.INSTRUCTOR), other_instructor=user("ivan", Role.INSTRUCTOR),
    )
    net101 = Classroom.objects.create(name="net101")
    net101.instructors.add(p.instructor)
    net101.members.add(p.owner, p.classmate)
    net202 = Classroom.objects.create(name="net202")
    net202.instructors.add(p.other_instructor)
    net202.members.add(p.outsider)
    p.anonymous = None
    return p


@pytest.fixture
def lab(people):
    return Lab.objects.create(owner=people.owner, name="matrix", document=DOC)


@pytest.fixture
def subjects(lab):
    """Path parameters: the lab, one of its runs and one of its (stopped) captures (its pcap: no_agent)."""
    ids = {"pk": lab.pk, "run": 0, "capture": 0}
    if apps.is_installed("webapp.runs"):
        from webapp.runs.models import Run

        ids["run"] = Run.objects.create(lab=lab, kind="deploy", status="succeeded").pk
    if apps.is_installed("webapp.consoles"):
        from webapp.consoles.models import Capture

        cap = Capture.objects.create(lab=lab, link=0, status=Capture.Status.STOPPED, max_bytes=1, max_seconds=1,
                                     host="here")
        ids["capture"] = cap.pk
    yield ids


def client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


# ---------------------------------------------------------------------------------------------- decisions


@pytest.mark.parametrize("person", [p for p in PEOPLE if p != "anonymous"] + ["anonymous"])
def test_the_permission_functions_decide_as_the_matrix_says(people, lab, person):
    user = getattr(people, person) or _Anonymous()
    decisions = {
        "view": permissions.can_view(user, lab),
        "edit": permissions.can_edit(user, lab),
        "deploy": permissions.can_deploy(user, lab),
        "console": permissions.can_console(user, lab),
    }
    assert decisions == {cap: person in allowed for cap, allowed in ALLOWED.items()}
    assert permissions.visible_labs(user).filter(pk=lab.pk).exists() == (person in ALLOWED["view"])


class _Anonymous:
    is_authenticated = False
    pk = None


def test_an_instructor_stops_seeing_a_lab_when_its_owner_leaves_the_class(people, lab):
    Classroom.objects.get(name="net101").members.remove(people.owner)
    assert not permissions.can_view(people.instructor, lab)
    assert not permissions.can_deploy(people.instructor, lab)


def test_an_instructor_who_is_also_a_member_cannot_see_a_fellow_instructors_labs(people):
    """Instructors see their members' labs, not the labs of the class's other instructors."""
    net101 = Classroom.objects.get(name="net101")
    net101.instructors.add(people.other_instructor)
    their_lab = Lab.objects.create(owner=people.other_instructor, name="theirs")
    assert not permissions.can_view(people.instructor, their_lab)


# ---------------------------------------------------------------------------------------------- HTTP matrix


@pytest.fixture
def no_agent(monkeypatch):
    """The status endpoint asks the agent, a pcap download the stream agent; answer for them so reads need no worker
    (deploys enqueue nothing: these tests run inside a transaction that never commits)."""
    if not apps.is_installed("webapp.runs"):
        return
    from webapp.runs import tasks

    class Result:
        def get(self, timeout=None):
            return {"nodes": {}, "drift": []}

        def forget(self):
            pass

        def revoke(self):
            pass

    monkeypatch.setattr(tasks.lab_status, "apply_async", lambda *a, **k: Result())
    if apps.is_installed("webapp.consoles"):  # a download asks the capture host's stream agent: an empty file
        from webapp.consoles import services as consoles

        async def empty_pcap(cap):
            return consoles.PcapStream(cap.pk, cap.host, 0, b"", "")

        monkeypatch.setattr(consoles, "open_pcap", empty_pcap)


def _request(client: APIClient, method: str, path: str, body: dict | None):
    if body is None:
        return getattr(client, method)(path)
    return getattr(client, method)(path, body, format="json")


@pytest.mark.parametrize("person", PEOPLE)
@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS), ids=lambda e: f"{e[1].upper()} {e[0]}")
def test_http_matrix(people, lab, subjects, no_agent, endpoint, person):
    app, capability, template, body = ENDPOINTS[endpoint]
    if not apps.is_installed(f"webapp.{app}"):
        pytest.skip(f"webapp.{app} is not installed")
    path = template.format(**subjects)
    user = getattr(people, person)
    response = _request(client_for(user), endpoint[1], path, body)
    code = response.status_code
    assert code < 500, response.content

    if user is None:
        assert code in (401, 403), f"anonymous got {code} from {endpoint}"
        return
    if capability == "list":
        listed = {row["id"] for row in response.json()}
        assert code == 200 and (lab.pk in listed) == (person in ALLOWED["view"])
        return
    if capability == "create":
        assert code in (200, 201), response.content
        return
    if person in ALLOWED[capability]:
        assert code not in (401, 403, 404), f"{person} refused ({code}) at {endpoint}: {response.content!r}"
    elif person in ALLOWED["view"]:
        assert code == 403, f"{person} may view but got {code} at {endpoint}"
    else:
        assert code == 404, f"{person} got {code} at {endpoint}, not a 404"
    if capability == "edit" and person not in ALLOWED["edit"]:
        lab.refresh_from_db()
        assert lab.version == 1 and lab.document == DOC, "a refused edit changed the lab"


@pytest.mark.parametrize("person", PEOPLE)
def test_the_editor_page_is_read_only_for_the_instructor_and_absent_for_the_rest(people, lab, person):
    user = getattr(people, person)
    client = Client()
    if user is not None:
        client.force_login(user)
    response = client.get(f"/labs/{lab.pk}/")
    if user is None:
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    elif person in ALLOWED["view"]:
        assert response.status_code == 200
        editable = 'data-editable="true"' in response.content.decode()
        assert editable == (person in ALLOWED["edit"])
    else:
        assert response.status_code == 404


# ---------------------------------------------------------------------------------------------- WebSockets


def _session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def _ws_path(route: str, subjects: dict) -> str:
    """A concrete path for a route pattern: the lab, its capture, and node h1."""
    values = {**{k: str(v) for k, v in subjects.items()}, "node": "h1"}
    path = re.sub(r"\(\?P<([a-z_]+)>(?:[^()]|\([^()]*\))*\)", lambda m: values[m.group(1)], route)
    return "/" + path.removeprefix("^").removesuffix("$")


async def _ws_outcome(path: str, cookie: bytes | None) -> str:
    """'refused' (not accepted, or closed with a refusal code) or 'accepted'."""
    from webapp.asgi import application

    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if cookie:
        headers.append((b"cookie", cookie))
    comm = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await comm.connect(timeout=5)
    if not connected:
        return "refused"
    try:
        # Consumers may send a status message before closing: read what comes for a moment. Quiet is asked with
        # receive_nothing: a receive_output that times out cancels the consumer and awaits it, which can hang for
        # good inside channels_redis (see test_twenty_parallel_console_websockets_never_exceed_the_limit).
        deadline = asyncio.get_running_loop().time() + 1.5
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            if await comm.receive_nothing(timeout=left):
                return "accepted"  # open and quiet
            output = await comm.receive_output(timeout=1)
            if output["type"] == "websocket.close":
                return "refused" if output.get("code") in DENIED_CLOSE_CODES else "accepted"
    finally:
        if not comm.future.done():
            await comm.disconnect()
    return "accepted"  # open and talking


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("person", PEOPLE)
async def test_websocket_matrix(people, subjects, person):
    user = getattr(people, person)
    cookie = await _sync(_session_cookie)(user) if user is not None else None
    for route in websocket_routes():
        capability = WEBSOCKETS[route]
        outcome = await _ws_outcome(_ws_path(route, subjects), cookie)
        expected = "accepted" if person in ALLOWED[capability] else "refused"
        assert outcome == expected, f"{person} at {route}: {outcome}, expected {expected}"


def _sync(fn):
    from asgiref.sync import sync_to_async

    return sync_to_async(fn)


# ---------------------------------------------------------------------------------------------- a real deploy


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(os.geteuid() != 0, reason="the agent needs root")
def test_the_instructor_deploys_and_destroys_a_students_lab_for_real(people, lab, celery_worker, kernel_lock):
    teacher, stranger = client_for(people.instructor), client_for(people.other_instructor)
    try:
        response = teacher.post(f"/api/labs/{lab.pk}/deploy/")
        assert response.status_code == 202, response.content
        run = wait_run(response.json()["id"])
        assert run.status == "succeeded", run.error
        assert run.started_by == people.instructor
        assert lab_namespaces(lab.lab_id), "the deploy left nothing in the kernel"

        assert stranger.post(f"/api/labs/{lab.pk}/destroy/").status_code == 404
        assert lab_namespaces(lab.lab_id), "another class's instructor destroyed the lab"

        response = teacher.post(f"/api/labs/{lab.pk}/destroy/")
        assert response.status_code == 202, response.content
        assert wait_run(response.json()["id"]).status == "succeeded"
        assert lab_namespaces(lab.lab_id) == []
    finally:
        if lab_namespaces(lab.lab_id):  # leave nothing behind even when an assertion failed
            from netops import engine

            engine.down(lab.lab_id)


# ---------------------------------------------------------------------------------------------- classes


@pytest.mark.parametrize("person", PEOPLE)
def test_only_the_classs_instructor_may_change_its_uplink_bridges(people, person, settings):
    """PATCH /api/classes/<pk>/ (the host bridges a class's members may use): its instructor only; everybody
    else gets 404, as if the class did not exist."""
    settings.TOPOLAB_UPLINK_BRIDGES = "br-ex"
    net101 = Classroom.objects.get(name="net101")
    response = client_for(getattr(people, person)).patch(f"/api/classes/{net101.pk}/", {"uplink_bridges": ["br-ex"]},
                                                         format="json")
    net101.refresh_from_db()
    if person == "anonymous":
        assert response.status_code in (401, 403)
    elif person == "instructor":
        assert response.status_code == 200 and net101.uplink_bridges == ["br-ex"]
        return
    else:
        assert response.status_code == 404, f"{person} got {response.status_code}"
    assert net101.uplink_bridges == []
