"""Admin: the orphans the health check removed (so an operator sees how many, and which)."""
from __future__ import annotations

from django.contrib import admin

from .models import OrphanedLab


@admin.register(OrphanedLab)
class OrphanedLabAdmin(admin.ModelAdmin):
    list_display = ("lab_id", "found", "removed_count", "error")
    search_fields = ("lab_id",)
    readonly_fields = ("lab_id", "found", "removed", "error")

    @admin.display(description="objects removed")
    def removed_count(self, obj: OrphanedLab) -> int:
        return len(obj.removed or [])

    def has_add_permission(self, request) -> bool:
        return False
