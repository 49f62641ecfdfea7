"""URLs of the checks app (REST API under /api/)."""
from __future__ import annotations

from django.urls import path, re_path

from .api import views as api

urlpatterns = [
    re_path(r"^api/labs/(?P<pk>[0-9]+)/check/?$", api.LabCheckView.as_view(), name="api-lab-check"),
    path("api/labs/<int:pk>/checks/", api.LabChecksView.as_view(), name="api-lab-checks"),
    path("api/labs/<int:pk>/reset/", api.LabResetView.as_view(), name="api-lab-reset"),
    path("api/classes/<int:pk>/scores/", api.ClassScoresView.as_view(), name="api-class-scores"),
    path("api/classes/<int:pk>/scores.csv", api.ClassScoresCsvView.as_view(), name="api-class-scores-csv"),
    path("api/classes/<int:pk>/check-all/", api.ClassCheckAllView.as_view(), name="api-class-check-all"),
]
