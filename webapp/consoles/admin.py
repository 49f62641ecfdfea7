"""The audit log in the admin: who opened which console or capture, when, and how it ended. Read-only: the rows
are written by the consumers and the stream agent, and an audit log that an admin can edit proves nothing."""
from __future__ import annotations

from django.contrib import admin

from .models import Capture, ConsoleSession


class ReadOnlyAdmin(admin.ModelAdmin):
    """View and search only; rows are neither added, changed nor deleted here."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ConsoleSession)
class ConsoleSessionAdmin(ReadOnlyAdmin):
    list_display = ("started", "ended", "username", "lab_ref", "node", "kind", "bytes_in", "bytes_out", "reason")
    list_filter = ("kind", ("ended", admin.EmptyFieldListFilter), "started", "user")
    search_fields = ("username", "lab_ref", "node", "reason")
    date_hierarchy = "started"
    list_select_related = ("user", "lab")


@admin.register(Capture)
class CaptureAdmin(ReadOnlyAdmin):
    list_display = ("started", "ended", "started_by", "lab", "label", "status", "size", "packets", "message")
    list_filter = ("status", "started", "started_by")
    search_fields = ("label", "node", "filter", "message", "lab__lab_id", "started_by__username")
    date_hierarchy = "started"
    list_select_related = ("started_by", "lab")
