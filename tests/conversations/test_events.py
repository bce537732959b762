"""The change bus (conversations/events.py): every committed change of a
conversation is an event row and a NOTIFY; a rolled-back one is neither; a
reconnecting client gets what it missed."""

import json

import psycopg
import pytest
from django.db import connection, transaction

from conversations import events, services
from conversations.events import Change, ConversationEvent, parse, replay
from conversations.models import Conversation
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


# The test's own channel: a mark notified after what a test waits for.
MARK = "parley_test_mark"


@pytest.fixture
def listener():
    """A LISTEN connection of its own, like a web process's bus."""
    params = events._conninfo()
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(f"LISTEN {events.CHANNEL}")
        conn.execute(f"LISTEN {events.PRESENCE}")
        conn.execute(f"LISTEN {MARK}")
        yield conn


def received(conn) -> list[tuple[str, str]]:
    """Every notification of the transactions committed so far, and nothing else.

    PostgreSQL delivers the notifications of different transactions in the order
    they committed, and a rolled-back transaction's never: so a mark notified now, in
    a transaction of its own, arrives after all of them. Read until the mark
    (bounded), not for a while."""
    assert not connection.in_atomic_block, "the mark must commit now"
    with connection.cursor() as cursor:
        cursor.execute(f"NOTIFY {MARK}")
    got = []
    for notify in conn.notifies(timeout=30):
        if notify.channel == MARK:
            return got
        got.append((notify.channel, notify.payload))
    raise AssertionError("the mark was not delivered within 30 s")


def test_a_committed_message_is_an_event_and_a_notify(listener):
    conversation = services.message_receive(
        channel="sms", external_id="+1", text="hello", name="Ann"
    ).conversation
    rows = list(ConversationEvent.objects.values_list("conversation_id", "contact_id"))
    assert (conversation.pk, conversation.contact_id) in rows
    payloads = [parse(channel, payload) for channel, payload in received(listener)]
    ids = {row[1] for change in payloads for row in change.rows}
    assert conversation.pk in ids


def test_a_rolled_back_change_publishes_nothing(listener):
    conversation = services.message_receive(channel="sms", external_id="+2", text="hi").conversation
    received(listener)
    before = ConversationEvent.objects.count()
    agent = UserFactory()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.conversation_assign(conversation=conversation.pk, assignee=agent)
        assert ConversationEvent.objects.count() == before + 1  # inside: written
        raise RuntimeError("roll back")
    assert ConversationEvent.objects.count() == before
    assert received(listener) == []


def test_assignment_tags_and_closing_are_events(listener):
    conversation = services.message_receive(channel="sms", external_id="+3", text="hi").conversation
    received(listener)
    agent = UserFactory()
    services.conversation_assign(conversation=conversation.pk, assignee=agent)
    services.conversation_tag_add(conversation=conversation.pk, tag="vip")
    services.conversation_close(conversation=conversation.pk, actor=agent)
    changes = [parse(channel, payload) for channel, payload in received(listener)]
    assert sum(1 for change in changes for row in change.rows if row[1] == conversation.pk) >= 3


def test_a_bulk_change_is_one_refresh_everything_notify(listener):
    for n in range(events.MANY + 5):
        services.message_receive(channel="sms", external_id=f"+9{n}", text="hi")
    received(listener)
    Conversation.objects.update(updated_at=Conversation.objects.values("created_at")[:1])
    (only,) = [parse(channel, payload) for channel, payload in received(listener)]
    assert only.everything and only.upto == ConversationEvent.objects.latest("id").id


def test_an_update_that_does_not_move_updated_at_is_no_event():
    conversation = services.message_receive(channel="sms", external_id="+4", text="hi").conversation
    before = ConversationEvent.objects.count()
    Conversation.objects.filter(pk=conversation.pk).update(
        last_message_preview=conversation.last_message_preview
    )
    assert ConversationEvent.objects.count() == before


def test_replay_gives_what_was_missed_or_everything():
    first = services.message_receive(channel="sms", external_id="+5", text="a").conversation
    seen = events.latest_id()
    second = services.message_receive(channel="sms", external_id="+6", text="b").conversation
    missed = replay(seen)
    assert {row[1] for row in missed.rows} == {second.pk}
    assert first.pk not in {row[1] for row in missed.rows}
    # Older than what is kept (pruned): refresh everything.
    assert replay(seen - events.KEEP - 5).everything


def test_presence_is_a_notify_without_a_row(listener):
    before = ConversationEvent.objects.count()
    events.publish_presence({"conversation": 1, "agent": 2, "name": "Bob", "state": "typing"})
    ((channel, payload),) = received(listener)
    assert channel == events.PRESENCE and json.loads(payload)["state"] == "typing"
    assert ConversationEvent.objects.count() == before


def test_parse_refuses_garbage():
    assert parse(events.CHANNEL, "not json") is None
    assert parse(events.CHANNEL, "[[1, 2, 3]]") == Change(rows=((1, 2, 3),))
    assert connection.vendor == "postgresql"
