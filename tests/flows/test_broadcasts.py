"""Broadcasts (PRODUCT.md §8): skip vs priority, at most once per contact, resumable,
and really run by the background worker."""

import threading

import pytest
from django.core.management import call_command
from django.db import connection
from django_tasks_db.models import DBTaskResult

from conversations import bulk
from conversations.exceptions import InvalidInput
from conversations.models import Message, SenderKind
from conversations.transitions import Status
from flows import broadcasts
from flows.models import (
    Broadcast,
    BroadcastDelivery,
    BroadcastState,
    DeliveryOutcome,
    FlowRun,
    Segment,
)
from tests.factories import ContactFactory, TagFactory, conversation_in

from .conftest import make_flow

pytestmark = pytest.mark.django_db

S = Status
EVERY_STATE = [S.NOT_CONTACTED, S.NEW, S.IN_PROGRESS, S.IN_FLOW, S.CLOSED, "archived"]


def every_status(tags=()):
    conversations = {}
    for state in EVERY_STATE:
        if state == "archived":
            conversations[state] = conversation_in(S.CLOSED, archived=True, tags=tags)
        else:
            conversations[state] = conversation_in(state, tags=tags)
    return conversations


def broadcast_of(flow, segment=Segment.ALL, value="", has_priority=False) -> Broadcast:
    return Broadcast.objects.create(
        flow=flow, segment=segment, segment_value=value, has_priority=has_priority
    )


def outcomes(broadcast):
    return dict(
        BroadcastDelivery.objects.filter(broadcast=broadcast).values_list("contact_id", "outcome")
    )


def test_without_priority_ongoing_contacts_are_skipped(ask_flow):
    convs = every_status()
    broadcast = broadcasts.broadcast_execute(broadcast_id=broadcast_of(ask_flow).pk)

    assert broadcast.state == BroadcastState.DONE
    assert (broadcast.sent, broadcast.skipped, broadcast.failed) == (3, 3, 0)
    by_contact = outcomes(broadcast)
    for state in (S.NEW, S.IN_PROGRESS, S.IN_FLOW):
        assert by_contact[convs[state].contact_id] == DeliveryOutcome.SKIPPED
        convs[state].refresh_from_db()
        assert convs[state].status == state  # untouched
    for state in (S.NOT_CONTACTED, S.CLOSED, "archived"):
        assert by_contact[convs[state].contact_id] == DeliveryOutcome.STARTED
        current = convs[state].contact.conversations.open().get()
        assert current.status == S.IN_FLOW
        assert current.messages.filter(sender_kind=SenderKind.BROADCAST).count() == 2
    assert broadcast.finished_at is not None
    assert broadcast.percent == 100


def test_with_priority_every_contact_gets_it(ask_flow):
    convs = every_status()
    broadcast = broadcasts.broadcast_execute(
        broadcast_id=broadcast_of(ask_flow, has_priority=True).pk
    )
    assert (broadcast.sent, broadcast.skipped, broadcast.failed) == (6, 0, 0)
    for conversation in convs.values():
        assert conversation.contact.conversations.open().get().status == S.IN_FLOW
    assert FlowRun.objects.filter(broadcast=broadcast).count() == 6


@pytest.mark.parametrize(
    ("segment", "value", "expected"),
    [
        (Segment.TAG, "VIP", {"vip-new", "vip-closed"}),
        (Segment.CHANNEL, "whatsapp", {"wa"}),
        (Segment.STATUS, S.NEW, {"vip-new"}),
        (Segment.STATUS, S.CLOSED, {"vip-closed"}),
        (Segment.STATUS, S.NOT_CONTACTED, {"plain", "wa"}),
    ],
)
def test_segments(segment, value, expected, send_only_flow):
    vip = TagFactory(name="vip")
    conversation_in(S.NEW, contact=ContactFactory(name="vip-new"), tags=[vip])
    conversation_in(S.CLOSED, contact=ContactFactory(name="vip-closed"), tags=[vip])
    ContactFactory(name="plain")
    ContactFactory(name="wa", channel="whatsapp")

    names = set(
        broadcasts.segment_contacts(segment=segment, value=value).values_list("name", flat=True)
    )

    assert names == expected


