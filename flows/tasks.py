"""Background work through Django's tasks API (django-tasks-db's ``db_worker``).

A broadcast is planned by one task, then run as one task per chunk of contacts, so
several workers (on several hosts) share a large broadcast. Both are idempotent:
enqueueing them again (a resume) only reaches contacts without a delivery row.
"""

from django.db import transaction
from django.tasks import task

from . import broadcasts


@task()
def run_broadcast(broadcast_id: int) -> dict:
    """Plan the broadcast (its chunks) and queue every chunk not done yet."""
    pending = broadcasts.broadcast_plan(broadcast_id=broadcast_id)
    for chunk_id in pending:
        transaction.on_commit(lambda chunk_id=chunk_id: run_broadcast_chunk.enqueue(chunk_id))
    return {"chunks": len(pending)}


@task()
def run_broadcast_chunk(chunk_id: int) -> dict:
    processed = broadcasts.broadcast_run_chunk(chunk_id=chunk_id)
    return {"processed": processed}
