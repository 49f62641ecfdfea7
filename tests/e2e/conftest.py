"""E2E fixtures: real daphne (HTTP + WebSockets) and Debian's Chromium driven by Playwright.

Tests stay sync (Playwright's sync API cannot run inside a running asyncio loop) and use
`@pytest.mark.django_db(transaction=True)` so daphne, another process, sees their data.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "var" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _daphne(spawn, env: dict[str, str], log_path: Path, procs: list | None = None,
            port: int | None = None) -> Iterator[str]:
    """A real daphne serving webapp.asgi with `env`; yields http://127.0.0.1:<port> once /healthz answers (its
    Popen appended to `procs`, when given, for a test that watches or kills it; on `port` to restart one)."""
    port = port or _free_port()
    proc = spawn(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "webapp.asgi:application"],
        log_path=log_path,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    if procs is not None:
        procs.append(proc)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"daphne exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"daphne did not answer within 30 s:\n{log_path.read_text()}")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def daphne_with(django_db_setup, topolab_subprocess_env, test_tmpdir, spawn) -> Callable:
    """daphne_with(name, **env): a context manager serving another daphne with these settings in its
    environment (say TOPOLAB_UPLINK_BRIDGES), against the same test DB and Redis; yields its URL.

    DEBUG stays off, as `make run` has it (static files and error pages are tested that way). Every test signs
    in from 127.0.0.1: the sign-in limit is the operator's, not a test's."""

    def start(name: str, **extra: str):
        env = {**topolab_subprocess_env, "TOPOLAB_THROTTLE_LOGIN": "1000/minute", **extra}
        env.pop("TOPOLAB_DEBUG", None)
        return _daphne(spawn, env, test_tmpdir / f"{name}.log")

    return start


@pytest.fixture(scope="session")
def live_server_url(daphne_with) -> Iterator[str]:
    """http://127.0.0.1:<port> of a real daphne serving webapp.asgi against the test DB and Redis."""
    with daphne_with("daphne") as url:
        yield url


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright():
    """Let test code use the ORM while Playwright's sync API keeps its event loop in this thread.

    Module-scoped, like `browser`, so nothing of it outlives the e2e modules.
    """
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def browser(_orm_beside_playwright):
    """Headless Debian Chromium (Playwright cannot download its own browsers here).

    Module-scoped: Playwright's loop must be gone before other test packages run sync ORM code.
    """
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing (make setup installs the chromium package)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server_url, request):
    """A fresh browser context and page; base_url is the live server, so page.goto("/") works.

    At teardown a screenshot goes to var/artifacts/e2e/<test name>.png, pass or fail.
    """
    context = browser.new_context(base_url=live_server_url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    try:
        screenshot(page, f"e2e/{request.node.name}")
    finally:
        context.close()


def screenshot(page, name: str) -> Path:
    """Save a PNG of the page under var/artifacts/ and return its path."""
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_./-]+', '_', name)}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(name="screenshot")
def screenshot_fixture() -> Callable:
    return screenshot


@pytest.fixture
def login() -> Callable:
    """login(page, username, password): sign in through the real login form."""

    def _login(page, username: str, password: str) -> None:
        page.goto("/accounts/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        with page.expect_navigation():
            page.click("button[type=submit]")
        if "/accounts/login/" in page.url:
            raise AssertionError(f"login as {username!r} failed")

    return _login
