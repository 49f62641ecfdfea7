"""WebSocket routes of the runs app (webapp.asgi wraps them in AllowedHostsOriginValidator(AuthMiddlewareStack))."""
from __future__ import annotations

from django.urls import re_path

from .consumers import LabEventsConsumer

websocket_urlpatterns = [
    re_path(r"^ws/labs/(?P<pk>[0-9]+)/$", LabEventsConsumer.as_asgi()),
]
