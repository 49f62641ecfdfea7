"""GET /api/kinds/: the registry's public part, for signed-in users only, documented in the OpenAPI schema."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from netops import kinds

pytestmark = [pytest.mark.webapp, pytest.mark.django_db]


@pytest.fixture
def api():
    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_user("kira", password="correct horse battery"))
    return client


def test_it_serves_every_kind_with_what_the_canvas_needs(api):
    body = api.get("/api/kinds/").json()
    assert [k["name"] for k in body["kinds"]] == list(kinds.names())
    by_name = {k["name"]: k for k in body["kinds"]}
    assert by_name["host"]["prefix"] == "h" and by_name["host"]["interfaces"] is True
    assert by_name["vm"]["console"] == "serial" and by_name["router"]["console"] == "shell"
    assert by_name["bridge"]["console"] is None and by_name["external"]["interfaces"] is False
    assert "nat" in by_name["router"]["sections"] and "dhcp_server" in by_name["router"]["interface_keys"]
    assert by_name["vm"]["icon"] == "img/nodes/vm.svg"
    assert body["node_states"][0] == "absent" and "failed" in body["node_states"]
    assert body["node_name_re"].endswith("$")


def test_it_refuses_someone_not_signed_in():
    assert APIClient().get("/api/kinds/").status_code in (401, 403)


def test_the_schema_documents_it(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    op = schema["paths"]["/api/kinds/"]["get"]
    assert op["operationId"] == "kinds_list"
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][ref]["properties"]) == {"kinds", "node_states", "node_name_re"}
