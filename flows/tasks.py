"""Background work through Django's tasks API (django-tasks-db's ``db_worker``).

A broadcast is planned by one task, then run as one task per chunk of contacts, so
several workers (on several hosts) share a large broadcast. Both are idempotent:
enqueueing them again (a resume) only reaches contacts without a delivery row.

A worker may die half-way (SIGKILL, a lost host): its task stays "running" in the
queue forever. So every broadcast has a watch, a small task that queues its own
successor one sweep period ahead (``BROADCAST_SWEEP_SECONDS``) for as long as the
broadcast runs, and runs again, right there, every chunk whose lease ran out and
that no worker holds (``broadcasts.broadcast_sweep``). Any live worker picks the
watch up; nobody types a command.
"""

from datetime import timedelta

from django.conf import settings
from django.tasks import task
from django.utils import timezone

from config.tasks import queue_after_commit

from . import broadcasts


@task()
def run_broadcast(broadcast_id: int) -> dict:
    """Plan the broadcast (its chunks) and queue every chunk not done yet."""
    pending = broadcasts.broadcast_plan(broadcast_id=broadcast_id)
    for chunk_id in pending:
        queue_after_commit(lambda chunk_id=chunk_id: run_broadcast_chunk.enqueue(chunk_id))
    return {"chunks": len(pending)}


@task()
def run_broadcast_chunk(chunk_id: int) -> dict:
    return {"processed": broadcasts.broadcast_run_chunk(chunk_id=chunk_id)}


@task()
def watch_broadcast(broadcast_id: int) -> dict:
    """Pick up what dead workers left of the broadcast; come back later while it runs."""
    if broadcasts.broadcast_is_over(broadcast_id):
        return {"over": True}
    # The successor first: if this worker dies below, the next watch is queued.
    schedule_watch(broadcast_id)
    if broadcasts.broadcast_plan_is_overdue(broadcast_id):
        run_broadcast.call(broadcast_id)
    return {"picked_up": broadcasts.broadcast_sweep(broadcast_id=broadcast_id)}


def schedule_watch(broadcast_id: int) -> None:
    """Queue the broadcast's next watch one sweep period from now. A backend that
    cannot defer a task (the ImmediateBackend runs everything at once, in the
    request) gets none: there is no worker to lose there."""
    if not watch_broadcast.get_backend().supports_defer:
        return
    later = timezone.now() + timedelta(seconds=settings.BROADCAST_SWEEP_SECONDS)
    watch_broadcast.using(run_after=later).enqueue(broadcast_id)
