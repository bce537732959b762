"""The Closed tab's own index (docs/performance.md): without it PostgreSQL walks the
whole inbox newest first and filters out every newer open conversation."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("conversations", "0003_performance")]

    operations = [
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                fields=["-last_activity_at", "-id"],
                condition=models.Q(archived_at__isnull=True, status="closed"),
                name="conv_closed_activity",
            ),
        ),
    ]
