"""Capture.host: the lab host holding the capture's file. Captures that ran before were on the one host there was
(the web tier's own TOPOLAB_HOST, as on one machine every process derives the same name)."""
from __future__ import annotations

from django.conf import settings
from django.db import migrations, models


def on_this_host(apps, schema_editor) -> None:
    Capture = apps.get_model("consoles", "Capture")
    Capture.objects.exclude(agent_channel="").update(host=settings.TOPOLAB_HOST)


class Migration(migrations.Migration):
    dependencies = [("consoles", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="capture",
            name="host",
            field=models.CharField(blank=True, default="", max_length=63),
        ),
        migrations.RunPython(on_this_host, migrations.RunPython.noop),
    ]
