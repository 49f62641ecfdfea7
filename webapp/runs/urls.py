"""URLs of the runs app (REST API under /api/; the WebSocket route is in routing.py)."""
from __future__ import annotations

from django.urls import re_path

from .api import routing, views

urlpatterns = [
    re_path(r"^api/labs/(?P<pk>[0-9]+)/deploy/?$", views.DeployView.as_view(), name="lab-deploy"),
    re_path(r"^api/labs/(?P<pk>[0-9]+)/destroy/?$", views.DestroyView.as_view(), name="lab-destroy-deployment"),
    re_path(r"^api/labs/(?P<pk>[0-9]+)/actions/?$", views.LabActionView.as_view(), name="lab-action"),
    re_path(r"^api/labs/(?P<pk>[0-9]+)/runs/?$", views.LabRunsView.as_view(), name="lab-runs"),
    re_path(r"^api/labs/(?P<pk>[0-9]+)/events/?$", views.LabEventsView.as_view(), name="lab-events"),
    re_path(r"^api/labs/(?P<pk>[0-9]+)/status/?$", views.LabStatusView.as_view(), name="lab-status"),
    re_path(r"^api/labs/(?P<pk>[0-9]+)/nodes/(?P<node>[A-Za-z][A-Za-z0-9_-]{0,31})/routing/?$",
            routing.RouterRoutingView.as_view(), name="lab-router-routing"),
    re_path(r"^api/runs/(?P<pk>[0-9]+)/?$", views.RunDetailView.as_view(), name="run-detail"),
]
