"""The operator manages classes, codes, templates and quotas here (Django admin, staff only)."""
from __future__ import annotations

from django.contrib import admin

from .models import Classroom, InviteCode, LabOrigin, Quota, Template, TemplateVersion


class InviteCodeInline(admin.TabularInline):
    model = InviteCode
    extra = 0
    readonly_fields = ("code", "uses", "created")


@admin.register(Classroom)
class ClassroomAdmin(admin.ModelAdmin):
    list_display = ("name", "created")
    search_fields = ("name",)
    filter_horizontal = ("instructors", "members")
    inlines = [InviteCodeInline]


@admin.register(InviteCode)
class InviteCodeAdmin(admin.ModelAdmin):
    list_display = ("code", "classroom", "uses", "max_uses", "expires")
    list_filter = ("classroom",)
    readonly_fields = ("code",)


class TemplateVersionInline(admin.TabularInline):
    model = TemplateVersion
    extra = 0
    readonly_fields = ("number", "created")
    exclude = ("document",)


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "visibility", "updated")
    list_filter = ("visibility",)
    search_fields = ("title", "owner__username")
    readonly_fields = ("share_token",)
    inlines = [TemplateVersionInline]


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    list_display = ("__str__", "running_labs", "nodes", "vms", "vm_memory")


@admin.register(LabOrigin)
class LabOriginAdmin(admin.ModelAdmin):
    list_display = ("lab", "template_version", "created")