def test_a_contact_whose_flow_fails_is_recorded_with_the_reason():
    flow = make_flow(("send_message", "About you: {bio}"))
    ok = ContactFactory()
    bad = ContactFactory(attributes={"bio": "x" * 10_001})
    broadcast = broadcasts.broadcast_execute(broadcast_id=broadcast_of(flow).pk)

    assert (broadcast.sent, broadcast.skipped, broadcast.failed) == (1, 0, 1)
    failed = BroadcastDelivery.objects.get(broadcast=broadcast, contact=bad)
    assert failed.outcome == DeliveryOutcome.FAILED
    assert "too long" in failed.reason
    # Nothing half-done for the failed contact; the other one got it.
    assert bad.conversations.get().status == S.NOT_CONTACTED
    assert not FlowRun.objects.filter(conversation__contact=bad).exists()
    assert BroadcastDelivery.objects.get(broadcast=broadcast, contact=ok).outcome == "started"


def test_running_the_same_broadcast_twice_sends_to_nobody_twice(ask_flow):
    every_status()
    broadcast = broadcast_of(ask_flow, has_priority=True)
    broadcasts.broadcast_execute(broadcast_id=broadcast.pk)
    messages = Message.objects.count()

    # A second delivery of the task (e.g. re-enqueued), even with the state reset.
    Broadcast.objects.filter(pk=broadcast.pk).update(state=BroadcastState.RUNNING)
    again = broadcasts.broadcast_execute(broadcast_id=broadcast.pk)

    assert Message.objects.count() == messages
    assert (again.sent, again.skipped, again.failed) == (6, 0, 0)
    assert BroadcastDelivery.objects.filter(broadcast=broadcast).count() == 6
    assert FlowRun.objects.filter(broadcast=broadcast).count() == 6


class WorkerKilled(BaseException):
    """Stands for the worker process dying: not caught as a per-contact failure."""


