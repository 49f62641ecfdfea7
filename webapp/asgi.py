"""ASGI entry point served by daphne: HTTP (with static files) and WebSockets.

WebSocket routes: the runs app's (lab events) and the consoles app's (consoles, captures).
"""
from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

# Django must be set up before anything imports models (consumers, auth middleware).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from webapp.consoles import routing as console_routing  # noqa: E402
from webapp.runs import routing as run_routing  # noqa: E402


def websocket_urlpatterns() -> list:
    return [*run_routing.websocket_urlpatterns, *console_routing.websocket_urlpatterns]


# Static files (our static/ and node_modules at /static/vendor/) are served by Django's
# finders in-process: one daphne, no separate web server, no collectstatic step.
http_app = ASGIStaticFilesHandler(django_asgi_app)

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns()))),
    }
)
