"""URLs of the labs app: the REST API under /api/ and the pages under /labs/."""
from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import views
from .api import views as api

router = SimpleRouter()
router.register("labs", api.LabViewSet, basename="lab")

urlpatterns = [
    # The export link is documented without a trailing slash; serve both spellings.
    path("api/labs/<int:pk>/export", api.LabViewSet.as_view({"get": "export"}, schema=None), name="lab-export-noslash"),
    path("api/validate/", api.ValidateView.as_view(), name="api-validate"),
    path("api/images/", api.ImageListView.as_view(), name="api-images"),
    path("api/uplinks/", api.UplinkListView.as_view(), name="api-uplinks"),
    path("api/kinds/", api.KindListView.as_view(), name="api-kinds"),
    path("api/", include(router.urls)),
    path("labs/", views.lab_list, name="lab-list"),
    path("labs/<int:pk>/", views.lab_editor, name="lab-editor"),
]
