"""Background work of the core through Django's tasks API: waking snoozed
conversations.

``wake_snoozed`` is periodic by re-enqueueing itself: while anything is snoozed it
queues its successor first (so a worker dying half-way leaves the next run queued)
for the earliest snooze time, at most ``SNOOZE_WAKE_SECONDS`` ahead, then wakes
every due conversation in one statement (``snooze.wake_due``: idempotent). Snoozing
queues one for its own time, so the chain starts by itself. ``schedule_wake`` queues
nothing when a wake is already queued at or before that time (with django-tasks-db's
queue; another backend may hold a duplicate, which is harmless).
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.tasks import task
from django.utils import timezone

from . import snooze


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
    if _queued_by(at):
        return
    wake_snoozed.using(run_after=at).enqueue()


def _queued_by(at: datetime) -> bool:
    """A wake already queued to run by ``at`` (django-tasks-db only; a queued wake
    due now runs and queues its own successor)."""
    if "django_tasks_db" not in settings.INSTALLED_APPS:
        return False
    from django_tasks_db.models import DBTaskResult, TaskResultStatus

    return DBTaskResult.objects.filter(
        task_path=wake_snoozed.module_path, status=TaskResultStatus.READY, run_after__lte=at
    ).exists()
