"""A user's role on the server. The operator is Django staff/superuser and needs no profile."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    INSTRUCTOR = "instructor"
    STUDENT = "student"


class Profile(models.Model):
    """One per user who signed up or was made an instructor; users without one count as students."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    role = models.CharField(max_length=12, choices=Role.choices, default=Role.STUDENT)

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"{self.user} ({self.role})"


def role_of(user) -> str:
    """The user's role; a user without a profile is a student."""
    profile = getattr(user, "profile", None) if getattr(user, "is_authenticated", False) else None
    return profile.role if profile else Role.STUDENT


def is_instructor(user) -> bool:
    return getattr(user, "is_authenticated", False) and role_of(user) == Role.INSTRUCTOR
