"""Thin views: the front page, the favicon, a health check, and the 404 page (JSON under /api/)."""
from __future__ import annotations

from django.contrib.staticfiles import finders
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults
from django.views.decorators.http import require_GET

from netops.errors import Problem

from .errors import body


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "index.html")


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness only: answers without touching the database, Redis or the agent."""
    return JsonResponse({"ok": True})


@require_GET
def favicon(request: HttpRequest) -> FileResponse:
    """/favicon.ico, which browsers ask for whatever the page's <link rel=icon> says: the SVG in static/img."""
    path = finders.find("img/favicon.svg")
    if not path:
        raise Http404("no favicon")
    response = FileResponse(open(path, "rb"), content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: a path no URL matches (`/api/labs/abc/`: ids are numbers) answers in the API's one error shape
    under /api/, and with the HTML page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(body([Problem("", f"no such API resource: {request.path[:200]}")]), status=404)
    return defaults.page_not_found(request, exception)  # type: ignore[arg-type]
