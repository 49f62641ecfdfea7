"""The node/link editing rules, in the server's operations and in the canvas's model.js, pass the same cases
(tests/shared/document_operations.json): the two editors cannot drift apart unnoticed."""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from netops import kinds
from netops.errors import TopologyError
from webapp.labs import operations

ROOT = Path(__file__).resolve().parents[2]
CASES_PATH = ROOT / "tests" / "shared" / "document_operations.json"
CASES = json.loads(CASES_PATH.read_text())
OPS = {"add_node": operations.add_node, "add_link": operations.add_link, "rename_node": operations.rename_node,
       "delete_node": operations.delete_node, "delete_link": operations.delete_link}


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_the_server_operations_pass_the_shared_case(case):
    doc = copy.deepcopy(case["doc"])
    if case.get("error"):
        with pytest.raises(TopologyError):
            OPS[case["op"]](doc, *case["args"])
        return
    result = OPS[case["op"]](doc, *case["args"])
    assert doc == case["expect"]
    assert result == case.get("result")


def test_the_canvas_model_passes_the_same_cases(tmp_path):
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
