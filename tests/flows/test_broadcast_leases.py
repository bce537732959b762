"""Issue 12.7: a chunk whose worker died (its task stays "running" in the queue) is
found by its lease and run again by any live worker's watch, with no command typed;
a chunk a live worker holds is never touched. The process-level proof (a real
``db_worker`` killed with SIGKILL) is tests/reliability/test_worker_kill.py."""

from datetime import timedelta

import psycopg
import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from conversations.models import Message, SenderKind
from flows import broadcasts, tasks
from flows.models import Broadcast, BroadcastChunk, BroadcastDelivery, BroadcastState, Segment
from tests.concurrency import database_url_for_subprocess
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def planned(send_only_flow, settings):
    """A broadcast of 6 contacts in 3 chunks, planned and handed to the queue, whose
    tasks nobody ran (as if their worker had died)."""
    for _ in range(6):
        ContactFactory()
    settings.BROADCAST_CHUNK_SIZE = 2
    broadcast = broadcasts.broadcast_create(flow=send_only_flow, segment=Segment.ALL)
    assert len(broadcasts.broadcast_plan(broadcast_id=broadcast.pk)) == 3
    return broadcast


def _expire(*chunks) -> None:
    BroadcastChunk.objects.filter(pk__in=[c.pk for c in chunks]).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )


def _chunks(broadcast):
    return list(BroadcastChunk.objects.filter(broadcast=broadcast).order_by("index"))


def test_planned_chunks_are_leased_and_not_stalled_yet(planned):
    chunks = _chunks(planned)
    assert all(c.lease_expires_at > timezone.now() for c in chunks)
    assert broadcasts.broadcast_sweep(broadcast_id=planned.pk) == 0
    assert not BroadcastDelivery.objects.exists()


def test_the_sweep_runs_the_stalled_chunks_and_leaves_the_locked_one(planned):
    first, second, third = _chunks(planned)
    _expire(first, second, third)
    # A live worker runs the second chunk: it holds its row until it commits.
    holder = psycopg.connect(database_url_for_subprocess().replace("postgres://", "postgresql://"))
    try:
        holder.execute("SELECT 1 FROM flows_broadcastchunk WHERE id = %s FOR UPDATE", [second.pk])
        assert broadcasts.broadcast_sweep(broadcast_id=planned.pk) == 2
    finally:
        holder.rollback()
        holder.close()
    done = {c.pk: c.done_at is not None for c in _chunks(planned)}
    assert done == {first.pk: True, second.pk: False, third.pk: True}
    assert BroadcastDelivery.objects.count() == 4
    # The worker died instead: its lock is gone, the next sweep finishes the job.
    assert broadcasts.broadcast_sweep(broadcast_id=planned.pk) == 1
    planned.refresh_from_db()
    assert (planned.state, planned.sent) == (BroadcastState.DONE, 6)
    assert Message.objects.filter(sender_kind=SenderKind.BROADCAST).count() == 6


def test_the_watch_queues_its_successor_first_and_stops_when_the_broadcast_is_over(planned):
    _expire(*_chunks(planned))
    watches = DBTaskResult.objects.filter(task_path="flows.tasks.watch_broadcast")
    assert watches.count() == 1  # queued by broadcast_create
    assert tasks.watch_broadcast.call(planned.pk) == {"picked_up": 3}
    assert watches.count() == 2
    assert watches.order_by("-enqueued_at").first().run_after > timezone.now()
    assert Broadcast.objects.get(pk=planned.pk).state == BroadcastState.DONE
    assert tasks.watch_broadcast.call(planned.pk) == {"over": True}
    assert watches.count() == 2  # no successor once it is done


def test_a_broadcast_whose_planner_died_is_planned_by_the_watch(send_only_flow, monkeypatch):
    for _ in range(3):
        ContactFactory()
    broadcast = broadcasts.broadcast_create(flow=send_only_flow, segment=Segment.ALL)
    Broadcast.objects.filter(pk=broadcast.pk).update(
        created_at=timezone.now() - timedelta(minutes=5)
    )
    tasks.watch_broadcast.call(broadcast.pk)
    assert BroadcastChunk.objects.filter(broadcast=broadcast).count() == 1
    assert DBTaskResult.objects.filter(task_path="flows.tasks.run_broadcast_chunk").count() == 1


def test_the_broadcast_page_says_when_it_is_catching_up(planned, staff_client):
    first, *_ = _chunks(planned)
    url = f"/flows/broadcasts/{planned.pk}/"
    assert "Catching up" not in staff_client.get(url).content.decode()
    _expire(first)
    page = staff_client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert 'id="broadcast-catching-up"' in page
    broadcasts.broadcast_sweep(broadcast_id=planned.pk)
    assert "Catching up" not in staff_client.get(url).content.decode()


def test_a_backend_that_cannot_defer_gets_no_watch(settings, send_only_flow):
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    ContactFactory()
    broadcast = broadcasts.broadcast_create(flow=send_only_flow, segment=Segment.ALL)
    broadcast.refresh_from_db()
    assert broadcast.state == BroadcastState.DONE  # run at once, in the request
