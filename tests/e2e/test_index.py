"""The front page in a real browser, served by real daphne."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_index_page_renders_with_styles(page, screenshot):
    page.goto("/")
    assert "Topolab" in page.title()
    assert page.locator("h1").inner_text() == "Network labs in your browser"
    # app.css was served and applied: the top bar has its dark background.
    background = page.eval_on_selector(".topbar", "el => getComputedStyle(el).backgroundColor")
    assert background == "rgb(16, 42, 67)"
    assert screenshot(page, "index").stat().st_size > 0


def test_vendor_es_modules_import_in_the_browser(page):
    page.goto("/")
    kinds = page.evaluate(
        """async () => {
            const cy = await import('/static/vendor/cytoscape/dist/cytoscape.esm.min.mjs');
            const xterm = await import('/static/vendor/@xterm/xterm/lib/xterm.mjs');
            const fit = await import('/static/vendor/@xterm/addon-fit/lib/addon-fit.mjs');
            return [typeof cy.default, typeof xterm.Terminal, typeof fit.FitAddon];
        }"""
    )
    assert kinds == ["function", "function", "function"]


def test_a_user_signs_in_and_sees_their_name(page, login):
    get_user_model().objects.create_user("carol", password="correct horse battery")
    login(page, "carol", "correct horse battery")
    assert page.locator(".whoami").inner_text() == "carol"
