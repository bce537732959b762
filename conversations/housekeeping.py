"""The periodic closes (PRODUCT.md §3): auto-close of idle In progress
conversations and the end of the satisfaction survey's window, set-based.

Each batch is one statement: the due rows locked ``SKIP LOCKED`` (a row a service
holds is taken by a later run, and this never waits, so it cannot deadlock with the
services' lock order), updated, and their history lines inserted from the UPDATE's
``RETURNING``; one transaction per batch keeps the locks short. Idempotent: a row
that is no longer due is not selected, so a run repeated or run twice at once closes
nothing twice. The database's triggers check every edge, keep the tab counters and
publish the change to open screens (a batch of more than ``events.MANY`` rows is one
"refresh everything"). The Python hooks are not sent: these closes cancel no flow run
(none runs on an In progress or a Resolved conversation) and deliver nothing.

Old rows are deleted the same way (:func:`delete_older`): the idempotency records past
their lifetime, the results of finished background tasks, which the database queue
keeps forever otherwise, and expired sessions (``inbox``, through
``hooks.housekeeping_due``).
"""

from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.tasks import task_backends
from django.utils import timezone

from .inbox_settings import inbox_settings
from .transitions import Event, Status

BATCH = 1000

# Constants and column names only; every value is a parameter.
_CLOSE_DUE = """
    WITH due AS (
        SELECT id FROM conversations_conversation
        WHERE {due}
        LIMIT %(batch)s
        FOR NO KEY UPDATE SKIP LOCKED
    ), closed AS (
        UPDATE conversations_conversation c
        SET status = 'closed', closed_at = %(now)s, waiting_since = NULL, updated_at = %(now)s,
            archived_at = %(archived_at)s
        FROM due WHERE c.id = due.id
        RETURNING c.id
    ), lines AS (
        INSERT INTO conversations_statuschange
            (conversation_id, from_status, to_status, event, source, note, at)
        SELECT id, %(from_status)s, 'closed', %(event)s, 'system', '', %(now)s FROM closed
        UNION ALL
        SELECT id, 'closed', 'closed', 'archive', 'system', '', %(now)s
        FROM closed WHERE %(archived_at)s::timestamptz IS NOT NULL
    )
    SELECT count(*) FROM closed
"""
_IDLE = "status = 'in_progress' AND archived_at IS NULL AND last_activity_at < %(cutoff)s"
_SURVEY_OVER = "status = 'resolved' AND resolved_at < %(cutoff)s"


def _close_all_due(due: str, *, cutoff, from_status: str, event: Event, batch: int) -> int:
    total = 0
    while True:
        now = timezone.now()
        params = {
            "cutoff": cutoff,
            "batch": batch,
            "now": now,
            "archived_at": now if inbox_settings().archive_on_close else None,
            "from_status": from_status,
            "event": str(event),
        }
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_CLOSE_DUE.format(due=due), params)
            (closed,) = cursor.fetchone()
        total += closed
        if closed < batch:
            return total


def auto_close(*, batch: int = BATCH) -> int:
    """Close In progress conversations with no message for the settings' period (off
    when it is empty); returns how many."""
    after = inbox_settings().auto_close_after
    if after is None:
        return 0
    cutoff = timezone.now() - after
    return _close_all_due(
        _IDLE, cutoff=cutoff, from_status=Status.IN_PROGRESS, event=Event.AUTO_CLOSE, batch=batch
    )


def expire_surveys(*, batch: int = BATCH) -> int:
    """Close, without a rating, resolved conversations whose survey window ended (also
    after CSAT was switched off: none stays Resolved); returns how many."""
    cutoff = timezone.now() - inbox_settings().csat_window
    return _close_all_due(
        _SURVEY_OVER,
        cutoff=cutoff,
        from_status=Status.RESOLVED,
        event=Event.SURVEY_EXPIRE,
        batch=batch,
    )


PRUNE_BATCH = 5000
# Table and column names only (constants of the callers); the values are parameters.
_DELETE_OLDER = """
    WITH gone AS (
        DELETE FROM {table} WHERE {key} IN (
            SELECT {key} FROM {table} WHERE {column} < %(cutoff)s
            LIMIT %(batch)s
            FOR UPDATE SKIP LOCKED
        )
        RETURNING 1
    )
    SELECT count(*) FROM gone
"""


def delete_older(
    table: str, column: str, cutoff: datetime, *, key: str = "id", batch: int = PRUNE_BATCH
) -> int:
    """Delete the rows of ``table`` (primary key ``key``) whose ``column`` is before
    ``cutoff`` (along an index on it), a batch per statement and transaction so no
    lock is held long; a row locked by someone else is left to the next run. Returns
    how many."""
    sql = _DELETE_OLDER.format(table=table, column=column, key=key)
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, {"cutoff": cutoff, "batch": batch})
            (deleted,) = cursor.fetchone()
        total += deleted
        if deleted < batch:
            return total


def prune_task_results(*, batch: int = PRUNE_BATCH) -> int:
    """Delete the results of background tasks that finished (succeeded or failed)
    more than ``TASK_RESULTS_KEPT`` ago. Only the database queue keeps them: a row per
    task ever run (each delivery, each housekeeping run), which would grow without end.
    RQ expires its own results."""
    from django_tasks_db.models import DBTaskResult

    from config.tasks import DatabaseBackend

    if not isinstance(task_backends["default"], DatabaseBackend):
        return 0
    cutoff = timezone.now() - settings.TASK_RESULTS_KEPT
    return delete_older(DBTaskResult._meta.db_table, "finished_at", cutoff, batch=batch)
