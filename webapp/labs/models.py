"""A lab is one topology document (DESIGN.md) owned by a user, plus the short id the engine names it by."""
from __future__ import annotations

import secrets

from django.conf import settings
from django.db import IntegrityError, models, transaction

LAB_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def empty_document() -> dict:
    return {"version": 1, "name": "", "nodes": {}, "links": []}


class LabId(models.Model):
    """Every lab id ever issued. Rows are never deleted, so a deleted lab's id is never handed out again.

    Destroy finds kernel objects by the lab id in their names and tags; reusing an id could let a new lab
    adopt (or a destroy remove) leftovers of an old one.
    """

    lab_id = models.CharField(max_length=8, unique=True)
    issued = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["issued"]
        verbose_name = "lab id"

    def __str__(self) -> str:
        return self.lab_id

    @classmethod
    def issue(cls) -> str:
        """A fresh id: 'l' + 7 random base36 characters, recorded before it is returned."""
        for _ in range(20):
            candidate = "l" + "".join(secrets.choice(LAB_ID_ALPHABET) for _ in range(7))
            try:
                with transaction.atomic():
                    cls.objects.create(lab_id=candidate)
                return candidate
            except IntegrityError:
                continue
        raise RuntimeError("could not issue a unique lab id")


class Lab(models.Model):
    """A user's lab. `document` is the single source of truth: nodes, links, and the lab's name and description
    (`name` and `description` are read from it and written into it; no column copies them).

    `version` grows by one on every saved change; writers send the version they started from and get a
    conflict when someone else saved in between (optimistic concurrency).
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="labs")
    document = models.JSONField(default=empty_document)
    version = models.PositiveIntegerField(default=1)
    lab_id = models.CharField(max_length=8, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["lab_id"], name="labs_lab_unique_lab_id"),
            models.CheckConstraint(
                condition=models.Q(lab_id__regex=r"^[a-z0-9]{1,8}$"), name="labs_lab_lab_id_format"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.lab_id})"

    def _document(self) -> dict:
        return self.document if isinstance(self.document, dict) else empty_document()

    @property
    def name(self) -> str:
        """The document's `name` ("" when it has none)."""
        value = self._document().get("name")
        return value if isinstance(value, str) else ""

    @name.setter
    def name(self, value: str) -> None:
        self.document = {**self._document(), "name": value}

    @property
    def description(self) -> str:
        """The document's `description` ("" when it has none)."""
        value = self._document().get("description")
        return value if isinstance(value, str) else ""

    @description.setter
    def description(self, value: str) -> None:
        document = {k: v for k, v in self._document().items() if k != "description"}
        if value:
            document["description"] = value
        self.document = document

    def save(self, *args, **kwargs) -> None:
        if not self.lab_id:
            self.lab_id = LabId.issue()
        super().save(*args, **kwargs)
