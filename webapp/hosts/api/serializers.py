"""Serializers of the hosts API."""
from __future__ import annotations

from rest_framework import serializers

from ..models import Host


class HostSerializer(serializers.ModelSerializer):
    address = serializers.IPAddressField(source="underlay_address", protocol="IPv4", read_only=True,
                                         help_text="The underlay address other hosts reach this one's tunnels at")
    memory = serializers.IntegerField(source="memory_bytes", read_only=True, help_text="Memory in bytes")
    nodes = serializers.IntegerField(source="nodes_running", read_only=True, help_text="Nodes running on the host")
    up = serializers.BooleanField(read_only=True,
                                  help_text="False once no heartbeat came for TOPOLAB_HOST_DOWN_AFTER seconds")

    class Meta:
        model = Host
        fields = ["name", "address", "cpus", "memory", "nodes", "version", "first_seen", "last_heartbeat", "up"]
        read_only_fields = fields
