"""The labs REST API, with three people: the owner, another user, and someone not signed in."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from rest_framework.test import APIClient

from webapp.accounts.models import Profile, Role
from webapp.labs.models import Lab, LabId

pytestmark = [pytest.mark.webapp, pytest.mark.django_db]

REPO = Path(__file__).resolve().parents[2]
SEED = (REPO / "examples" / "seed-lab.yaml").read_text()


@pytest.fixture(autouse=True)
def image_library(tmp_path, monkeypatch):
    """A private image library holding one kernel image, `tiny` (the seed lab's VM uses it)."""
    library = tmp_path / "images"
    tiny = library / "tiny"
    tiny.mkdir(parents=True)
    (tiny / "vmlinuz").write_bytes(b"kernel")
    (tiny / "initrd.gz").write_bytes(b"initrd")
    (tiny / "manifest.json").write_text(json.dumps(
        {"name": "tiny", "format": "kernel", "kernel": "vmlinuz", "initrd": "initrd.gz", "memory": 128}))
    monkeypatch.setenv("TOPOLAB_IMAGE_DIR", str(library))
    return library


@pytest.fixture
def owner():
    return get_user_model().objects.create_user("olivia", password="correct horse battery")


@pytest.fixture
def other():
    return get_user_model().objects.create_user("oscar", password="correct horse battery")


@pytest.fixture
def api(owner):
    client = APIClient()
    client.force_authenticate(owner)
    return client


@pytest.fixture
def other_api(other):
    client = APIClient()
    client.force_authenticate(other)
    return client


@pytest.fixture
def lab(api):
    response = api.post("/api/labs/", {"name": "lab-one"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def small_document(**overrides):
    doc = {
        "version": 1,
        "name": "small",
        "nodes": {
            "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.0.1/24"}}, "ui": {"x": 10, "y": 20}},
            "br1": {"kind": "bridge", "ui": {"x": 100, "y": 20}},
        },
        "links": [{"endpoints": ["h1:eth0", "br1"]}],
    }
    doc.update(overrides)
    return doc


def paths(body):
    return [e["path"] for e in body["errors"]]


# --- create, list, read, delete ------------------------------------------------------------------------------

def test_it_creates_an_empty_lab_with_a_fresh_short_lab_id(api, lab):
    assert lab["name"] == "lab-one"
    assert lab["version"] == 1
    assert lab["document"] == {"version": 1, "name": "lab-one", "nodes": {}, "links": []}
    assert lab["valid"] is True and lab["errors"] == []
    assert len(lab["lab_id"]) <= 8 and lab["lab_id"].isalnum() and lab["lab_id"] == lab["lab_id"].lower()


def test_a_deleted_labs_id_is_never_issued_again(api, lab):
    assert api.delete(f"/api/labs/{lab['id']}/").status_code == 204
    assert not Lab.objects.filter(pk=lab["id"]).exists()
    assert LabId.objects.filter(lab_id=lab["lab_id"]).exists()  # the id stays reserved
    again = api.post("/api/labs/", {"name": "lab-two"}, format="json").json()
    assert again["lab_id"] != lab["lab_id"]


def test_it_lists_only_my_labs(api, other_api, lab):
    other_api.post("/api/labs/", {"name": "not-mine"}, format="json")
    listed = api.get("/api/labs/").json()
    assert [x["name"] for x in listed] == ["lab-one"]
    assert listed[0]["node_count"] == 0 and "document" not in listed[0]


