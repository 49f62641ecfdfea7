"""Who may view, edit and deploy a lab: the one place that decides.

Today a lab belongs to its owner alone. The classroom feature extends these functions (an instructor sees
the labs of their class, for instance); every view, API endpoint and WebSocket consumer asks here, so
that extension happens in one file.
"""
from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import permissions

from .models import Lab


def visible_labs(user) -> QuerySet[Lab]:
    """The labs `user` may see at all; everything else answers 404, as if it did not exist."""
    if not getattr(user, "is_authenticated", False):
        return Lab.objects.none()
    return Lab.objects.filter(owner=user)


def can_view(user, lab: Lab) -> bool:
    return bool(getattr(user, "is_authenticated", False)) and lab.owner_id == user.pk


def can_edit(user, lab: Lab) -> bool:
    return can_view(user, lab) and lab.owner_id == user.pk


def can_deploy(user, lab: Lab) -> bool:
    return can_edit(user, lab)


class LabAccess(permissions.BasePermission):
    """DRF adapter: reads need can_view, writes need can_edit (objects outside visible_labs are 404 earlier)."""

    message = "You may view this lab but not change it."

    def has_object_permission(self, request, view, obj: Lab) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return can_view(request.user, obj)
        return can_edit(request.user, obj)
