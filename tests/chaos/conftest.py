"""The chaos and fuzz suite (issue 17): every test here carries the `chaos` marker, and records its figures.

`make test` runs it with bounded example counts (hypothesis profile `fast`); `make chaos` sets TOPOLAB_CHAOS_FULL=1
(profile `full`, far more examples) and the run ends with the table of figures every part recorded through the
`chaos_figures` fixture: faults injected, recovered, leaks found, 500s found.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from support import CHAOS_FULL as FULL

COLUMNS = ("faults", "recovered", "leaks", "500s")

# deadline None: each test measures the time per document itself (a second at most), on a shared 2-core machine
settings.register_profile("fast", max_examples=int(os.environ.get("TOPOLAB_FUZZ_EXAMPLES", "150")), deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], derandomize=False,
                          print_blob=True)
settings.register_profile("full", max_examples=int(os.environ.get("TOPOLAB_FUZZ_EXAMPLES", "3000")), deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True)
settings.load_profile("full" if FULL else "fast")



_figures: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COLUMNS, 0))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/chaos/" in str(item.path):
            item.add_marker(pytest.mark.chaos)


class Figures:
    """What one part of the suite counts: `figures.add("fuzz: document", faults=1, recovered=1)`."""

    def add(self, part: str, **counts: int) -> None:
        row = _figures[part]
        for key, value in counts.items():
            if key not in row:
                raise KeyError(f"unknown figure {key!r} (one of {', '.join(COLUMNS)})")
            row[key] += value


@pytest.fixture(scope="session")
def chaos_figures() -> Figures:
    return Figures()


@pytest.fixture
def kill_agent(kernel_lock, topolab_subprocess_env, test_tmpdir, spawn, monkeypatch):
    """A real Celery agent on a queue and a run dir of its own, which SIGKILLs itself after the step named in
    `agent.arm(kind, step)` (tests/chaos/kill_agent.py); the web side (this process) sends runs to its queue.
    Yields the OwnAgent (started), with .arm(kind, step), .armed() and .run_dir."""
    from pipeline import WORKER_LOGS, OwnAgent

    queue_name = f"agent-chaos-{uuid.uuid4().hex[:6]}"
    # its own run dir, as the kernel tests' one: straight under /tmp (a lab cell's uid must reach its files there;
    # test_tmpdir is root's alone)
    run_dir = Path(tempfile.mkdtemp(prefix="topolab-chaos-run-"))
    kill_file = test_tmpdir / f"kill-{queue_name}"
    monkeypatch.setenv("TOPOLAB_AGENT_QUEUE", queue_name)
    env = {**topolab_subprocess_env, "TOPOLAB_AGENT_QUEUE": queue_name, "TOPOLAB_RUN_DIR": str(run_dir),
           "TOPOLAB_CHAOS_KILL_FILE": str(kill_file)}
    log_path = test_tmpdir / f"{queue_name}.log"
    WORKER_LOGS[:] = [log_path]
    agent = OwnAgent(spawn, env, log_path, queue_name, argv0=[str(Path(__file__).parent / "kill_agent.py")])
    agent.run_dir = run_dir  # type: ignore[attr-defined]
    agent.arm = lambda kind, step: kill_file.write_text(f"{kind} {step}")  # type: ignore[attr-defined]
    agent.armed = kill_file.exists  # type: ignore[attr-defined]
    # The host's KVM decision (netops.qemu.accel_info) made now, into this run dir: the agent's own, at its start,
    # then reads the cache instead of probing with a qemu in the background while the test takes its inventory.
    from netops import qemu

    with monkeypatch.context() as env_now:
        env_now.setenv("TOPOLAB_RUN_DIR", str(run_dir))
        qemu.accel_info()
    agent.start()
    try:
        yield agent
    finally:
        kill_file.unlink(missing_ok=True)
        agent.stop()
        subprocess.run(["rm", "-rf", "--one-file-system", str(run_dir)], check=False)


@pytest.fixture
def seed_isp(settings):
    """The ISP of the seed lab's `wan` (pipeline.isp_namespace: 203.0.113.1 behind a host bridge of its own, which
    the operator allows labs on). The seed lab's br-ex is that bridge."""
    from pipeline import isp_namespace

    with isp_namespace() as isp:
        settings.TOPOLAB_UPLINK_BRIDGES = isp["bridge"]
        yield isp


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _figures:
        return
    width = max(len(p) for p in _figures) + 2
    tr = terminalreporter
    tr.section(f"chaos figures ({'full' if FULL else 'fast'} counts)")
    tr.write_line("part".ljust(width) + "".join(c.rjust(11) for c in COLUMNS))
    for part, row in sorted(_figures.items()):
        tr.write_line(part.ljust(width) + "".join(str(row[c]).rjust(11) for c in COLUMNS))
    totals = {c: sum(r[c] for r in _figures.values()) for c in COLUMNS}
    tr.write_line("total".ljust(width) + "".join(str(totals[c]).rjust(11) for c in COLUMNS))
    out = os.environ.get("TOPOLAB_CHAOS_FIGURES")
    if out:
        Path(out).write_text(json.dumps({"full": FULL, "parts": dict(_figures), "total": totals}, indent=1))
