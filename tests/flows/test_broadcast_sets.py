"""A broadcast chunk is delivered set-based (``conversations.bulk``): the same table
decisions, history rows, messages, runs and delivery rows as contact by contact
(the fallback path), in a number of statements that does not grow with the chunk."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations import bulk
from conversations.models import Conversation, Message, StatusChange
from conversations.transitions import Status
from flows import broadcasts
from flows.models import Broadcast, BroadcastDelivery, DeliveryOutcome, FlowRun, Segment
from tests.factories import ContactFactory, conversation_in

from .conftest import make_flow

pytestmark = pytest.mark.django_db

S = Status
STARTS = [S.NOT_CONTACTED, S.NEW, S.IN_PROGRESS, S.IN_FLOW, S.CLOSED, "archived"]

FLOWS = {
    "ask": [("send_message", "Hello {name}!"), ("ask", "What is your name?", "name")],
    "complete": [("send_message", "Our shop opens at 9."), ("add_tag", "Spring")],
    "mark_in_progress": [("send_message", "An agent will follow up."), ("mark_in_progress",)],
    "hand_off": [("add_tag", "Lead"), ("hand_off",)],
    "close": [("send_message", "Thanks, that is all."), ("close",)],
}


def contacts_in_every_state(channel="web"):
    """One contact per starting state, each with its history, in a fixed order."""
    contacts = []
    for n, state in enumerate(STARTS):
        contact = ContactFactory(channel=channel, name=f"Contact {n}")
        if state == "archived":
            conversation_in(S.CLOSED, contact=contact, archived=True)
        else:
            conversation_in(state, contact=contact)
        contacts.append(contact)
    return contacts


def snapshot(contacts, broadcast):
    """Everything a broadcast writes, per contact, without ids and instants."""
    result = []
    for contact in contacts:
        conversations = []
        for conv in Conversation.objects.filter(contact=contact).order_by("pk"):
            conversations.append(
                {
                    "status": conv.status,
                    "archived": conv.archived_at is not None,
                    "closed": conv.closed_at is not None,
                    "waiting": conv.waiting_since is not None,
                    "preview": conv.last_message_preview,
                    "tags": sorted(conv.tags.values_list("name", flat=True)),
                    "history": list(
                        StatusChange.objects.filter(conversation=conv)
                        .order_by("at", "pk")
                        .values_list("from_status", "to_status", "event", "source", "note")
                    ),
                    "messages": list(
                        Message.objects.filter(conversation=conv)
                        .order_by("created_at", "pk")
                        .values_list("direction", "sender_kind", "text")
                    ),
                    "runs": [
                        (
                            run.state,
                            run.cursor,
                            run.outcome,
                            run.outcome_detail,
                            run.status_before_flow,
                            run.trigger,
                            [(e["position"], e["kind"], e.get("detail", "")) for e in run.log],
                        )
                        for run in FlowRun.objects.filter(conversation=conv).order_by("pk")
                    ],
                }
            )
        delivery = BroadcastDelivery.objects.filter(broadcast=broadcast, contact=contact).first()
        result.append(
            {
                "conversations": conversations,
                "delivery": (
                    delivery.outcome,
                    delivery.reason,
                    delivery.conversation_id is not None,
                )
                if delivery
                else None,
            }
        )
    return result


def run_broadcast(flow, *, has_priority, one_by_one, monkeypatch):
    channel = "one-by-one" if one_by_one else "set"
    contacts = contacts_in_every_state(channel)
    if one_by_one:  # force the contact-by-contact path the set path falls back to

        def refuse(*args, **kwargs):
            raise RuntimeError("set path disabled for this test")

        monkeypatch.setattr(broadcasts, "_deliver_set", refuse)
    broadcast = Broadcast.objects.create(
        flow=flow, segment=Segment.CHANNEL, segment_value=channel, has_priority=has_priority
    )
    broadcast = broadcasts.broadcast_execute(broadcast_id=broadcast.pk)
    monkeypatch.undo()
    return snapshot(contacts, broadcast), (broadcast.sent, broadcast.skipped, broadcast.failed)


@pytest.mark.parametrize("has_priority", [False, True], ids=["plain", "priority"])
@pytest.mark.parametrize("flow", list(FLOWS))
def test_set_based_delivery_writes_what_contact_by_contact_writes(flow, has_priority, monkeypatch):
    flow = make_flow(*FLOWS[flow])
    one_by_one = run_broadcast(
        flow, has_priority=has_priority, one_by_one=True, monkeypatch=monkeypatch
    )
    # The same scenario, on contacts of their own, through the set path.
    set_based = run_broadcast(
        flow, has_priority=has_priority, one_by_one=False, monkeypatch=monkeypatch
    )

    assert set_based[1] == one_by_one[1]
    assert set_based[0] == one_by_one[0]
    sent, skipped, failed = set_based[1]
    assert failed == 0
    assert (sent, skipped) == ((6, 0) if has_priority else (3, 3))


def test_the_set_path_is_really_taken(monkeypatch):
    """Guards the test above: without the set path it would compare a path to itself."""
    contacts_in_every_state()
    calls = []
    real = broadcasts._deliver_set
    monkeypatch.setattr(
        broadcasts, "_deliver_set", lambda b, ids: calls.append(len(ids)) or real(b, ids)
    )
    flow = make_flow(*FLOWS["ask"])
    broadcast = Broadcast.objects.create(flow=flow, segment=Segment.ALL)
    broadcast = broadcasts.broadcast_execute(broadcast_id=broadcast.pk)
    assert calls == [3]
    assert broadcast.sent == 3


def test_statements_per_chunk_do_not_grow_with_its_contacts():
    flow = make_flow(("send_message", "Hi {name}!"), ("add_tag", "Spring"), ("hand_off",))

    queries_of_last = []

    def statements(n: int) -> int:
        ContactFactory.create_batch(n, channel=f"chunk-{n}")
        broadcast = Broadcast.objects.create(
            flow=flow, segment=Segment.CHANNEL, segment_value=f"chunk-{n}"
        )
        chunks = broadcasts.broadcast_plan(broadcast_id=broadcast.pk, chunk_size=500)
        with CaptureQueriesContext(connection) as queries:
            broadcasts.broadcast_run_chunk(chunk_id=chunks[0])
        broadcast.refresh_from_db()
        assert broadcast.sent == n
        queries_of_last[:] = queries.captured_queries
        return len(queries)

    statements(1)  # warm the per-process caches (channels)
    statements(5)
    # Write-behind: each conversation row is written once per status change with the
    # message that follows it: start + message + tag, then the hand-off.
    updates = [q for q in queries_of_last if q["sql"].startswith('UPDATE "conversations_conv')]
    assert len(updates) == 2, [q["sql"][:120] for q in updates]
    few, many = statements(3), statements(60)  # personalised texts: one UPDATE for all
    assert few == many, "\n".join(q["sql"][:150] for q in queries_of_last)
    assert many <= 30, "\n".join(q["sql"][:150] for q in queries_of_last)


def test_a_failure_in_the_set_rolls_the_set_back_and_delivers_one_by_one(monkeypatch):
    """A text too long for one contact: the set path fails on it; its partial writes
    are rolled back and the contact-by-contact path records that one as failed."""
    flow = make_flow(("send_message", "About you: {bio}"), ("hand_off",))
    good = [ContactFactory() for _ in range(3)]
    bad = ContactFactory(attributes={"bio": "x" * 10_001})
    calls = []
    real = broadcasts._deliver_set

    def spy(broadcast, ids):
        calls.append(ids)
        return real(broadcast, ids)

    monkeypatch.setattr(broadcasts, "_deliver_set", spy)
    broadcast = Broadcast.objects.create(flow=flow, segment=Segment.ALL)
    broadcast = broadcasts.broadcast_execute(broadcast_id=broadcast.pk)

    assert len(calls) == 1  # the set was tried
    assert (broadcast.sent, broadcast.skipped, broadcast.failed) == (3, 0, 1)
    assert bad.conversations.get().status == S.NOT_CONTACTED
    assert not StatusChange.objects.filter(conversation__contact=bad, event="flow_start").exists()
    for contact in good:
        assert contact.conversations.get().status == S.NEW
        assert StatusChange.objects.filter(conversation__contact=contact).count() == 3
        assert Message.objects.filter(conversation__contact=contact).count() == 1
    assert BroadcastDelivery.objects.filter(outcome=DeliveryOutcome.STARTED).count() == 3


def test_lock_targets_locks_contacts_and_their_open_conversations():
    open_one = conversation_in(S.NEW)
    closed_one = conversation_in(S.CLOSED)
    targets = bulk.lock_targets([closed_one.contact_id, open_one.contact_id, 999_999])
    assert [t.contact.pk for t in targets] == sorted([open_one.contact_id, closed_one.contact_id])
    by_contact = {t.contact.pk: t.conversation for t in targets}
    assert by_contact[open_one.contact_id].pk == open_one.pk
    assert by_contact[closed_one.contact_id] is None


def test_every_message_of_a_set_reaches_the_hooks_after_its_row_is_written(monkeypatch):
    """The hooks are still sent once per row (webhook delivery listens to them), and
    a receiver finds the conversation written as the hook describes it."""
    from conversations import hooks

    seen = []

    def receiver(sender, message, conversation, **kwargs):
        row = Conversation.objects.values_list("status", "last_message_preview").get(
            pk=conversation.pk
        )
        seen.append((message.pk, conversation.pk, row))

    hooks.message_sent.connect(receiver, dispatch_uid="test-set-hooks")
    try:
        contacts = [conversation_in(S.CLOSED).contact for _ in range(3)]
        contacts += [ContactFactory() for _ in range(3)]
        flow = make_flow(("send_message", "Spring offer"))
        broadcast = Broadcast.objects.create(flow=flow, segment=Segment.ALL)
        broadcasts.broadcast_execute(broadcast_id=broadcast.pk)
    finally:
        hooks.message_sent.disconnect(dispatch_uid="test-set-hooks")

    assert len(seen) == 6
    assert {m for m, _, _ in seen} == set(
        Message.objects.filter(text="Spring offer").values_list("pk", flat=True)
    )
    # Sent after the write: the row already carries the flow's status and message
    # (the flow then completed: closed for a closed contact, a not-contacted one).
    assert {row for _, _, row in seen} == {(S.IN_FLOW, "Spring offer")}
