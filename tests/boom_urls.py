"""A URLconf with one view that fails, for the error-page test (tests/webapp/test_multiuser.py)."""
from __future__ import annotations

from django.urls import path


def boom(request):
    secret = "secret-local-variable"  # noqa: F841 - DEBUG's traceback page would show it
    raise RuntimeError("boom")


urlpatterns = [path("boom/", boom)]