def test_resumed_after_a_crash_half_way_nobody_gets_it_twice(monkeypatch, send_only_flow):
    contacts = [ContactFactory() for _ in range(7)]
    broadcast = broadcast_of(send_only_flow)
    real_send = bulk.send_automated
    calls = {"n": 0}

    def dying_send(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # in the middle of the second chunk of 3
            raise WorkerKilled()
        return real_send(*args, **kwargs)

    monkeypatch.setattr(bulk, "send_automated", dying_send)
    with pytest.raises(WorkerKilled):
        broadcasts.broadcast_execute(broadcast_id=broadcast.pk, chunk_size=3)

    # The first chunk committed with its rows; the second rolled back whole.
    assert BroadcastDelivery.objects.filter(broadcast=broadcast).count() == 3
    assert Message.objects.filter(sender_kind=SenderKind.BROADCAST).count() == 3
    broadcast.refresh_from_db()
    assert broadcast.state == BroadcastState.RUNNING
    assert broadcast.sent == 3

    monkeypatch.setattr(bulk, "send_automated", real_send)
    broadcasts.broadcast_execute(broadcast_id=broadcast.pk, chunk_size=3)

    broadcast.refresh_from_db()
    assert (broadcast.state, broadcast.sent, broadcast.skipped, broadcast.failed) == (
        BroadcastState.DONE,
        7,
        0,
        0,
    )
    for contact in contacts:
        assert BroadcastDelivery.objects.filter(broadcast=broadcast, contact=contact).count() == 1
        assert (
            Message.objects.filter(
                conversation__contact=contact, sender_kind=SenderKind.BROADCAST
            ).count()
            == 1
        )


def test_invalid_segment_is_refused_and_nothing_created(send_only_flow):
    with pytest.raises(InvalidInput) as refused:
        broadcasts.broadcast_create(flow=send_only_flow, segment=Segment.STATUS, segment_value="x")
    assert "Status must be one of" in refused.value.detail
    with pytest.raises(InvalidInput):
        broadcasts.broadcast_create(flow=send_only_flow, segment=Segment.TAG, segment_value=" ")
    with pytest.raises(InvalidInput):
        broadcasts.broadcast_create(flow=999_999, segment=Segment.ALL)
    assert not Broadcast.objects.exists()
    assert not DBTaskResult.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_background_worker_runs_the_broadcast(send_only_flow):
    every_status()
    broadcast = broadcasts.broadcast_create(flow=send_only_flow, segment=Segment.ALL)
    task = DBTaskResult.objects.get(task_path="flows.tasks.run_broadcast")  # on commit
    watch = DBTaskResult.objects.get(task_path="flows.tasks.watch_broadcast")
    assert watch.run_after > watch.enqueued_at  # one sweep period later
    assert DBTaskResult.objects.count() == 2
    broadcast.refresh_from_db()
    assert broadcast.state == BroadcastState.QUEUED
    assert broadcast.total == 6

    call_command("db_worker", batch=True, reload=False, startup_delay=False, verbosity=0)

    task.refresh_from_db()
    assert task.status == "SUCCESSFUL", task.traceback
    assert task.return_value == {"chunks": 1}
    chunk_task = DBTaskResult.objects.get(task_path="flows.tasks.run_broadcast_chunk")
    assert chunk_task.status == "SUCCESSFUL", chunk_task.traceback
    assert chunk_task.return_value == {"processed": 6}
    broadcast.refresh_from_db()
    assert broadcast.state == BroadcastState.DONE
    assert (broadcast.sent, broadcast.skipped, broadcast.failed) == (3, 3, 0)


@pytest.mark.django_db(transaction=True)
def test_worker_dies_half_way_and_the_resumed_broadcast_sends_to_nobody_twice(
    monkeypatch, settings, send_only_flow
):
    contacts = [ContactFactory() for _ in range(7)]
    settings.BROADCAST_CHUNK_SIZE = 3
    broadcast = broadcasts.broadcast_create(flow=send_only_flow, segment=Segment.ALL)
    real_send = bulk.send_automated
    calls = {"n": 0}

    def dying_send(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # in the middle of the second chunk
            raise WorkerKilled()
        return real_send(*args, **kwargs)

    monkeypatch.setattr(bulk, "send_automated", dying_send)
    call_command("db_worker", batch=True, reload=False, startup_delay=False, verbosity=0)

    broadcast.refresh_from_db()
    assert broadcast.state == BroadcastState.RUNNING
    assert DBTaskResult.objects.filter(status="FAILED").count() == 1
    assert broadcast.sent == 4  # chunks 1 and 3 committed; chunk 2 rolled back whole
    assert BroadcastDelivery.objects.filter(broadcast=broadcast).count() == 4

    monkeypatch.setattr(bulk, "send_automated", real_send)
    call_command("resume_broadcasts", verbosity=0)
    call_command("db_worker", batch=True, reload=False, startup_delay=False, verbosity=0)

    broadcast.refresh_from_db()
    assert (broadcast.state, broadcast.sent, broadcast.skipped, broadcast.failed) == (
        BroadcastState.DONE,
        7,
        0,
        0,
    )
    for contact in contacts:
        assert (
            Message.objects.filter(
                conversation__contact=contact, sender_kind=SenderKind.BROADCAST
            ).count()
            == 1
        )
    assert call_command("resume_broadcasts", verbosity=0) is None
    assert not broadcasts.broadcast_resume(broadcast_id=broadcast.pk)


@pytest.mark.django_db(transaction=True)
def test_two_workers_on_the_same_chunk_never_send_twice(send_only_flow):
    for _ in range(5):
        ContactFactory()
    broadcast = broadcasts.broadcast_create(flow=send_only_flow, segment=Segment.ALL, enqueue=False)
    (chunk_id,) = broadcasts.broadcast_plan(broadcast_id=broadcast.pk)
    results, barrier = [], threading.Barrier(2)

    def worker():
        try:
            barrier.wait()
            results.append(broadcasts.broadcast_run_chunk(chunk_id=chunk_id))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [0, 5]
    broadcast.refresh_from_db()
    assert (broadcast.state, broadcast.sent) == (BroadcastState.DONE, 5)
    assert Message.objects.filter(sender_kind=SenderKind.BROADCAST).count() == 5
