"""Issue #14: Resolved and the satisfaction survey (PRODUCT.md §2, §3, §8) through the
paths a real caller uses: the close service, a contact's message, flows and
broadcasts, the tag lock (model layer and database), archive on close."""

import pytest
from django.db import IntegrityError, connection, transaction

from conversations import services
from conversations.exceptions import ConversationClosed, ConversationOngoing, TagsLocked
from conversations.models import Conversation, Message, Source, Tag
from conversations.transitions import Event, Status
from flows import broadcasts
from flows.engine import flow_start
from flows.models import DeliveryOutcome, Segment
from tests.factories import (
    TagFactory,
    UserFactory,
    conversation_in,
    inbox_settings_set,
)
from tests.flows.conftest import make_flow

pytestmark = pytest.mark.django_db

QUESTION = "How did we do? 1 to 5"


@pytest.fixture
def csat():
    return inbox_settings_set(csat_enabled=True, csat_question=QUESTION)


def replied_in(status: str, agent=None) -> Conversation:
    """A conversation in ``status`` that an agent replied in (a priority flow took it
    from In progress, and handed it back for New)."""
    conversation = conversation_in(Status.IN_PROGRESS, agent=agent)
    if status == Status.IN_PROGRESS:
        return conversation
    services.apply_event(
        conversation=conversation, event=Event.FLOW_START_PRIORITY, source=Source.FLOW
    )
    if status == Status.NEW:
        services.apply_event(
            conversation=conversation, event=Event.FLOW_HAND_OFF, source=Source.FLOW
        )
    return Conversation.objects.get(pk=conversation.pk)


def _write(conversation: Conversation, text: str):
    contact = conversation.contact
    return services.message_receive(
        channel=contact.channel, external_id=contact.external_id, text=text
    )


@pytest.mark.parametrize("status", [Status.NEW, Status.IN_PROGRESS, Status.IN_FLOW])
def test_an_agents_close_after_a_reply_resolves_and_sends_the_survey(csat, status):
    agent = UserFactory()
    conversation = replied_in(status, agent=agent)
    services.conversation_close(conversation=conversation, actor=agent)
    conversation.refresh_from_db()
    assert conversation.status == Status.RESOLVED
    assert conversation.resolved_at and conversation.closed_at is None
    assert conversation.closed_by == agent
    survey = conversation.messages.order_by("-id").first()
    assert (survey.sender_kind, survey.direction, survey.text) == ("survey", "outbound", QUESTION)
    line = conversation.status_changes.order_by("-id").first()
    assert (line.from_status, line.to_status, line.event) == (
        status,
        "resolved",
        "close_with_survey",
    )


@pytest.mark.parametrize("status", [Status.NOT_CONTACTED, Status.NEW, Status.IN_FLOW])
def test_a_close_with_no_agent_reply_closes_even_with_csat_on(csat, status):
    conversation = conversation_in(status)
    services.conversation_close(conversation=conversation, actor=UserFactory())
    conversation.refresh_from_db()
    assert conversation.status == Status.CLOSED
    assert not conversation.messages.filter(sender_kind="survey").exists()


def test_with_csat_off_a_close_closes():
    conversation = conversation_in(Status.IN_PROGRESS)
    services.conversation_close(conversation=conversation, actor=UserFactory())
    conversation.refresh_from_db()
    assert conversation.status == Status.CLOSED
    assert conversation.resolved_at is None


@pytest.mark.parametrize("text", ["4", " 4 ", "4."])
def test_the_answer_closes_it_with_the_rating_and_the_agent(csat, text):
    agent = UserFactory()
    conversation = conversation_in(Status.RESOLVED, agent=agent)
    result = _write(conversation, text)
    conversation.refresh_from_db()
    assert result.conversation.pk == conversation.pk
    assert result.conversation.status == Status.CLOSED
    assert (conversation.status, conversation.rating, conversation.closed_by) == (
        Status.CLOSED,
        4,
        agent,
    )
    assert conversation.messages.order_by("-id").first().text == text.strip()
    assert Conversation.objects.filter(contact=conversation.contact).count() == 1
    line = conversation.status_changes.order_by("-id").first()
    assert (line.from_status, line.to_status, line.event, line.source) == (
        "resolved",
        "closed",
        "survey_answer",
        "contact",
    )


@pytest.mark.parametrize("text", ["thanks!", "6", "0", "45"])
def test_anything_else_closes_it_unrated_and_opens_a_new_conversation(csat, text):
    conversation = conversation_in(Status.RESOLVED)
    survey_messages = conversation.messages.count()
    result = _write(conversation, text)
    conversation.refresh_from_db()
    assert (conversation.status, conversation.rating) == (Status.CLOSED, None)
    assert conversation.messages.count() == survey_messages
    assert result.conversation.pk != conversation.pk
    assert result.conversation.status == Status.NEW
    assert result.message.conversation_id == result.conversation.pk


def test_the_survey_answer_is_a_rating_only_while_resolved(csat):
    conversation = conversation_in(Status.IN_PROGRESS)
    _write(conversation, "4")
    conversation.refresh_from_db()
    assert (conversation.status, conversation.rating) == (Status.IN_PROGRESS, None)


def test_agents_cannot_reply_to_a_resolved_conversation(csat):
    conversation = conversation_in(Status.RESOLVED)
    with pytest.raises(ConversationClosed) as refused:
        services.conversation_reply(conversation=conversation, agent=UserFactory(), text="Hi")
    assert "resolved" in refused.value.detail
    assert Conversation.objects.get(pk=conversation.pk).status == Status.RESOLVED


