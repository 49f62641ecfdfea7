"""The lab pages: my labs and the editor shell, for the owner, another user and someone not signed in."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders

from webapp.labs import services

pytestmark = [pytest.mark.webapp, pytest.mark.django_db]


@pytest.fixture
def owner():
    return get_user_model().objects.create_user("olivia", password="correct horse battery")


@pytest.fixture
def lab(owner):
    return services.create_lab(owner, "page-lab").lab


def test_my_labs_needs_a_login(client):
    response = client.get("/labs/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/labs/")


def test_the_editor_needs_a_login(client, lab):
    response = client.get(f"/labs/{lab.pk}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_my_labs_lists_mine_and_not_others(client, owner, lab):
    other = get_user_model().objects.create_user("oscar", password="x")
    services.create_lab(other, "oscars-lab")
    client.force_login(owner)
    body = client.get("/labs/").content.decode()
    assert "page-lab" in body and lab.lab_id in body
    assert "oscars-lab" not in body
    assert 'id="create-lab"' in body and 'id="import-lab-file"' in body
    assert "csrftoken" in client.cookies


def test_my_labs_says_when_there_are_none(client, owner):
    client.force_login(owner)
    assert 'id="labs-empty"' in client.get("/labs/").content.decode()


def test_the_editor_loads_its_modules_and_vendor_scripts(client, owner, lab):
    client.force_login(owner)
    response = client.get(f"/labs/{lab.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert f'data-lab="{lab.pk}"' in body and f'data-lab-id="{lab.lab_id}"' in body
    assert '"cytoscape": "/static/vendor/cytoscape/dist/cytoscape.esm.min.mjs"' in body
    assert "/static/vendor/cytoscape-edgehandles/cytoscape-edgehandles.js" in body
    assert "/static/js/editor/main.js" in body
    # daphne serves /static/ through the staticfiles finders: every file the editor loads must be found there
    for path in ["vendor/cytoscape/dist/cytoscape.esm.min.mjs", "vendor/cytoscape-edgehandles/cytoscape-edgehandles.js",
                 "vendor/lodash/lodash.min.js", "vendor/elkjs/lib/elk.bundled.js",
                 "css/editor.css", "img/nodes/router.svg",
                 *[f"js/editor/{m}.js" for m in ["main", "api", "autosave", "canvas", "history", "layout", "model",
                                                  "palette", "panel", "lablist"]]]:
        assert finders.find(path), path


def test_every_node_kind_has_its_own_icon():
    icons = {kind: open(finders.find(f"img/nodes/{kind}.svg"), "rb").read()
             for kind in ["host", "router", "bridge", "vm", "external"]}
    assert all(icon.startswith(b"<svg") for icon in icons.values())
    assert len(set(icons.values())) == 5


def test_another_users_editor_is_404(client, lab):
    get_user_model().objects.create_user("oscar", password="x")
    client.login(username="oscar", password="x")
    assert client.get(f"/labs/{lab.pk}/").status_code == 404
