"""URLs of consoles and captures (REST under /api/; the WebSockets are in routing.py)."""
from __future__ import annotations

from django.urls import re_path

from .api import views

urlpatterns = [
    re_path(r"^api/labs/(?P<pk>[0-9]+)/captures/?$", views.CaptureListView.as_view(), name="lab-captures"),
    re_path(r"^api/labs/(?P<pk>[0-9]+)/captures/(?P<capture>[0-9]+)/?$", views.CaptureDetailView.as_view(),
            name="capture-detail"),
    re_path(r"^api/labs/(?P<pk>[0-9]+)/captures/(?P<capture>[0-9]+)/stop/?$", views.CaptureStopView.as_view(),
            name="capture-stop"),
    re_path(r"^api/labs/(?P<pk>[0-9]+)/captures/(?P<capture>[0-9]+)/pcap/?$", views.CaptureDownloadView.as_view(),
            name="capture-download"),
    re_path(r"^api/labs/(?P<pk>[0-9]+)/console-sessions/?$", views.ConsoleSessionListView.as_view(),
            name="lab-console-sessions"),
]
