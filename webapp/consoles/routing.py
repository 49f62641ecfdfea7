"""WebSocket routes of consoles and captures (webapp.asgi wraps them in AllowedHostsOriginValidator(AuthMiddlewareStack))."""
from __future__ import annotations

from django.urls import re_path

from .consumers import CaptureConsumer, ConsoleConsumer

websocket_urlpatterns = [
    # any node text reaches the consumer, which refuses names that fail naming.NODE_NAME_RE with a reason
    re_path(r"^ws/labs/(?P<pk>[0-9]+)/console/(?P<node>[^/]{1,64})/$", ConsoleConsumer.as_asgi()),
    re_path(r"^ws/labs/(?P<pk>[0-9]+)/captures/(?P<capture>[0-9]+)/$", CaptureConsumer.as_asgi()),
]
