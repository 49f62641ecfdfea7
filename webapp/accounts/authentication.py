"""Token authentication whose tokens expire TOPOLAB_TOKEN_TTL seconds after they were issued (default one day).

DRF's TokenAuthentication never expires a token and has no setting for it. Kept apart from the token view
(webapp.accounts.tokens): DRF imports authentication classes while its own views module loads.
"""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication


def token_ttl() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "TOPOLAB_TOKEN_TTL", 24 * 3600)))


def expires(token):
    return token.created + token_ttl()


class ExpiringTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if expires(token) <= timezone.now():
            raise exceptions.AuthenticationFailed("Token expired; get a new one from POST /api/token/.")
        return user, token
