"""The inbox (not archived) by id (docs/performance.md): the tag filter's total,
capped at 1,000, merges the tag's links with this index (8 ms) instead of hashing
every link of the tag and walking the inbox (30 ms)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("conversations", "0004_closed_tab_index")]

    operations = [
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(
                fields=["id"], condition=models.Q(archived_at__isnull=True), name="conv_inbox_id"
            ),
        ),
    ]
