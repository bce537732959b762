"""Snooze (PRODUCT.md §6): out of the default views and counts until a time, woken
by the periodic task (really run by ``db_worker``) or by the contact writing."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from conversations import services, snooze
from conversations.exceptions import ConversationClosed, InvalidInput
from conversations.models import Conversation, ConversationEvent, StatusChange
from conversations.reads import mark_read
from conversations.selectors import status_counts
from conversations.transitions import Event, Status
from tests.factories import UserFactory, conversation_in

pytestmark = pytest.mark.django_db

WAKE = "conversations.tasks.wake_snoozed"


def _later(**kwargs):
    return timezone.now() + timedelta(**kwargs)


def _run_worker():
    call_command("db_worker", batch=True, reload=False, startup_delay=False, verbosity=0)


def _unread_for(agent, conversation) -> int:
    from conversations.reads import unread_column

    return Conversation.objects.annotate(u=unread_column(agent.pk)).get(pk=conversation.pk).u


def test_snooze_moves_it_from_its_tab_to_snoozed_and_records_who_and_until():
    agent = UserFactory()
    conversation = conversation_in(Status.NEW)
    before = status_counts()
    snooze.conversation_snooze(conversation=conversation, until=_later(hours=1), actor=agent)

    counts = status_counts()
    assert counts["new"] == before["new"] - 1
    assert counts["snoozed"] == before["snoozed"] + 1
    assert counts["all"] == before["all"] - 1
    line = StatusChange.objects.filter(conversation=conversation).order_by("-id").first()
    assert (line.event, line.actor, line.to_status) == (Event.SNOOZE, agent, Status.NEW)
    assert line.note.startswith("until ")
    conversation.refresh_from_db()
    assert conversation.is_snoozed and conversation.status == Status.NEW


@pytest.mark.parametrize(
    ("until", "error"),
    [
        (lambda: _later(minutes=-1), "in the past"),
        (lambda: _later(days=400), "at most a year"),
        (lambda: timezone.now().replace(tzinfo=None) + timedelta(hours=1), "time zone"),
    ],
)
def test_a_bad_time_is_refused_and_nothing_changes(until, error):
    conversation = conversation_in(Status.IN_PROGRESS)
    with pytest.raises(InvalidInput, match=error) as refused:
        snooze.conversation_snooze(conversation=conversation, until=until())
    assert refused.value.http_status == 422
    conversation.refresh_from_db()
    assert not conversation.is_snoozed
    assert not DBTaskResult.objects.exists()


def test_a_closed_conversation_cannot_be_snoozed_and_closing_ends_a_snooze():
    closed = conversation_in(Status.CLOSED)
    with pytest.raises(ConversationClosed):
        snooze.conversation_snooze(conversation=closed, until=_later(hours=1))
    conversation = conversation_in(Status.IN_PROGRESS)
    snooze.conversation_snooze(conversation=conversation, until=_later(hours=1))
    services.conversation_close(conversation=conversation)
    conversation.refresh_from_db()
    assert conversation.snoozed_until is None
    assert status_counts()["snoozed"] == 0
    # Raw SQL too: the database's trigger.
    other = conversation_in(Status.NEW)
    snooze.conversation_snooze(conversation=other, until=_later(hours=1))
    Conversation.objects.filter(pk=other.pk).update(status=Status.CLOSED, closed_at=timezone.now())
    StatusChange.objects.create(
        conversation=other, from_status="new", to_status="closed", event="close", source="system"
    )
    other.refresh_from_db()
    assert other.snoozed_until is None


def test_snooze_and_wake_are_published_on_the_change_bus():
    agent = UserFactory()
    conversation = conversation_in(Status.NEW)
    events = ConversationEvent.objects.filter(conversation_id=conversation.pk)
    before = events.count()
    snooze.conversation_snooze(conversation=conversation, until=_later(hours=1), actor=agent)
    assert events.count() == before + 1
    assert events.order_by("-id").first().actor_id == agent.pk
    Conversation.objects.filter(pk=conversation.pk).update(snoozed_until=timezone.now())
    before = events.count()
    assert snooze.wake_due() == 1
    assert events.count() == before + 1


def test_unsnooze_by_hand_and_not_snoozed_is_refused():
    conversation = conversation_in(Status.NEW)
    with pytest.raises(snooze.NotSnoozed) as refused:
        snooze.conversation_unsnooze(conversation=conversation)
    assert refused.value.code == "not_snoozed"
    snooze.conversation_snooze(conversation=conversation, until=_later(hours=1))
    snooze.conversation_unsnooze(conversation=conversation)
    conversation.refresh_from_db()
    assert not conversation.is_snoozed
    assert status_counts()["snoozed"] == 0


def test_the_contact_writing_wakes_it_unread():
    agent = UserFactory()
    conversation = conversation_in(Status.IN_PROGRESS, agent=agent)
    snooze.conversation_snooze(conversation=conversation, until=_later(days=2), actor=agent)
    contact = conversation.contact
    services.message_receive(channel=contact.channel, external_id=contact.external_id, text="?")
    conversation.refresh_from_db()
    assert not conversation.is_snoozed
    line = conversation.status_changes.order_by("-id").first()
    assert (line.event, line.source, line.note) == (Event.WAKE, "contact", "the contact wrote")
    assert _unread_for(agent, conversation) >= 1


@pytest.mark.django_db(transaction=True)
def test_the_periodic_task_wakes_what_is_due_unread_and_queues_its_successor():
    agent = UserFactory()
    due = conversation_in(Status.IN_PROGRESS, agent=agent)
    later = conversation_in(Status.NEW)
    mark_read(agent=agent, conversation_id=due.pk, upto=timezone.now())
    assert _unread_for(agent, due) == 0
    snooze.conversation_snooze(conversation=due, until=_later(hours=1), actor=agent)
    snooze.conversation_snooze(conversation=later, until=_later(days=3), actor=agent)
    queued = DBTaskResult.objects.filter(task_path=WAKE)
    # Queued on commit at the first snooze time; it covers the later one.
    assert queued.count() == 1
    assert status_counts()["snoozed"] == 2

    # An hour passes.
    past = timezone.now() - timedelta(seconds=1)
    Conversation.objects.filter(pk=due.pk).update(snoozed_until=past)
    queued.update(run_after=past)
    _run_worker()

    ran = queued.filter(status="SUCCESSFUL").get()
    assert ran.return_value == {"woken": 1}
    due.refresh_from_db()
    assert not due.is_snoozed
    assert _unread_for(agent, due) == 1
    line = due.status_changes.order_by("-id").first()
    assert (line.event, line.source, line.actor) == (Event.WAKE, "system", None)
    counts = status_counts()
    assert (counts["snoozed"], counts["in_progress"]) == (1, 1)
    later.refresh_from_db()
    assert later.is_snoozed
    # Its successor is queued (at most SNOOZE_WAKE_SECONDS ahead), not a second one.
    pending = queued.filter(status="READY")
    assert pending.count() == 1
    assert pending.get().run_after <= _later(seconds=301)

    # Idempotent: running it again wakes nothing twice.
    assert snooze.wake_due() == 0
    assert due.status_changes.filter(event=Event.WAKE).count() == 1
