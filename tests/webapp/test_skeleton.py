"""The skeleton: pages, health, API schema and docs, tokens, login, and a real Celery round trip."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.webapp


def test_index_page_says_what_topolab_is(client):
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Topolab" in body
    assert 'href="/labs/"' in body
    assert "/static/css/app.css" in body


def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


def test_api_schema_is_openapi(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Topolab API"
    assert "/api/token/" in schema["paths"]


def test_api_docs_serve_swagger_ui_from_sidecar_not_a_cdn(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "swagger-ui" in body
    assert "cdn.jsdelivr.net" not in body
    assert "/static/drf_spectacular_sidecar/" in body


@pytest.mark.django_db
def test_token_endpoint_gives_a_token_for_the_right_password(client):
    get_user_model().objects.create_user("alice", password="correct horse battery")
    response = client.post("/api/token/", {"username": "alice", "password": "correct horse battery"})
    assert response.status_code == 200
    token = response.json()["token"]
    assert len(token) == 40


@pytest.mark.django_db
def test_token_endpoint_refuses_a_wrong_password(client):
    get_user_model().objects.create_user("alice", password="correct horse battery")
    response = client.post("/api/token/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 400
    assert "token" not in response.json()


@pytest.mark.django_db
def test_login_page_signs_a_user_in(client):
    get_user_model().objects.create_user("bob", password="correct horse battery")
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert 'name="password"' in page.content.decode()
    response = client.post("/accounts/login/", {"username": "bob", "password": "correct horse battery"})
    assert response.status_code == 302
    assert client.get("/").context["user"].username == "bob"


@pytest.mark.django_db
def test_login_page_refuses_a_wrong_password(client):
    get_user_model().objects.create_user("bob", password="correct horse battery")
    response = client.post("/accounts/login/", {"username": "bob", "password": "nope"})
    assert response.status_code == 200
    assert "didn't match" in response.content.decode()
    assert "_auth_user_id" not in client.session


async def test_daphne_app_serves_vendor_modules_from_node_modules():
    from asgiref.testing import ApplicationCommunicator

    from webapp.asgi import application

    path = "/static/vendor/cytoscape/dist/cytoscape.esm.min.mjs"
    scope = {
        "type": "http", "http_version": "1.1", "method": "GET", "path": path, "raw_path": path.encode(),
        "query_string": b"", "headers": [(b"host", b"127.0.0.1")], "scheme": "http",
        "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
    }
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(10)
    body = b""
    while True:
        message = await communicator.receive_output(10)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    assert start["status"] == 200
    assert b"export" in body


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_ping_task_round_trips_through_redis_and_a_real_worker(celery_worker):
    from webapp.core.tasks import ping

    result = ping.delay()
    assert result.get(timeout=30) == "pong"
    assert result.successful()
