"""netops.procs without namespaces: run, and the argument checks (spawn, find and stop need a lab cell:
tests/kernel/test_procs.py)."""
from __future__ import annotations

import pytest

from netops import procs
from netops.errors import ApplyError


def test_spawn_rejects_bad_argv_and_roles_before_anything_runs():
    for argv in (["sleep", "1\0"], [], ["sleep", 1]):
        with pytest.raises(ApplyError):
            procs.check_argv(argv)  # type: ignore[arg-type]
    for role in ("a b", "x/y", "", "r" * 200):
        with pytest.raises(ApplyError):
            procs.check_role(role)
    with pytest.raises(ApplyError):
        procs.check_namespace("../etc")


def test_run_returns_output_and_raises_with_stderr():
    assert procs.run(["echo", "hi"]).stdout == b"hi\n"
    assert procs.run(["cat"], input=b"abc").stdout == b"abc"
    with pytest.raises(ApplyError, match="boom") as err:
        procs.run(["sh", "-c", "echo boom >&2; exit 3"], element="nodes.r1")
    assert err.value.element == "nodes.r1"
    assert procs.run(["false"], check=False).returncode == 1
