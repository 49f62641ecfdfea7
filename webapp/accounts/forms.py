from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm


class SignupForm(UserCreationForm):
    """Username and password twice (Django's validators), plus the invite code of a class."""

    code = forms.CharField(max_length=32, help_text="The invite code your instructor gave you")

    class Meta(UserCreationForm.Meta):
        fields = ("username",)
