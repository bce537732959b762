"""The database queue stays cheap as it ages: housekeeping deletes old task results,
the readiness probe reads one row without sorting the table, and "is a run of this
task waiting?" is answered from an index of the waiting runs of that task alone."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from config.tasks import DatabaseBackend
from conversations import housekeeping
from conversations.tasks import housekeeping as housekeeping_task
from conversations.tasks import wake_snoozed

pytestmark = pytest.mark.django_db


def _runs(task, count: int, **fields) -> list:
    """``count`` runs of ``task`` queued, then given ``fields`` (a status, times)."""
    ids = [task.enqueue().id for _ in range(count)]
    DBTaskResult.objects.filter(pk__in=ids).update(**fields)
    return ids


def test_housekeeping_deletes_finished_results_past_their_time_and_nothing_else(settings):
    settings.TASK_RESULTS_KEPT = timedelta(days=14)
    now = timezone.now()
    old = now - timedelta(days=15)
    succeeded = _runs(wake_snoozed, 3, status="SUCCESSFUL", finished_at=old)
    failed = _runs(wake_snoozed, 2, status="FAILED", finished_at=old)
    recent = _runs(wake_snoozed, 2, status="SUCCESSFUL", finished_at=now - timedelta(days=13))
    waiting = _runs(wake_snoozed, 2, status="READY", run_after=old, enqueued_at=old)
    running = _runs(wake_snoozed, 1, status="RUNNING", started_at=old)

    assert housekeeping.prune_task_results(batch=2) == 5  # in batches of two

    left = {str(pk) for pk in DBTaskResult.objects.values_list("pk", flat=True)}
    assert left == {str(pk) for pk in recent + waiting + running}
    assert not DBTaskResult.objects.filter(pk__in=succeeded + failed).exists()
    assert housekeeping.prune_task_results() == 0


def test_housekeeping_reports_the_results_it_pruned(settings):
    settings.TASK_RESULTS_KEPT = timedelta(days=1)
    _runs(wake_snoozed, 3, status="SUCCESSFUL", finished_at=timezone.now() - timedelta(days=2))
    done = housekeeping_task.call()
    assert done["task_results_pruned"] == 3


def test_the_readiness_probe_reads_one_row_without_sorting_the_results():
    _runs(wake_snoozed, 3, status="SUCCESSFUL", finished_at=timezone.now())
    with CaptureQueriesContext(connection) as queries:
        DatabaseBackend("default", {}).ping()
    (query,) = queries.captured_queries
    assert "ORDER BY" not in query["sql"].upper()
    assert query["sql"].rstrip().upper().endswith("LIMIT 1")


def test_whether_a_run_waits_is_asked_of_that_tasks_waiting_runs_only():
    backend = housekeeping_task.get_backend()
    # A backlog: thousands of another task's runs waiting (a queue that was down).
    _runs(wake_snoozed, 2000, status="READY")
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {DBTaskResult._meta.db_table}")
    assert backend.is_waiting(housekeeping_task) is False
    with CaptureQueriesContext(connection) as queries:
        backend.is_waiting(housekeeping_task, by=timezone.now())
    (query,) = queries.captured_queries
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + query["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "parley_task_waiting" in plan, plan

    housekeeping_task.using(run_after=timezone.now() + timedelta(minutes=1)).enqueue()
    assert backend.is_waiting(housekeeping_task) is True
    assert backend.is_waiting(housekeeping_task, by=timezone.now()) is False
