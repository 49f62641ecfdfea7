"""Rate limits on login, token, deploy/destroy and status, with the limits in settings (TOPOLAB_THROTTLE_*).

DRF's throttles, read from settings at each request (DRF binds its rates when the module is imported, so a
changed setting would otherwise need a restart). Counters live in Django's cache: the default per-process
memory cache is right for the single daphne `make run` starts; several daphnes need a shared cache (Redis).
"""
from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle


def rate(scope: str) -> str | None:
    return getattr(settings, f"TOPOLAB_THROTTLE_{scope.upper()}", None)


class ScopedThrottle(ScopedRateThrottle):
    """Per user (per address for anonymous requests), for views with `throttle_scope` (deploy, status, token)."""

    def get_rate(self) -> str | None:
        return rate(self.scope)


class AddressThrottle(SimpleRateThrottle):
    """Per client address, whoever is signed in: sign-in attempts, token requests."""

    def __init__(self, scope: str):
        self.scope = scope
        super().__init__()

    def get_rate(self) -> str | None:
        return rate(self.scope)

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def login_allowed(request) -> tuple[bool, float | None]:
    """(allowed, seconds to wait) for one more sign-in attempt from this address."""
    throttle = AddressThrottle("login")
    if throttle.allow_request(request, None):
        return True, None
    return False, throttle.wait()