def test_tags_lock_at_resolved_in_services_model_and_database(csat):
    tag = TagFactory()
    conversation = conversation_in(Status.RESOLVED, tags=[tag])
    with pytest.raises(TagsLocked):
        services.conversation_tag_add(conversation=conversation, tag="other")
    with pytest.raises(TagsLocked):
        services.conversation_tag_remove(conversation=conversation, tag=tag)
    with pytest.raises(TagsLocked), transaction.atomic():
        conversation.tags.clear()
    with pytest.raises(TagsLocked), transaction.atomic():
        tag.delete()
    with (
        pytest.raises(IntegrityError, match="tags_locked"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "DELETE FROM conversations_conversationtag WHERE conversation_id = %s",
            [conversation.pk],
        )
    other = Tag.objects.create(name="sneaky")
    with (
        pytest.raises(IntegrityError, match="tags_locked"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO conversations_conversationtag (conversation_id, tag_id, added_at) "
            "VALUES (%s, %s, now())",
            [conversation.pk, other.pk],
        )
    assert list(conversation.tags.all()) == [tag]


def test_a_flow_needs_priority_and_then_closes_it_unrated(csat):
    conversation = conversation_in(Status.RESOLVED)
    flow = make_flow(("send_message", "Hello from the flow"))
    with pytest.raises(ConversationOngoing):
        flow_start(flow=flow, conversation=conversation)
    assert Conversation.objects.get(pk=conversation.pk).status == Status.RESOLVED
    run = flow_start(flow=flow, conversation=conversation, has_priority=True)
    conversation.refresh_from_db()
    assert (conversation.status, conversation.rating) == (Status.CLOSED, None)
    assert run.conversation_id != conversation.pk
    assert run.conversation.contact_id == conversation.contact_id


@pytest.mark.parametrize("priority", [False, True])
def test_a_broadcast_skips_an_awaited_survey_unless_priority(csat, priority):
    conversation = conversation_in(Status.RESOLVED)
    flow = make_flow(("send_message", "News"))
    broadcast = broadcasts.broadcast_create(flow=flow, segment=Segment.ALL, has_priority=priority)
    broadcast = broadcasts.broadcast_execute(broadcast_id=broadcast.pk)
    delivery = broadcast.deliveries.get(contact=conversation.contact)
    conversation.refresh_from_db()
    if not priority:
        assert delivery.outcome == DeliveryOutcome.SKIPPED
        assert "survey" in delivery.reason
        assert conversation.status == Status.RESOLVED
    else:
        assert delivery.outcome == DeliveryOutcome.STARTED
        assert (conversation.status, conversation.rating) == (Status.CLOSED, None)
        new = Conversation.objects.get(pk=delivery.conversation_id)
        assert new.pk != conversation.pk
        assert new.messages.get().text == "News"


def test_a_broadcast_with_priority_one_by_one_does_the_same(csat, monkeypatch):
    """The fallback path (contact by contact) when the set-based one fails."""
    conversation = conversation_in(Status.RESOLVED)
    flow = make_flow(("send_message", "News"))
    monkeypatch.setattr(broadcasts, "_deliver_set", _fail)
    broadcast = broadcasts.broadcast_create(flow=flow, segment=Segment.ALL, has_priority=True)
    broadcast = broadcasts.broadcast_execute(broadcast_id=broadcast.pk)
    conversation.refresh_from_db()
    assert conversation.status == Status.CLOSED
    assert broadcast.deliveries.get(contact=conversation.contact).outcome == "started"


def _fail(*args, **kwargs):
    raise RuntimeError("set-based path down")


# --- archive on close, every immediate path --------------------------------------------


@pytest.fixture
def archiving():
    return inbox_settings_set(archive_on_close=True, csat_enabled=True)


def _archived_by_close(conversation: Conversation) -> None:
    conversation.refresh_from_db()
    assert conversation.status == Status.CLOSED and conversation.is_archived
    last_two = list(conversation.status_changes.order_by("-id").values_list("event", "to_status"))
    assert last_two[0] == ("archive", "closed")
    assert last_two[1][1] == "closed"


def test_archive_on_close_agent(archiving):
    conversation = conversation_in(Status.NEW)
    services.conversation_close(conversation=conversation, actor=UserFactory())
    _archived_by_close(conversation)


def test_archive_on_close_survey_answer_and_unrated(archiving):
    rated = conversation_in(Status.RESOLVED)
    assert not Conversation.objects.get(pk=rated.pk).is_archived  # resolved is not closed
    _write(rated, "5")
    _archived_by_close(rated)
    unrated = conversation_in(Status.RESOLVED)
    _write(unrated, "something else")
    _archived_by_close(unrated)


def test_archive_on_close_flow_step(archiving):
    conversation = conversation_in(Status.NOT_CONTACTED)
    flow_start(flow=make_flow(("close",)), conversation=conversation)
    _archived_by_close(conversation)


def test_archive_on_close_broadcast_set(archiving):
    conversation = conversation_in(Status.NOT_CONTACTED)
    flow = make_flow(("send_message", "Bye"), ("close",))
    broadcast = broadcasts.broadcast_create(flow=flow, segment=Segment.ALL)
    broadcasts.broadcast_execute(broadcast_id=broadcast.pk)
    _archived_by_close(conversation)


def test_off_by_default_nothing_is_archived_on_close():
    conversation = conversation_in(Status.NEW)
    services.conversation_close(conversation=conversation, actor=UserFactory())
    conversation.refresh_from_db()
    assert conversation.status == Status.CLOSED and not conversation.is_archived


def test_the_rating_is_a_number_from_1_to_5_in_the_database(csat):
    conversation = conversation_in(Status.CLOSED)
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.filter(pk=conversation.pk).update(rating=6)
    resolved = conversation_in(Status.RESOLVED)
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.filter(pk=resolved.pk).update(rating=3)
    assert Message.objects.filter(conversation=resolved, sender_kind="survey").count() == 1
