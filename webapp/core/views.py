"""Thin views: the front page and a health check."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "index.html")


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness only: answers without touching the database, Redis or the agent."""
    return JsonResponse({"ok": True})
