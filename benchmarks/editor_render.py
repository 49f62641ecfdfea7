"""How long the editor takes to show a 500-node lab in headless Chromium.

Creates a private database with one user and a 500-node, 499-link lab (25 routers in a chain, each with a
switch and 18 hosts), starts daphne on a free loopback port, signs in with Playwright and opens the editor
several times. Prints, per run, the time from navigation start to `window.topolabReady` (set by main.js after
the canvas first rendered), and the median. Nothing is asserted; compare the figure with the 1 s target.

    .venv/bin/python benchmarks/editor_render.py [--nodes 500] [--runs 5]
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PASSWORD = "benchmark password 1"


def big_document(nodes: int) -> dict:
    """Routers in a chain; each has a switch with hosts on it; laid out in a grid of columns."""
    per_router = 20  # router + switch + 18 hosts
    doc: dict = {"version": 1, "name": "big", "nodes": {}, "links": []}
    routers = max(1, nodes // per_router)
    for r in range(routers):
        x0 = 200 + (r % 5) * 900
        y0 = 150 + (r // 5) * 700
        router, switch = f"r{r + 1}", f"br{r + 1}"
        doc["nodes"][router] = {"kind": "router", "interfaces": {"eth0": {"address": f"10.{r}.0.254/24"}},
                                "ui": {"x": x0 + 380, "y": y0}}
        doc["nodes"][switch] = {"kind": "bridge", "ui": {"x": x0 + 380, "y": y0 + 160}}
        doc["links"].append({"endpoints": [f"{router}:eth0", switch]})
        for h in range(per_router - 2):
            if len(doc["nodes"]) >= nodes:
                break
            host = f"h{r + 1}x{h + 1}"
            doc["nodes"][host] = {"kind": "host", "interfaces": {"eth0": {"address": f"10.{r}.0.{h + 1}/24"}},
                                  "routes": [{"to": "default", "via": f"10.{r}.0.254"}],
                                  "ui": {"x": x0 + (h % 9) * 95, "y": y0 + 330 + (h // 9) * 140}}
            doc["links"].append({"endpoints": [f"{host}:eth0", switch]})
        if r:
            prev = f"r{r}"
            doc["nodes"][prev]["interfaces"]["eth2" if r > 1 else "eth1"] = {}
            doc["nodes"][router]["interfaces"]["eth1"] = {}
            doc["links"].append({"endpoints": [f"{prev}:{'eth2' if r > 1 else 'eth1'}", f"{router}:eth1"]})
    while len(doc["nodes"]) < nodes:  # top up to exactly `nodes`
        i = len(doc["nodes"])
        doc["nodes"][f"x{i}"] = {"kind": "bridge", "ui": {"x": 100 + (i % 30) * 90, "y": -400 - (i // 30) * 90}}
    return doc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="topolab-bench-"))
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="webapp.settings", TOPOLAB_DB=str(tmp / "db.sqlite3"),
               TOPOLAB_SECRET_KEY="benchmark-only-secret-key-" + "x" * 30, TOPOLAB_DEBUG="0",
               PYTHONPATH=str(REPO))
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from webapp.labs import services

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", password=PASSWORD)
    document = big_document(args.nodes)
    lab = services.create_lab(user, "big", "", document).lab
    print(f"lab {lab.pk}: {len(document['nodes'])} nodes, {len(document['links'])} links")

    port = free_port()
    daphne = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                               "webapp.asgi:application"], cwd=REPO, env=env,
                              stdout=open(tmp / "daphne.log", "wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError as exc:
                if daphne.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"daphne did not start:\n{(tmp / 'daphne.log').read_text()}") from exc
                time.sleep(0.1)
        measure(base, lab.pk, args.runs)
    finally:
        daphne.terminate()
        daphne.wait(timeout=10)


def measure(base: str, lab_pk: int, runs: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=base, viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.goto("/accounts/login/")
        page.fill("#id_username", "bench")
        page.fill("#id_password", PASSWORD)
        with page.expect_navigation():
            page.click("button[type=submit]")
        figures = []
        for run in range(runs + 1):  # the first, cold run warms the browser cache and is reported apart
            page.goto(f"/labs/{lab_pk}/")
            page.wait_for_function("window.topolabReady !== undefined", timeout=60_000)
            ready = page.evaluate("window.topolabReady")  # ms since navigation start
            after_fetch = page.evaluate("window.topolabRenderMs")
            count = page.evaluate("[window.topolab.cy.nodes().length, window.topolab.cy.edges().length]")
            parts = page.evaluate("window.topolabTimings")
            label = "cold" if run == 0 else f"run {run}"
            print(f"{label:>6}: ready {ready:7.1f} ms after navigation; from script start {after_fetch:6.1f} ms = "
                  f"GET lab {parts['fetchMs']:5.1f} + build canvas {parts['createMs']:5.1f} + first paint "
                  f"{parts['paintMs']:5.1f} ({count[0]} nodes, {count[1]} edges drawn)")
            if run:
                figures.append(ready)
        page.screenshot(path=str(REPO / "var" / "artifacts" / "editor-500.png"))
        browser.close()
    print(f"median of {runs} warm runs: {statistics.median(figures):.1f} ms (target: under 1000 ms)")


if __name__ == "__main__":
    main()
