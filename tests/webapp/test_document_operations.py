"""The node/link editing rules exist once, in the canvas's model.js (the server takes whole documents and checks them
with netops): model.js passes the cases of tests/shared/document_operations.json, run in Node with the kind
registry the server serves."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from netops import kinds

ROOT = Path(__file__).resolve().parents[2]
CASES_PATH = ROOT / "tests" / "shared" / "document_operations.json"
CASES = json.loads(CASES_PATH.read_text())


def test_the_server_keeps_no_editing_rules_of_its_own():
    assert not (ROOT / "webapp" / "labs" / "operations.py").exists()
    assert "apply_operation" not in (ROOT / "webapp" / "labs" / "services.py").read_text()


def test_the_canvas_model_passes_the_shared_cases(tmp_path):
    node = shutil.which("node")
    assert node, "node (installed by scripts/setup.sh with npm) runs the canvas's model.js"
    registry = tmp_path / "kinds.json"
    registry.write_text(json.dumps(kinds.public()))
    done = subprocess.run([node, str(ROOT / "tests" / "shared" / "run_model_cases.mjs"), str(CASES_PATH),
                           str(registry)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    outcomes = json.loads(done.stdout)
    for case, outcome in zip(CASES, outcomes, strict=True):
        if case.get("error"):
            assert outcome["error"], case["case"]
        else:
            assert not outcome["error"], (case["case"], outcome.get("message"))
            assert outcome["doc"] == case["expect"], case["case"]
            assert outcome["result"] == case.get("result"), case["case"]
