"""Top-level URLs: the admin, login, the API schema and docs, and each app's urls.py."""
from __future__ import annotations

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
    *(path("", include(f"webapp.{app}.urls")) for app in ("labs", "runs", "accounts", "classroom", "consoles", "checks", "hosts")),
]

handler404 = "webapp.core.views.not_found"  # JSON in the one error shape under /api/
