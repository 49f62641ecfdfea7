"""One error shape across the API (webapp.core.errors): labs, runs, consoles and classroom answer every refusal with
{"errors": [{"path", "message"}]}, naming the field at fault; refusals about no field also carry `detail`."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

pytestmark = [pytest.mark.webapp, pytest.mark.django_db]


@pytest.fixture
def api():
    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_user("erin", password="correct horse battery"))
    return client


@pytest.fixture
def staff_api():
    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_user("sid", password="correct horse battery",
                                                                   is_staff=True))
    return client


def _shape(body: dict) -> list[tuple[str, str]]:
    assert set(body) >= {"errors"}, body
    assert all(set(e) == {"path", "message"} for e in body["errors"]), body
    return [(e["path"], e["message"]) for e in body["errors"]]


@pytest.mark.parametrize("method,url", [("get", "/api/labs/"), ("get", "/api/kinds/"), ("get", "/api/classes/"),
                                        ("get", "/api/labs/1/captures/"), ("post", "/api/labs/1/deploy")])
def test_someone_not_signed_in_gets_the_shape(method, url):
    response = getattr(APIClient(), method)(url)
    assert response.status_code in (401, 403)
    [(path, message)] = _shape(response.json())
    assert path == "" and message and response.json()["detail"] == message


@pytest.mark.parametrize("url", ["/api/labs/999999/", "/api/labs/999999/runs", "/api/labs/999999/captures/",
                                 "/api/classes/999999/"])
def test_what_does_not_exist_is_404_in_the_shape(api, url):
    response = api.get(url)
    assert response.status_code == 404
    [(path, _message)] = _shape(response.json())
    assert path == ""


def test_a_bad_field_is_named_by_its_path(api):
    response = api.post("/api/labs/", {"name": "x" * 101}, format="json")
    assert response.status_code == 400
    assert [p for p, _ in _shape(response.json())] == ["name"]


def test_the_classroom_names_its_fields_too(staff_api):
    assert staff_api.post("/api/classes/", {"name": "net101"}, format="json").status_code == 201
    response = staff_api.post("/api/classes/", {"name": "net101"}, format="json")
    assert response.status_code == 400
    assert _shape(response.json()) == [("name", "a class named 'net101' exists already")]


def test_a_stale_version_is_409_with_the_current_lab(api):
    lab = api.post("/api/labs/", {"name": "stale"}, format="json").json()
    assert api.patch(f"/api/labs/{lab['id']}/", {"version": lab["version"], "name": "new"},
                     format="json").status_code == 200
    response = api.patch(f"/api/labs/{lab['id']}/", {"version": lab["version"], "name": "newer"}, format="json")
    assert response.status_code == 409
    assert [p for p, _ in _shape(response.json())] == ["version"]
    assert response.json()["lab"]["name"] == "new" and "version" in response.json()["detail"]


@pytest.mark.parametrize("url", ["/api/labs/abc/", "/api/labs/null,null/", "/api/classes/1.5/", "/api/nothing/"])
def test_a_path_no_url_matches_is_404_in_the_shape(api, url):
    """Found by the API fuzz: ids are numbers, and a path that is not one got Django's HTML 404 page."""
    response = api.get(url)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    [(path, message)] = _shape(response.json())
    assert path == "" and "no such API resource" in message


def test_pages_outside_the_api_keep_the_html_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_the_schema_documents_every_refusal_in_the_shape(api):
    """Found by the API fuzz: operations documented only 200, so every 4xx was an undocumented answer."""
    schema = api.get("/api/schema/?format=json").json()
    assert schema["components"]["schemas"]["Errors"]["required"] == ["errors"]
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            answers = op["responses"]
            assert {"401", "403", "429"} <= set(answers), (method, path)
            if "{" in path:
                assert "404" in answers, (method, path)
            for code, answer in answers.items():
                if code.startswith("4"):
                    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Errors"}
