"""Fixtures for the Django tests. The shared ones (celery_worker, stream_agent, kernel_lock) live in
tests/conftest.py, with the e2e tests."""
from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model


# two users the console tests share: the owner of the lab and a stranger to it
@pytest.fixture
def olga():
    return get_user_model().objects.create_user("olga", password="pw-olga-123")


@pytest.fixture
def mallory():
    return get_user_model().objects.create_user("mallory", password="pw-mallory-123")


@pytest.fixture(autouse=True)
def _no_stray_worker_runs(request, settings):
    """A test without the real worker must not feed it: the session's worker, once an earlier test started it, would
    run this test's deploys (in the kernel) and write while the test's data is flushed (on PostgreSQL the flush
    then deadlocks with it). Such a test's tasks go to a queue nobody consumes; a test that starts processes of its
    own (spawn: its own agent on its own queue, or the stream agent) is left as it is."""
    if not {"celery_worker", "spawn"} & set(request.fixturenames):
        settings.TOPOLAB_AGENT_QUEUE = f"agent.unconsumed-{os.getpid()}"
    yield
