"""The document is the only home of a lab's name and description: copy the columns into it, then drop them."""
from __future__ import annotations

from django.db import migrations, models


def into_document(apps, schema_editor):
    Lab = apps.get_model("labs", "Lab")
    for lab in Lab.objects.all():
        document = dict(lab.document) if isinstance(lab.document, dict) else {"version": 1, "nodes": {}, "links": []}
        document["name"] = lab.name
        if lab.description:
            document["description"] = lab.description
        if document != lab.document:
            Lab.objects.filter(pk=lab.pk).update(document=document)


def out_of_document(apps, schema_editor):
    Lab = apps.get_model("labs", "Lab")
    for lab in Lab.objects.all():
        document = lab.document if isinstance(lab.document, dict) else {}
        name = document.get("name") if isinstance(document.get("name"), str) else ""
        description = document.get("description") if isinstance(document.get("description"), str) else ""
        Lab.objects.filter(pk=lab.pk).update(name=name[:100], description=description)


class Migration(migrations.Migration):
    dependencies = [("labs", "0001_initial")]

    operations = [
        migrations.RunPython(into_document, out_of_document),
        migrations.RemoveField(model_name="lab", name="name"),
        migrations.RemoveField(model_name="lab", name="description"),
    ]
