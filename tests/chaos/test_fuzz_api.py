"""Fuzz of the REST API from its own OpenAPI schema (drf-spectacular) with schemathesis (issue 17, part 4).

A real daphne (as tests/e2e starts it) against the test database and Redis; every operation of the schema gets
requests schemathesis derives from it, as a signed-in user who owns a lab (half the cases aim their `id` at that
lab, so they pass the lookup and reach the serializers), and as nobody. No answer may be a 500, every answer
must match the schema (status code, content type, body), and every 4xx body must be the one error shape
`{"errors": [{"path", "message"}, ...]}`. No agent or Celery worker runs: deploys stay queued, consoles and
captures answer that the agent is away.
"""
from __future__ import annotations

import json
import os
import random
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import schemathesis
import yaml
from e2e.conftest import _daphne
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.specs.openapi import checks as openapi_checks

from .conftest import FULL

EXAMPLES = 40 if FULL else 6  # per operation (the schema has about 50)
PASSWORD = "pw-fuzz-123456"
SEED = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "two-hosts.yaml").read_text())
WHO = random.Random(17)  # who asks, per case: the owner aiming at their lab, the owner, or nobody


@pytest.fixture(scope="session")
def api_server(django_db_setup, django_db_blocker, topolab_subprocess_env, test_tmpdir, spawn):
    """(url, token, lab id) of a daphne serving the API, its user's token, and a lab of that user's."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    with django_db_blocker.unblock():
        user = get_user_model().objects.create_user(f"fuzzer{os.getpid()}", password=PASSWORD)
        token = Token.objects.create(user=user).key
    env = {**topolab_subprocess_env, "TOPOLAB_THROTTLE_LOGIN": "100000/minute",
           "TOPOLAB_THROTTLE_TOKEN": "100000/minute", "TOPOLAB_THROTTLE_DEPLOY": "100000/minute",
           "TOPOLAB_THROTTLE_STATUS": "100000/minute"}
    env.pop("TOPOLAB_DEBUG", None)
    with _daphne(spawn, env, test_tmpdir / "daphne-fuzz.log") as url:
        try:
            lab_id = _create_lab(url, token)
        except urllib.error.HTTPError as exc:
            pytest.fail(f"POST /api/labs/ answered {exc.code}: {exc.read()[:2000]!r}\n"
                        f"{(test_tmpdir / 'daphne-fuzz.log').read_text()[-3000:]}")
        yield url, token, lab_id


def _create_lab(url: str, token: str) -> int:
    request = urllib.request.Request(f"{url}/api/labs/", data=json.dumps({"document": SEED}).encode(), method="POST",
                                     headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)["id"]


def _schema() -> dict:
    """The OpenAPI schema as GET /api/schema/ serves it (the same generator, run here at collection: the live
    server is not up yet, and schemathesis's lazy fixture loader does not run on this pytest)."""
    from drf_spectacular.generators import SchemaGenerator
    from rest_framework.renderers import JSONRenderer

    return json.loads(JSONRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


schema = schemathesis.openapi.from_dict(_schema())

CHECKS = [checks.not_a_server_error, openapi_checks.status_code_conformance,
          openapi_checks.content_type_conformance, openapi_checks.response_schema_conformance]


def twisted_refusal(case, response) -> bool:
    """daphne's HTTP layer (Twisted's Request) parses multipart bodies itself and answers a malformed one with a
    bare `400 Bad Request` (no headers, no body) before the request reaches Django: the one answer not ours. Only
    the import action takes multipart; schemathesis also sends a multipart Content-Type to others as a probe."""
    sent = response.request.headers.get("Content-Type", "")
    return (sent.startswith("multipart/form-data") and response.status_code == 400 and not response.content
            and "content-type" not in {k.lower() for k in response.headers})


def error_shape(response) -> None:
    """A 4xx body is {"errors": [{"path": str, "message": str}, ...]} (plus context keys)."""
    if not 400 <= response.status_code < 500 or response.status_code == 405 and not response.content:
        return
    assert response.content, f"{response.status_code} with an empty body, headers {dict(response.headers)}"
    body = json.loads(response.content)
    assert isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"], body
    for error in body["errors"]:
        assert set(error) == {"path", "message"}, error
        assert isinstance(error["path"], str) and isinstance(error["message"], str) and error["message"], error


@pytest.mark.django_db(transaction=True)  # daphne, another process, reads the test database
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_api_from_its_schema(case, api_server, chaos_figures):
    url, token, lab_id = api_server
    as_owner = WHO.choice(["owner-lab", "owner-lab", "owner", "nobody"])
    if as_owner == "owner-lab" and "id" in (case.path_parameters or {}) and "/labs/" in case.path:
        case.path_parameters["id"] = lab_id
    headers = {"Authorization": f"Token {token}"} if as_owner != "nobody" else {}
    chaos_figures.add("fuzz: REST API", faults=1)
    response = case.call(base_url=url, headers=headers, timeout=30)
    if response.status_code >= 500:
        chaos_figures.add("fuzz: REST API", **{"500s": 1})
    if twisted_refusal(case, response):
        chaos_figures.add("fuzz: REST API (daphne's bare 400 to bad multipart)", faults=1, recovered=1)
        chaos_figures.add("fuzz: REST API", recovered=1)
        return
    case.validate_response(response, checks=CHECKS)
    error_shape(response)
    chaos_figures.add("fuzz: REST API", recovered=1)
