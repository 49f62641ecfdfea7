from __future__ import annotations

from django.contrib import admin

from .models import Lab, LabId


@admin.register(Lab)
class LabAdmin(admin.ModelAdmin):
    list_display = ("name", "lab_id", "owner", "version", "updated")
    list_filter = ("owner",)
    search_fields = ("document__name", "lab_id", "owner__username")
    readonly_fields = ("lab_id", "version", "created", "updated")


@admin.register(LabId)
class LabIdAdmin(admin.ModelAdmin):
    list_display = ("lab_id", "issued")
    search_fields = ("lab_id",)