def test_it_creates_a_lab_from_a_document_and_reports_its_problems(api):
    doc = small_document()
    doc["nodes"]["h1"]["interfaces"]["eth0"]["address"] = "10.0.1.300/24"
    response = api.post("/api/labs/", {"name": "bad", "document": doc}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["valid"] is False
    assert "nodes.h1.interfaces.eth0.address" in paths(body)
    assert body["document"]["nodes"]["h1"]["interfaces"]["eth0"]["address"] == "10.0.1.300/24"


def test_it_rejects_other_users_lab_with_404(other_api, lab):
    url = f"/api/labs/{lab['id']}/"
    assert other_api.get(url).status_code == 404
    assert other_api.put(url, {"version": 1, "document": small_document()}, format="json").status_code == 404
    assert other_api.delete(url).status_code == 404
    assert other_api.post(f"{url}duplicate/", {}, format="json").status_code == 404
    assert other_api.get(f"{url}export?format=topolab").status_code == 404
    assert Lab.objects.get(pk=lab["id"]).version == 1


def test_it_refuses_anonymous_users(lab):
    anonymous = APIClient()
    for method, url in [("get", "/api/labs/"), ("get", f"/api/labs/{lab['id']}/"), ("post", "/api/labs/"),
                        ("post", "/api/validate/"), ("get", "/api/images/"), ("post", "/api/labs/import/")]:
        response = getattr(anonymous, method)(url, {}, format="json")
        assert response.status_code in (401, 403), (method, url, response.status_code)


def test_a_script_uses_a_token(owner, lab):
    token = APIClient().post("/api/token/", {"username": "olivia", "password": "correct horse battery"}).json()["token"]
    script = APIClient()
    script.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert [x["id"] for x in script.get("/api/labs/").json()] == [lab["id"]]
    document = {**small_document(), "nodes": {**small_document()["nodes"], "r1": {"kind": "router"}}}
    response = script.put(f"/api/labs/{lab['id']}/", {"version": 1, "document": document}, format="json")
    assert response.status_code == 200
    assert "r1" in response.json()["document"]["nodes"]


def test_session_users_need_a_csrf_token(owner, lab):
    browser = APIClient(enforce_csrf_checks=True)
    browser.login(username="olivia", password="correct horse battery")
    response = browser.put(f"/api/labs/{lab['id']}/", {"version": 1, "document": small_document()}, format="json")
    assert response.status_code == 403


# --- saving with versions ------------------------------------------------------------------------------------

def test_put_saves_the_document_and_bumps_the_version(api, lab):
    response = api.put(f"/api/labs/{lab['id']}/", {"version": 1, "document": small_document()}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == 2 and body["valid"] is True
    assert body["document"]["nodes"]["h1"]["ui"] == {"x": 10, "y": 20}
    assert api.get(f"/api/labs/{lab['id']}/").json()["document"] == body["document"]


def test_a_stale_version_gets_409_with_the_newer_document(api, lab):
    url = f"/api/labs/{lab['id']}/"
    assert api.put(url, {"version": 1, "document": small_document(name="first")}, format="json").status_code == 200
    response = api.put(url, {"version": 1, "document": small_document(name="second")}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["lab"]["version"] == 2
    assert body["lab"]["document"]["name"] == "first"
    assert "h1" in body["lab"]["document"]["nodes"]
    assert Lab.objects.get(pk=lab["id"]).document["name"] == "first"


def test_an_invalid_document_is_saved_with_its_errors(api, lab):
    doc = small_document()
    doc["nodes"]["h1"]["interfaces"]["eth0"]["address"] = "10.0.1.300/24"
    doc["links"].append({"endpoints": ["h1:eth9", "nowhere"]})
    response = api.put(f"/api/labs/{lab['id']}/", {"version": 1, "document": doc}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False and body["version"] == 2
    assert "nodes.h1.interfaces.eth0.address" in paths(body)
    assert any(p.startswith("links.1") for p in paths(body))


def test_patch_renames_the_lab_and_its_document(api, lab):
    response = api.patch(f"/api/labs/{lab['id']}/", {"version": 1, "name": "renamed", "description": "d"},
                         format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["description"], body["document"]["name"]) == ("renamed", "d", "renamed")
    assert body["document"]["description"] == "d"


def test_the_description_lives_in_the_document_and_the_lab_follows_it(api, lab):
    doc = api.get(f"/api/labs/{lab['id']}/").json()["document"]
    doc["description"] = "OSPF between three routers"
    body = api.put(f"/api/labs/{lab['id']}/", {"version": 1, "document": doc}, format="json").json()
    assert body["description"] == "OSPF between three routers"  # what the lab list shows
    del doc["description"]
    body = api.put(f"/api/labs/{lab['id']}/", {"version": 2, "document": doc}, format="json").json()
    assert body["description"] == "" and "description" not in body["document"]
    body = api.patch(f"/api/labs/{lab['id']}/", {"version": 3, "description": "back"}, format="json").json()
    assert body["document"]["description"] == "back" and body["valid"]
    body = api.patch(f"/api/labs/{lab['id']}/", {"version": 4, "description": ""}, format="json").json()
    assert body["description"] == "" and "description" not in body["document"]
    created = api.post("/api/labs/", {"name": "with words", "description": "made here"}, format="json").json()
    assert created["document"]["description"] == "made here"


@pytest.mark.parametrize(
    "document, path",
    [
        ([1, 2, 3], "document"),
        ("nodes: {}", "document"),
        ({"version": 1, "name": "x", "nodes": [], "links": []}, "nodes"),
        ({"version": 1, "name": "x", "nodes": {}, "links": {}}, "links"),
        ({"version": 1, "name": "x", "nodes": {}, "links": [], "description": "x" * (2 * 1024 * 1024 + 1)},
         "document"),
    ],
)
def test_malformed_documents_get_400_with_paths(api, lab, document, path):
    response = api.put(f"/api/labs/{lab['id']}/", {"version": 1, "document": document}, format="json")
    assert response.status_code == 400
    assert path in paths(response.json())
    assert Lab.objects.get(pk=lab["id"]).version == 1


def test_put_without_version_is_400(api, lab):
    response = api.put(f"/api/labs/{lab['id']}/", {"document": small_document()}, format="json")
    assert response.status_code == 400
    assert paths(response.json()) == ["version"]


# --- validate ------------------------------------------------------------------------------------------------

@pytest.fixture
def br_ex_allowed(settings, owner):
    """The operator allows labs on the seed lab's physical bridge br-ex, and the owner is an instructor."""
    settings.TOPOLAB_UPLINK_BRIDGES = "br-ex"
    Profile.objects.create(user=owner, role=Role.INSTRUCTOR)


def test_validate_answers_valid_for_the_seed_lab(api, br_ex_allowed):
    response = api.post("/api/validate/", {"document": yaml.safe_load(SEED)}, format="json")
    assert response.status_code == 200
    assert response.json() == {"valid": True, "errors": []}


def test_the_seed_labs_bridge_is_a_problem_until_the_operator_allows_it(api):
    response = api.post("/api/validate/", {"document": yaml.safe_load(SEED)}, format="json")
    assert response.json()["errors"] == [{"path": "nodes.wan.bridge", "message":
                                          "'br-ex' is not a bridge labs may use on this server (use nat: true)"}]


def test_validate_returns_the_paths_of_problems(api):
    doc = small_document()
    doc["nodes"]["h1"]["interfaces"]["eth0"]["address"] = "10.0.1.300/24"
    doc["nodes"]["h1"]["colour"] = "red"
    body = api.post("/api/validate/", {"document": doc}, format="json").json()
    assert body["valid"] is False
    assert "nodes.h1.interfaces.eth0.address" in paths(body)
    assert any(p.startswith("nodes.h1") and "colour" in e["message"] for e, p in zip(body["errors"], paths(body), strict=True))


def test_validate_refuses_a_non_mapping_with_400(api):
    response = api.post("/api/validate/", {"document": ["not", "a", "lab"]}, format="json")
    assert response.status_code == 400
    assert paths(response.json()) == ["document"]


def build(api, lab):
    """h1, r1, br1 wired h1-br1 and r1-br1 (the canvas edits, the server saves whole documents); the response body."""
    doc = {"version": 1, "name": lab["name"], "nodes": {
        "h1": {"kind": "host", "interfaces": {"eth0": {}}}, "r1": {"kind": "router", "interfaces": {"eth0": {}}},
        "br1": {"kind": "bridge"}},
        "links": [{"endpoints": ["h1:eth0", "br1"]}, {"endpoints": ["r1:eth0", "br1"], "delay": "5ms"}]}
    response = api.put(f"/api/labs/{lab['id']}/", {"version": lab["version"], "document": doc}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_duplicate_copies_the_document_under_a_new_lab_id(api, lab):
    body = build(api, lab)
    response = api.post(f"/api/labs/{lab['id']}/duplicate/", {"name": "copy"}, format="json")
    assert response.status_code == 201
    copy = response.json()
    assert copy["id"] != lab["id"] and copy["lab_id"] != lab["lab_id"]
    assert copy["version"] == 1 and copy["name"] == "copy"
    assert copy["document"]["nodes"] == body["document"]["nodes"]
    assert copy["document"]["links"] == body["document"]["links"]


# --- import and export ---------------------------------------------------------------------------------------

def test_topolab_yaml_round_trips_through_import_and_export(api, br_ex_allowed):
    upload = SimpleUploadedFile("seed-lab.yaml", SEED.encode(), content_type="application/yaml")
    response = api.post("/api/labs/import/", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    lab = response.json()["lab"]
    assert lab["name"] == "seed-lab" and lab["valid"] is True
    exported = api.get(f"/api/labs/{lab['id']}/export?format=topolab")
    assert exported.status_code == 200
    assert exported["Content-Disposition"] == 'attachment; filename="seed-lab.yml"'
    assert yaml.safe_load(exported.content) == yaml.safe_load(SEED)


def test_import_takes_a_json_body_too(api):
    response = api.post("/api/labs/import/", {"format": "topolab", "text": SEED}, format="json")
    assert response.status_code == 201
    assert response.json()["warnings"] == []


def test_import_refuses_malformed_yaml_with_400(api):
    response = api.post("/api/labs/import/", {"format": "topolab", "text": "nodes: [unclosed"}, format="json")
    assert response.status_code == 400
    response = api.post("/api/labs/import/", {"format": "topolab", "text": "- a list\n- not a lab\n"}, format="json")
    assert response.status_code == 400 and paths(response.json()) == ["document"]
    assert not Lab.objects.exists()


def test_containerlab_yaml_round_trips_through_import_and_export(api):
    from netops import containerlab, topology

    clab_text, _ = containerlab.to_containerlab(topology.parse_document(SEED))
    upload = SimpleUploadedFile("seed-lab.clab.yml", clab_text.encode(), content_type="application/yaml")
    response = api.post("/api/labs/import/", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert isinstance(body["warnings"], list)
    exported = api.get(f"/api/labs/{body['lab']['id']}/export?format=containerlab")
    assert exported.status_code == 200
    assert exported["Content-Disposition"].endswith('.clab.yml"')
    assert yaml.safe_load(exported.content) == yaml.safe_load(clab_text)
    if connection.vendor != "postgresql":  # jsonb keeps no key order: the nodes come back sorted (DESIGN.md)
        assert exported.content.decode() == clab_text


def test_exporting_an_invalid_lab_to_containerlab_is_400_with_paths(api, lab):
    doc = small_document()
    doc["nodes"]["h1"]["interfaces"]["eth0"]["address"] = "bogus"
    api.put(f"/api/labs/{lab['id']}/", {"version": 1, "document": doc}, format="json")
    response = api.get(f"/api/labs/{lab['id']}/export?format=containerlab")
    assert response.status_code == 400
    assert "nodes.h1.interfaces.eth0.address" in paths(response.json())
    assert api.get(f"/api/labs/{lab['id']}/export?format=nope").status_code == 400


def test_images_lists_the_library_without_server_paths(api, image_library):
    response = api.get("/api/images/")
    assert response.status_code == 200
    images = response.json()
    assert [i["name"] for i in images] == ["tiny"]
    assert images[0]["format"] == "kernel" and images[0]["memory"] == 128
    assert str(image_library) not in json.dumps(images)


def test_a_vm_with_an_unknown_image_is_invalid(api):
    doc = {"version": 1, "name": "vm", "nodes": {"vm1": {"kind": "vm", "image": "nope"}}, "links": []}
    body = api.post("/api/validate/", {"document": doc}, format="json").json()
    assert body["valid"] is False
    assert "nodes.vm1.image" in paths(body)
    doc["nodes"]["vm1"]["image"] = "tiny"
    assert api.post("/api/validate/", {"document": doc}, format="json").json() == {"valid": True, "errors": []}


def test_the_schema_documents_the_lab_operations(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    ops = {op["operationId"] for item in schema["paths"].values() for op in item.values() if isinstance(op, dict)}
    assert {"labs_list", "labs_create", "labs_update", "labs_duplicate", "labs_export",
            "labs_import", "validate_document", "images_list"} <= ops
    # node and link edits are the canvas's (static/js/editor/model.js): the API takes whole documents
    assert not {op for op in ops if op.startswith(("labs_nodes_", "labs_links_"))}


def test_a_lab_version_is_validated_once_however_often_it_is_read(api, lab, monkeypatch):
    from netops import topology

    calls = []
    real = topology.validate_document
    monkeypatch.setattr(topology, "validate_document", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    for _ in range(3):
        assert api.get(f"/api/labs/{lab['id']}/").status_code == 200
    assert len(calls) <= 1
    body = api.put(f"/api/labs/{lab['id']}/", {"version": lab["version"], "document": {**lab["document"], "nodes": {
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "10.0.1.300/24"}}}}, "links": []}},
        format="json").json()
    assert "nodes.h1.interfaces.eth0.address" in paths(body)  # a new version is validated afresh
    assert api.get(f"/api/labs/{lab['id']}/").json()["errors"] == body["errors"]


def test_the_image_list_comes_from_the_library_index(api, image_library):
    from netops import images

    assert [i["name"] for i in api.get("/api/images/").json()] == ["tiny"]
    index = image_library / images.INDEX_DIR / images.INDEX_FILE
    assert json.loads(index.read_text())["images"][0]["name"] == "tiny"
    second = image_library / "second"
    second.mkdir()  # a new image changes the library's directory: the index follows
    (second / "vmlinuz").write_bytes(b"kernel")
    (second / "initrd.gz").write_bytes(b"initrd")
    (second / "manifest.json").write_text(json.dumps(
        {"name": "second", "format": "kernel", "kernel": "vmlinuz", "initrd": "initrd.gz"}))
    assert [i["name"] for i in api.get("/api/images/").json()] == ["second", "tiny"]
