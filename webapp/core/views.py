"""Thin views: the front page, the favicon and a health check."""
from __future__ import annotations

from django.contrib.staticfiles import finders
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


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
