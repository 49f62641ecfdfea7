"""URLs of the hosts app (REST API under /api/)."""
from __future__ import annotations

from django.urls import path

from .api import views

urlpatterns = [
    path("api/hosts/", views.HostListView.as_view(), name="api-hosts"),
]
