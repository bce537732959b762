from django.db import migrations

from reports import rollup


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0004_rollup_days_index"),
        ("conversations", "0015_reports_merge"),
    ]

    operations = [migrations.RunSQL(rollup.INSTALL, migrations.RunSQL.noop)]
