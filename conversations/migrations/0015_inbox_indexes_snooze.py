from django.db import migrations

# The inbox's filters are correlated: open conversations are the unarchived, mostly
# unassigned, never snoozed ones. Estimated column by column, "open, mine or
# unassigned, not snoozed" came out 50x too few rows, and the planner read every
# such conversation and sorted them instead of walking conv_open_activity newest
# first (docs/performance.md). A multi-column MCV list gives it the real fractions.
# ANALYZE: a column just added has no statistics, and autovacuum does not analyze a
# table because a column was added.
STATISTICS = "conv_inbox_mcv"


class Migration(migrations.Migration):
    dependencies = [("conversations", "0014_merge_20261130_0655")]

    operations = [
        migrations.RunSQL(
            f"CREATE STATISTICS {STATISTICS} (mcv) "
            "ON status, archived_at, assignee_id, snoozed_until FROM conversations_conversation",
            f"DROP STATISTICS {STATISTICS}",
        ),
        migrations.RunSQL("ANALYZE conversations_conversation", migrations.RunSQL.noop),
    ]
