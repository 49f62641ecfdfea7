"""Fixtures for the Django tests. The shared ones (celery_worker, stream_agent, kernel_lock) live in
tests/conftest.py, with the e2e tests."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model


# two users the console tests share: the owner of the lab and a stranger to it
@pytest.fixture
def olga():
    return get_user_model().objects.create_user("olga", password="pw-olga-123")


@pytest.fixture
def mallory():
    return get_user_model().objects.create_user("mallory", password="pw-mallory-123")
