"""Request bodies with fields nobody reads are refused, naming each one (as the topology document refuses
unknown keys). `POST /api/labs/` with `{"name": ..., "topology": {...}}` answers 400 with
`topology: unknown field; this request takes name, description, document` instead of making an empty lab.

DRF ignores unknown keys by design and has no switch for it, so this is a small base class of our own.
"""
from __future__ import annotations

from collections.abc import Mapping

from rest_framework import serializers


def unknown_fields(data, allowed) -> dict[str, list[str]]:
    """{field: [message]} for every key of `data` that is not in `allowed` (empty when all are known)."""
    if not isinstance(data, Mapping):
        return {}
    allowed = list(allowed)
    takes = f"this request takes {', '.join(allowed)}" if allowed else "this request takes no body"
    return {key: [f"unknown field; {takes}"] for key in sorted(set(data) - set(allowed), key=str)}


class StrictSerializer(serializers.Serializer):
    """A serializer that refuses keys it does not define (read-only fields are not writable either)."""

    def writable_fields_names(self) -> list[str]:
        return [name for name, field in self.fields.items() if not field.read_only]

    def to_internal_value(self, data):
        unknown = unknown_fields(data, self.writable_fields_names())
        if unknown:
            raise serializers.ValidationError(unknown)
        return super().to_internal_value(data)


def body_problems(request) -> list[tuple[str, str]]:
    """(field, message) for every field of a request that should carry no body (deploy, destroy, start, stop)."""
    return [(key, messages[0]) for key, messages in unknown_fields(request.data, ()).items()]
