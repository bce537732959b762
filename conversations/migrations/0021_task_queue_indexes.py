"""Two indexes on django-tasks-db's table (the database queue), which its own
migrations do not make:

- the runs of one task that wait (``DatabaseBackend.is_waiting``, asked by every
  snooze and each housekeeping run): without it, the question read every waiting
  task, a backlog of deliveries included;
- the finished results by time (housekeeping deletes those past
  ``TASK_RESULTS_KEPT``).

Made CONCURRENTLY: a deploy does not stop the workers while the table is indexed.
"""

from django.db import migrations

TABLE = "django_tasks_database_dbtaskresult"


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("conversations", "0020_merge_20261130_0915"),
        ("django_tasks_database", "0021_conditional_partial_index_ordering"),
    ]

    operations = [
        migrations.RunSQL(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS parley_task_waiting "
            f"ON {TABLE} (task_path, run_after) WHERE status = 'READY'",
            "DROP INDEX CONCURRENTLY IF EXISTS parley_task_waiting",
        ),
        migrations.RunSQL(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS parley_task_finished "
            f"ON {TABLE} (finished_at) WHERE finished_at IS NOT NULL",
            "DROP INDEX CONCURRENTLY IF EXISTS parley_task_finished",
        ),
    ]
