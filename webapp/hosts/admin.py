"""Admin: the lab hosts, up or down, with what each last announced."""
from __future__ import annotations

from django.contrib import admin

from .models import Host


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = ("name", "is_up", "underlay_address", "cpus", "memory_gib", "nodes_running", "version",
                    "last_heartbeat", "down_since", "first_seen")
    search_fields = ("name", "underlay_address")
    readonly_fields = ("name", "underlay_address", "cpus", "memory_bytes", "nodes_running", "version", "first_seen",
                       "last_heartbeat", "down_since")

    @admin.display(description="up", boolean=True)
    def is_up(self, obj: Host) -> bool:
        return obj.up

    @admin.display(description="memory (GiB)")
    def memory_gib(self, obj: Host) -> str:
        return f"{obj.memory_bytes / (1 << 30):.1f}"

    def has_add_permission(self, request) -> bool:
        return False  # agents add themselves
