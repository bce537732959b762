"""Background work through Django's tasks API (django-tasks-db's ``db_worker``)."""

from django.tasks import task

from . import services


@task()
def run_broadcast(broadcast_id: int) -> dict:
    """Deliver a broadcast to its whole segment. Idempotent: a second run (or a run
    after a worker died half-way) only reaches contacts without a delivery row."""
    broadcast = services.broadcast_execute(broadcast_id=broadcast_id)
    return {"sent": broadcast.sent, "skipped": broadcast.skipped, "failed": broadcast.failed}
