from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Accounts: a profile with a role (instructor or student) and sign-up with a class invite code."""

    name = "webapp.accounts"
    label = "accounts"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Accounts"
