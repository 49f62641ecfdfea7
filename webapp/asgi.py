"""ASGI entry point served by daphne: HTTP (with static files) and WebSockets.

WebSocket routes come from each optional app's ``routing.py`` (``websocket_urlpatterns``),
so a new app plugs in without editing this file.
"""
from __future__ import annotations

import importlib
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

# Django must be set up before anything imports models (consumers, auth middleware).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402


def websocket_urlpatterns() -> list:
    """Collect websocket_urlpatterns from every installed optional app that has routing.py."""
    patterns: list = []
    for name in settings.PRESENT_OPTIONAL_APPS:
        if (settings.BASE_DIR / "webapp" / name / "routing.py").exists():
            module = importlib.import_module(f"webapp.{name}.routing")
            patterns += list(getattr(module, "websocket_urlpatterns", []))
    return patterns


# Static files (our static/ and node_modules at /static/vendor/) are served by Django's
# finders in-process: one daphne, no separate web server, no collectstatic step.
http_app = ASGIStaticFilesHandler(django_asgi_app)

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns()))),
    }
)
