"""URLs of the classroom app: REST API under /api/, pages under /classes/, /templates/ and /t/."""
from __future__ import annotations

from django.urls import path

from . import views
from .api import views as api

urlpatterns = [
    path("api/classes/", api.ClassListView.as_view(), name="api-classes"),
    path("api/classes/<int:pk>/", api.ClassDetailView.as_view(), name="api-class"),
    path("api/classes/<int:pk>/invites/", api.InviteCreateView.as_view(), name="api-class-invites"),
    path("api/classes/<int:pk>/members/<int:user_pk>/", api.MemberView.as_view(), name="api-class-member"),
    path("api/classes/<int:pk>/labs/", api.ClassLabsView.as_view(), name="api-class-labs"),
    path("api/templates/", api.TemplateListView.as_view(), name="api-templates"),
    path("api/templates/<int:pk>/", api.TemplateDetailView.as_view(), name="api-template"),
    path("api/templates/<int:pk>/publish/", api.TemplatePublishView.as_view(), name="api-template-publish"),
    path("api/templates/<int:pk>/start/", api.TemplateStartView.as_view(), name="api-template-start"),
    path("api/templates/shared/<str:token>/", api.SharedTemplateView.as_view(), name="api-template-shared"),
    path("api/templates/shared/<str:token>/start/", api.SharedTemplateStartView.as_view(),
         name="api-template-shared-start"),
    path("api/labs/<int:pk>/instructions/", api.LabInstructionsView.as_view(), name="api-lab-instructions"),
    # pages
    path("classes/", views.class_list, name="class-list"),
    path("classes/<int:pk>/", views.class_dashboard, name="class-dashboard"),
    path("classes/<int:pk>/invites/", views.class_invite, name="class-invite"),
    path("classes/<int:pk>/labs/<int:lab_pk>/destroy/", views.class_lab_destroy, name="class-lab-destroy"),
    path("templates/", views.template_list, name="template-list"),
    path("templates/new/", views.template_publish, name="template-publish"),
    path("templates/<int:pk>/", views.template_detail, name="template-detail"),
    path("templates/<int:pk>/start/", views.template_start, name="template-start"),
    path("templates/<int:pk>/publish/", views.template_publish_again, name="template-publish-again"),
    path("t/<str:token>/", views.shared_template, name="template-shared"),
    path("t/<str:token>/start/", views.shared_template_start, name="template-shared-start"),
]
