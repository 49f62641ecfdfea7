from __future__ import annotations

from django.apps import AppConfig


class ClassroomConfig(AppConfig):
    """Classroom: classes with instructors and members, invite codes, lab templates and quotas."""

    name = "webapp.classroom"
    label = "classroom"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Classroom"
