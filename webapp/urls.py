"""Top-level URLs. Optional apps (labs, runs, accounts, classroom) plug in through their urls.py."""
from __future__ import annotations

import importlib

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from webapp.accounts.tokens import obtain_expiring_token
from webapp.accounts.views import ThrottledLoginView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/token/", obtain_expiring_token, name="api-token"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("webapp.core.urls")),
]

for _name in settings.PRESENT_OPTIONAL_APPS:
    if (settings.BASE_DIR / "webapp" / _name / "urls.py").exists():
        importlib.import_module(f"webapp.{_name}.urls")  # surface import errors with their own traceback
        urlpatterns.append(path("", include(f"webapp.{_name}.urls")))
