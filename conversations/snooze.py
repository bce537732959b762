"""Snooze (PRODUCT.md §6; not a status): an open conversation leaves the default views
for the Snoozed view until a time, and wakes up — back in the list, unread — when the
time comes (``wake_due``, run by the ``conversations.tasks.wake_snoozed`` task) or
when the contact writes (``wake``, from ``services.message_receive``).

Snoozing and waking are history lines (events ``snooze``/``wake``, status unchanged,
like archive), so they show in the timeline. The tab counters move by the database's
trigger (bucket ``snoozed``), and every change bumps ``updated_at``: other agents'
screens follow through the change bus like any status change. A conversation that
closes stops being snoozed (``triggers.snooze_ends_on_close``).
"""

from datetime import datetime, time, timedelta

from django.db import connection
from django.utils import timezone

from config.tasks import queue_after_commit

from . import events
from .exceptions import ConversationClosed, IllegalTransition, InvalidInput
from .inbox_settings import business_timezone
from .locks import lock_conversation, retrying_atomic
from .models import Conversation, Source, StatusChange
from .reads import mark_unread
from .transitions import OPEN, Event

MAX_SNOOZE = timedelta(days=366)
MORNING = time(9, 0)


class NotSnoozed(IllegalTransition):
    code = "not_snoozed"
    default_detail = "The conversation is not snoozed."


def presets(now: datetime | None = None) -> list[tuple[str, str, datetime]]:
    """The pane's choices: (key, label, moment). "Tomorrow morning" and "Next week"
    are 9:00 in the business's time zone."""
    now = now or timezone.now()
    zone = business_timezone()
    today = timezone.localtime(now, zone).date()

    def at_nine(day) -> datetime:
        return datetime.combine(day, MORNING, tzinfo=zone)

    monday = today + timedelta(days=7 - today.weekday())
    return [
        ("hour", "In 1 hour", now + timedelta(hours=1)),
        ("tomorrow", "Tomorrow morning", at_nine(today + timedelta(days=1))),
        ("next_week", "Next week (Monday morning)", at_nine(monday)),
    ]


def describe(moment: datetime) -> str:
    """A snooze time as agents read it, in the business's time zone."""
    local = timezone.localtime(moment, business_timezone())
    return f"{local:%a %d %b %Y, %H:%M} ({local.tzname()})"


def _line(conversation: Conversation, event: Event, *, source: str, actor, note: str):
    StatusChange.objects.create(
        conversation=conversation,
        from_status=conversation.status,
        to_status=conversation.status,
        event=event,
        source=source,
        actor=actor,
        note=note[:200],
    )


@retrying_atomic
def conversation_snooze(
    *, conversation: Conversation | int, until: datetime, actor=None, source: str = Source.AGENT
) -> Conversation:
    """Snooze an open conversation until ``until`` (snoozing again moves the time)."""
    if not isinstance(until, datetime) or timezone.is_naive(until):
        raise InvalidInput("Give the snooze time as a date and time with its time zone.")
    now = timezone.now()
    if until <= now:
        raise InvalidInput(f"The snooze time {describe(until)} is in the past; choose a later one.")
    if until > now + MAX_SNOOZE:
        raise InvalidInput("A conversation can be snoozed for at most a year.")
    conversation = lock_conversation(conversation)
    if conversation.status not in OPEN:
        raise ConversationClosed(
            "Cannot snooze: the conversation is closed, and closed conversations are read-only."
        )
    if actor is not None:
        events.set_actor(actor)
    conversation.snoozed_until = until
    conversation.save(update_fields=["snoozed_until", "updated_at"])
    _line(conversation, Event.SNOOZE, source=source, actor=actor, note=f"until {describe(until)}")
    from .tasks import schedule_wake

    queue_after_commit(lambda: schedule_wake(until))
    return conversation


@retrying_atomic
def conversation_unsnooze(
    *, conversation: Conversation | int, actor=None, source: str = Source.AGENT
) -> Conversation:
    """Wake a snoozed conversation now, by hand."""
    conversation = lock_conversation(conversation)
    if not conversation.is_snoozed:
        raise NotSnoozed()
    if actor is not None:
        events.set_actor(actor)
    return wake(conversation=conversation, source=source, actor=actor, note="by hand")


def wake(*, conversation: Conversation, source: str, actor=None, note: str = "") -> Conversation:
    """Wake a locked, snoozed conversation (the contact wrote, or by hand): unread
    again for every agent (``reads.mark_unread``), back in the default views."""
    conversation.snoozed_until = None
    conversation.save(update_fields=["snoozed_until", "updated_at"])
    _line(conversation, Event.WAKE, source=source, actor=actor, note=note)
    mark_unread([conversation.pk])
    return conversation


# Set-based: every due conversation in one statement (row locks taken by the UPDATE,
# skipping rows another transaction holds: they are woken by the next run).
_WAKE_DUE = """
    WITH due AS (
        SELECT id FROM conversations_conversation
        WHERE snoozed_until <= %(now)s
        ORDER BY snoozed_until
        LIMIT %(limit)s
        FOR NO KEY UPDATE SKIP LOCKED
    ), woke AS (
        UPDATE conversations_conversation c
        SET snoozed_until = NULL, updated_at = %(now)s
        FROM due WHERE c.id = due.id
        RETURNING c.id, c.status
    ), lines AS (
        INSERT INTO conversations_statuschange (conversation_id, from_status, to_status, event,
            source, note, at)
        SELECT id, status, status, %(event)s, %(source)s, %(note)s, %(now)s FROM woke
    )
    SELECT array_agg(id) FROM woke
"""


@retrying_atomic
def wake_due(*, now: datetime | None = None, limit: int = 10_000) -> int:
    """Wake every conversation whose snooze time has come (idempotent: a second run
    finds nothing). Returns how many woke."""
    with connection.cursor() as cursor:
        cursor.execute(
            _WAKE_DUE,
            {
                "now": now or timezone.now(),
                "limit": limit,
                "event": str(Event.WAKE),
                "source": str(Source.SYSTEM),
                "note": "the snooze time came",
            },
        )
        ids = cursor.fetchone()[0] or []
    if ids:
        mark_unread(ids)
    return len(ids)


def next_due(*, after: datetime) -> datetime | None:
    """The earliest snooze time later than ``after`` (the wake query's index)."""
    upcoming = Conversation.objects.filter(snoozed_until__gt=after).order_by("snoozed_until")
    return upcoming.values_list("snoozed_until", flat=True).first()
