"""Fixtures for Django tests live in tests/conftest.py (celery_worker, stream_agent, kernel_lock), shared
with the e2e tests."""
