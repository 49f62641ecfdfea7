"""POST /api/token/: an API token that expires (webapp.accounts.authentication), throttled per address.

The same token until it expires, then a new one in its place.
"""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.response import Response

from webapp.core.throttling import AddressThrottle

from .authentication import expires


class TokenThrottle(AddressThrottle):
    def __init__(self):
        super().__init__("token")


class ObtainExpiringToken(ObtainAuthToken):
    """POST username and password: {"token", "expires"}."""

    throttle_classes = [TokenThrottle]

    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        with transaction.atomic():
            # one request per user at a time (the user's row; SQLite: its one writer), so two that find the token
            # expired do not both replace it
            get_user_model().objects.select_for_update(no_key=True).filter(pk=user.pk).first()
            token, _ = Token.objects.get_or_create(user=user)
            if expires(token) <= timezone.now():
                token.delete()
                token = Token.objects.create(user=user)
        return Response({"token": token.key, "expires": expires(token)})


obtain_expiring_token = ObtainExpiringToken.as_view()
