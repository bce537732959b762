from django.conf import settings
from django.db import migrations

from reports import rollup


def default_time_zone(apps, schema_editor):
    apps.get_model("reports", "Setting").objects.get_or_create(
        pk=1, defaults={"time_zone": settings.TIME_ZONE}
    )


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0001_rollups"),
        ("conversations", "0010_response_times"),
    ]

    operations = [
        migrations.RunPython(default_time_zone, migrations.RunPython.noop),
        migrations.RunSQL(rollup.INSTALL, rollup.UNINSTALL),
    ]
