"""Fixtures for Django tests: a real Celery worker (the agent) against the test Redis and DB."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, topolab_subprocess_env, test_tmpdir, spawn):
    """A real `celery -A webapp worker -Q agent` subprocess, running as the current user.

    It reads the same test database file, so a test that uses it must be marked
    `@pytest.mark.django_db(transaction=True)`: only committed rows are visible to the worker.
    Yields the worker's node name. Its log is in <test_tmpdir>/celery-worker.log.
    """
    from webapp.celery import app

    nodename = f"test-agent-{os.getpid()}@localhost"
    log_path = test_tmpdir / "celery-worker.log"
    proc = spawn(
        [
            sys.executable, "-m", "celery", "-A", "webapp", "worker",
            "-Q", "agent", "-n", nodename, "--concurrency", "2",
            "--loglevel", "INFO", "--without-gossip", "--without-mingle",
        ],
        log_path=log_path,
        env=topolab_subprocess_env,
        new_session=True,  # its pool children share its process group, stopped with it
    )
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[nodename], timeout=0.5):
            if proc.poll() is not None:
                pytest.fail(f"celery worker exited with {proc.returncode}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"celery worker did not answer within 60 s:\n{log_path.read_text()}")
        yield nodename
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    """Warm shutdown by TERM; if it hangs, KILL the group this fixture started (and only it)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stray pool children, if any outlived the parent
    except ProcessLookupError:
        pass
