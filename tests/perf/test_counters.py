"""The tab counters that triggers keep (migration 0003) always equal a real count,
through every kind of write: services, QuerySet.update, deletes, compaction, TRUNCATE."""

import pytest
from django.db import connection
from django.db.models import Count, Q

from conversations import services
from conversations.models import Conversation, ConversationTag
from conversations.transitions import Status
from tests.factories import ContactFactory, TagFactory, conversation_in

pytestmark = pytest.mark.django_db


def counters() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT bucket, sum(n) FROM parley_counts GROUP BY bucket")
        return {bucket: int(n) for bucket, n in cursor.fetchall() if n}


def recount() -> dict[str, int]:
    live = Q(archived_at__isnull=True)
    counts = {str(s): Count("pk", filter=live & Q(status=s)) for s in Status}
    counts["archived"] = Count("pk", filter=Q(archived_at__isnull=False))
    real = Conversation.objects.aggregate(**counts)
    real["links"] = ConversationTag.objects.count()
    return {bucket: n for bucket, n in real.items() if n}


def test_counters_follow_the_services():
    assert counters() == recount() == {}
    tag = TagFactory(name="vip")
    for status in ("not_contacted", "new", "new", "in_progress", "in_flow", "closed"):
        conversation_in(status, tags=[tag] if status == "new" else ())
    archived = conversation_in("closed", archived=True, tags=[tag])
    assert counters() == recount()
    assert counters()["archived"] == 1 and counters()["links"] == 3

    services.conversation_unarchive(conversation=archived, actor=None)
    open_one = Conversation.objects.filter(status=Status.NEW).first()
    services.conversation_tag_remove(conversation=open_one, tag=tag)
    services.conversation_close(conversation=open_one, actor=None)
    # The contact writes again: a new conversation opens beside the closed one.
    services.message_receive(
        channel=open_one.contact.channel, external_id=open_one.contact.external_id, text="Hi"
    )
    assert counters() == recount()


def test_counters_see_bulk_updates_and_deletes():
    for _ in range(3):
        conversation_in("closed")
    ContactFactory()
    Conversation.objects.filter(status=Status.CLOSED).update(archived_at="2026-01-01T00:00:00Z")
    assert counters() == recount()
    conversation_in("new")
    Conversation.objects.filter(status=Status.NEW).delete()  # closed ones are history
    Conversation.objects.filter(status=Status.NOT_CONTACTED).delete()
    assert counters() == recount()


def test_compaction_keeps_the_sums():
    for status in ("new", "in_progress", "closed", "closed"):
        conversation_in(status)
    before = counters()
    with connection.cursor() as cursor:
        cursor.execute("SELECT parley_counts_compact()")
        cursor.execute("SELECT count(*) FROM parley_counts")
        rows = cursor.fetchone()[0]
    assert counters() == before == recount()
    assert rows == len(before)  # one row per bucket


def test_rebuild_recounts_from_the_rows():
    conversation_in("new")
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM parley_counts")
        cursor.execute("SELECT parley_counts_rebuild()")
    assert counters() == recount()


@pytest.mark.django_db(transaction=True)
def test_truncate_empties_the_counters():
    conversation_in("new")
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE conversations_conversation CASCADE")
    assert counters() == recount() == {}
