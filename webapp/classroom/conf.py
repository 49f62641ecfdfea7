"""Operator defaults for quotas: Django settings TOPOLAB_QUOTA_*, else the same-named env variables, else these.

A value of 0 means "no limit". Per-user and per-class Quota rows override them field by field.
"""
from __future__ import annotations

import os

from django.conf import settings

DEFAULTS = {
    # per user: what one student (or instructor) may have running at once; staff have no default limits
    "USER_RUNNING_LABS": 2,
    "USER_NODES": 40,
    "USER_VMS": 4,
    "USER_VM_MEMORY": 2048,  # MiB
    # per class: the sum over all its members
    "CLASS_RUNNING_LABS": 60,
    "CLASS_NODES": 1200,
    "CLASS_VMS": 60,
    "CLASS_VM_MEMORY": 32768,  # MiB
}


def quota_default(name: str) -> int:
    """TOPOLAB_QUOTA_<NAME> from settings, then the environment, then DEFAULTS."""
    key = f"TOPOLAB_QUOTA_{name}"
    value = getattr(settings, key, None)
    if value is None:
        value = os.environ.get(key)
    if value is None or value == "":
        return DEFAULTS[name]
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a whole number, not {value!r}") from None
    if number < 0:
        raise ValueError(f"{key} must not be negative")
    return number
