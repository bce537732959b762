"""Reads. Each selector returns what a page needs in a fixed number of queries."""

from dataclasses import dataclass
from datetime import datetime
from itertools import chain

from django.db import connection

from .models import Contact, Conversation, Message, StatusChange
from .transitions import Status

# The inbox's tabs, in the order they are shown.
TABS: tuple[tuple[str, str], ...] = (
    (Status.NEW, "New"),
    (Status.IN_PROGRESS, "In progress"),
    (Status.IN_FLOW, "In a flow"),
    (Status.NOT_CONTACTED, "Not contacted"),
    (Status.RESOLVED, "Resolved"),  # only while CSAT is on (inbox.views.build_tabs)
    (Status.CLOSED, "Closed"),
    ("archived", "Archived"),
)


def status_counts() -> dict[str, int]:
    """Every tab badge in one query. Status tabs count conversations neither archived
    nor snoozed; ``archived`` counts the archive, ``snoozed`` the Snoozed view;
    ``all`` the default view.

    The counters that the database's triggers keep (``parley_counts``, declared on
    the models) answer in a fraction of a millisecond whatever the archive's size."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT bucket, sum(n) FROM parley_counts GROUP BY bucket")
        kept = {bucket: int(n) for bucket, n in cursor.fetchall()}
    counts = {str(status): kept.get(str(status), 0) for status in Status}
    counts["archived"] = kept.get("archived", 0)
    counts["snoozed"] = kept.get("snoozed", 0)
    counts["all"] = sum(counts[str(status)] for status in Status)
    return counts


def contact_channels() -> list[str]:
    """The channels contacts use, sorted: a skip scan of the channel index, one index
    probe per channel instead of reading every contact."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH RECURSIVE channels AS (
                SELECT min(channel) AS channel FROM conversations_contact
                UNION ALL
                SELECT (SELECT min(channel) FROM conversations_contact
                        WHERE channel > channels.channel)
                FROM channels WHERE channels.channel IS NOT NULL
            )
            SELECT channel FROM channels WHERE channel IS NOT NULL
            """
        )
        return [channel for (channel,) in cursor.fetchall()]


def contact_history(*, contact: Contact):
    """A contact's conversations, newest first (§5)."""
    return (
        Conversation.objects.filter(contact=contact)
        .select_related("assignee")
        .prefetch_related("tags")
        .order_by("-created_at", "-id")
    )


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # "message" or "status"
    item: Message | StatusChange


def conversation_timeline(*, conversation: Conversation) -> list[TimelineEntry]:
    """Messages and status changes of one conversation in one timeline, oldest
    first: two queries whatever the length."""
    messages = conversation.messages.select_related("author").order_by("created_at", "id")
    changes = conversation.status_changes.select_related("actor").order_by("at", "id")
    entries = chain(
        (TimelineEntry(m.created_at, "message", m) for m in messages),
        (TimelineEntry(c.at, "status", c) for c in changes),
    )
    # A status change made by a message (e.g. a reply) sorts before that message.
    return sorted(entries, key=lambda e: (e.at, 0 if e.kind == "status" else 1))
