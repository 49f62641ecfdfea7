"""Who may view, edit, deploy and open consoles of a lab: the one place that decides.

Every view, API endpoint and WebSocket consumer asks here. The rules:

- the owner may view, edit, deploy/destroy and open consoles;
- an instructor of a class the owner is a member of may view, deploy/destroy and open consoles, not edit;
- everybody else (classmates, instructors of other classes, outsiders, anonymous users) may do nothing,
  and the lab answers 404 to them, as if it did not exist.

The class relation comes from the classroom app when it is installed; without it a lab is its owner's alone.
"""
from __future__ import annotations

from django.apps import apps
from django.db.models import Q, QuerySet
from rest_framework import permissions

from .models import Lab


def _authenticated(user) -> bool:
    return bool(getattr(user, "is_authenticated", False))


def _instructed_user_ids(user) -> QuerySet:
    """Ids of the members of every class `user` instructs (a subquery)."""
    Classroom = apps.get_model("classroom", "Classroom")
    return Classroom.members.through.objects.filter(classroom__instructors=user).values("user_id")


def instructs_owner(user, lab: Lab) -> bool:
    """True when `user` instructs a class the lab's owner is a member of."""
    if not _authenticated(user):
        return False
    members = _instructed_user_ids(user)
    return members.filter(user_id=lab.owner_id).exists()


def visible_labs(user) -> QuerySet[Lab]:
    """The labs `user` may see at all; everything else answers 404, as if it did not exist."""
    if not _authenticated(user):
        return Lab.objects.none()
    members = _instructed_user_ids(user)
    return Lab.objects.filter(Q(owner=user) | Q(owner_id__in=members))


def _owns(user, lab: Lab) -> bool:
    return _authenticated(user) and lab.owner_id == user.pk


def can_view(user, lab: Lab) -> bool:
    return _owns(user, lab) or instructs_owner(user, lab)


def can_edit(user, lab: Lab) -> bool:
    """Only the owner changes a lab's document; instructors look and run, they do not edit."""
    return _owns(user, lab)


def can_deploy(user, lab: Lab) -> bool:
    """Deploy and destroy (the kernel side of a lab)."""
    return _owns(user, lab) or instructs_owner(user, lab)


def can_console(user, lab: Lab) -> bool:
    """Open a node's console or capture packets in the lab."""
    return _owns(user, lab) or instructs_owner(user, lab)


class LabAccess(permissions.BasePermission):
    """DRF adapter: reads need can_view, writes need can_edit (objects outside visible_labs are 404 earlier)."""

    message = "You may view this lab but not change it."

    def has_object_permission(self, request, view, obj: Lab) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return can_view(request.user, obj)
        return can_edit(request.user, obj)
