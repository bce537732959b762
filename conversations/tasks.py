"""Periodic background work through Django's tasks API: auto-close, the end of
survey windows, the pruning of expired idempotency keys and of old task results
(``housekeeping``), every
``HOUSEKEEPING_SECONDS``.

Neither queue (the database, Redis) schedules periodic tasks, so the task is a chain:
each run first queues its successor ``HOUSEKEEPING_SECONDS`` ahead (``run_after``),
then works; a worker that dies half-way has already left the next run in the queue,
and any live worker picks it up. :func:`schedule_housekeeping` queues a run only when
none is waiting, under a transaction-level advisory lock, so the chain never doubles
however many workers, deploys or admins start it. It is started by ``manage.py
schedule_housekeeping`` (``bin/run`` runs it before its worker; run it once after each
deploy's migrate) and again whenever an admin saves the inbox settings. The work
itself is idempotent (``housekeeping``), so a duplicate would cost a query, not a
double close.

``wake_snoozed`` is periodic by re-enqueueing itself: while anything is snoozed it
queues its successor first (so a worker dying half-way leaves the next run queued)
for the earliest snooze time, at most ``SNOOZE_WAKE_SECONDS`` ahead, then wakes
every due conversation in one statement (``snooze.wake_due``: idempotent). Snoozing
queues one for its own time, so the chain starts by itself. ``schedule_wake`` queues
nothing when a wake is already queued at or before that time.

"Queued" is asked of the backend (``is_waiting``: the database's and Redis's backends
in ``config.tasks`` answer; another backend is taken to hold none, and a duplicate
costs a query, never a double close or wake).
"""

import zlib
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.tasks import task
from django.utils import timezone

from config.tasks import queue_after_commit

from . import hooks, idempotency, snooze
from . import housekeeping as work
from .inbox_settings import InboxSettings

_LOCK = zlib.crc32(b"parley.housekeeping")


@task()
def housekeeping() -> dict:
    schedule_housekeeping()
    done = {
        "auto_closed": work.auto_close(),
        "surveys_ended": work.expire_surveys(),
        "idempotency_records_pruned": idempotency.prune_expired(),
        "task_results_pruned": work.prune_task_results(),
    }
    for _, counts in hooks.housekeeping_due.send(sender=None):
        done |= counts or {}
    return done


def schedule_housekeeping(*, delay: float | None = None) -> bool:
    """Queue the next run ``delay`` seconds ahead (default ``HOUSEKEEPING_SECONDS``)
    unless one is waiting already; returns whether it queued one. Only a backend that
    can defer keeps a chain (the immediate backend would run it at once, forever)."""
    if not housekeeping.get_backend().supports_defer:
        return False
    delay = settings.HOUSEKEEPING_SECONDS if delay is None else delay
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
        if _waiting(housekeeping):
            return False
        housekeeping.using(run_after=timezone.now() + timedelta(seconds=delay)).enqueue()
    return True


@receiver(post_save, sender=InboxSettings, dispatch_uid="conversations.settings_saved")
def settings_saved(sender, **kwargs) -> None:
    """An admin switching auto-close or CSAT on finds the chain running."""
    queue_after_commit(lambda: schedule_housekeeping(delay=0))


@task()
def wake_snoozed() -> dict:
    now = timezone.now()
    upcoming = snooze.next_due(after=now)
    if upcoming is not None:
        schedule_wake(min(upcoming, now + timedelta(seconds=settings.SNOOZE_WAKE_SECONDS)))
    return {"woken": snooze.wake_due()}


def schedule_wake(at: datetime) -> None:
    backend = wake_snoozed.get_backend()
    if not backend.supports_defer:
        return
    if _waiting(wake_snoozed, by=at):
        return
    wake_snoozed.using(run_after=at).enqueue()


def _waiting(task, *, by: datetime | None = None) -> bool:
    """A run of ``task`` queued and not started yet (to run by ``by``, when given)."""
    is_waiting = getattr(task.get_backend(), "is_waiting", None)
    return is_waiting is not None and is_waiting(task, by=by)
