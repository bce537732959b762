import pytest

from conversations import services
from conversations.exceptions import ContactExists, IllegalTransition, InvalidInput
from conversations.models import (
    MESSAGE_MAX_LENGTH,
    Contact,
    Conversation,
    Message,
    Source,
    StatusChange,
)
from tests.factories import ContactFactory, UserFactory, conversation_in

pytestmark = pytest.mark.django_db


def test_contact_writes_after_close_opens_a_new_conversation(agent):
    closed = conversation_in("closed", agent=agent, tags=["billing"])
    old_messages = list(closed.messages.values_list("pk", flat=True))
    old_history = list(closed.status_changes.values_list("pk", flat=True))

    result = services.message_receive(
        channel=closed.contact.channel,
        external_id=closed.contact.external_id,
        text="It broke again",
    )

    assert result.conversation.pk != closed.pk
    assert result.conversation.status == "new"
    closed.refresh_from_db()
    assert closed.status == "closed"
    assert [t.name for t in closed.tags.all()] == ["billing"]
    assert list(closed.messages.values_list("pk", flat=True)) == old_messages
    assert list(closed.status_changes.values_list("pk", flat=True)) == old_history
    assert list(result.conversation.messages.values_list("text", flat=True)) == ["It broke again"]


def test_reply_assigns_an_unassigned_conversation_and_stops_the_wait(agent, other_agent):
    conversation = conversation_in("new")
    assert conversation.waiting_since is not None
    services.conversation_reply(conversation=conversation, agent=agent, text="Hello!")
    conversation.refresh_from_db()
    assert conversation.assignee == agent
    assert conversation.waiting_since is None
    assert conversation.last_message_preview == "Hello!"
    # A second agent replying does not steal the assignment.
    services.conversation_reply(conversation=conversation, agent=other_agent, text="Me too")
    conversation.refresh_from_db()
    assert conversation.assignee == agent
    message = conversation.messages.last()
    assert (message.direction, message.sender_kind, message.author) == (
        "outbound",
        "agent",
        other_agent,
    )


def test_status_change_records_who_and_what(agent):
    conversation = conversation_in("new")
    services.conversation_close(conversation=conversation, actor=agent, source=Source.API)
    change = conversation.status_changes.order_by("-id").first()
    assert (change.from_status, change.to_status, change.event, change.source, change.actor) == (
        "new",
        "closed",
        "close",
        "api",
        agent,
    )
    conversation.refresh_from_db()
    assert conversation.closed_by == agent and conversation.closed_at is not None


def test_archive_and_unarchive_are_recorded(agent):
    conversation = conversation_in("closed", archived=True, agent=agent)
    assert conversation.archived_at is not None
    services.conversation_unarchive(conversation=conversation, actor=agent)
    conversation.refresh_from_db()
    assert conversation.archived_at is None and conversation.status == "closed"
    events = list(conversation.status_changes.values_list("event", flat=True))
    assert events[-2:] == ["archive", "unarchive"]


def test_contact_create_refuses_duplicates():
    services.contact_create(channel="web", external_id="x-1")
    with pytest.raises(ContactExists) as refusal:
        services.contact_create(channel="WEB", external_id=" x-1 ")
    assert refusal.value.code == "contact_exists"
    assert Contact.objects.count() == 1
    assert Conversation.objects.count() == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"channel": "web", "external_id": "a", "text": ""},
        {"channel": "web", "external_id": "a", "text": "   "},
        {"channel": "web", "external_id": "a", "text": "x" * (MESSAGE_MAX_LENGTH + 1)},
        {"channel": "web", "external_id": "a", "text": "nul\x00byte"},
        {"channel": "web", "external_id": "", "text": "hi"},
        {"channel": "not a slug!", "external_id": "a", "text": "hi"},
        {"channel": "web", "external_id": "a", "text": 42},
        {"channel": "web", "external_id": "a", "text": "hi", "name": "n" * 201},
    ],
)
def test_bad_inbound_is_refused_and_writes_nothing(kwargs):
    with pytest.raises(InvalidInput) as refusal:
        services.message_receive(**kwargs)
    assert refusal.value.http_status == 422 and refusal.value.detail
    assert (Contact.objects.count(), Conversation.objects.count(), Message.objects.count()) == (
        0,
        0,
        0,
    )


def test_over_long_reply_is_refused_with_a_clear_message(agent):
    conversation = conversation_in("new")
    with pytest.raises(InvalidInput, match="too long"):
        services.conversation_reply(
            conversation=conversation, agent=agent, text="y" * (MESSAGE_MAX_LENGTH + 1)
        )
    conversation.refresh_from_db()
    assert conversation.status == "new"


def test_assign_and_unassign(agent):
    conversation = conversation_in("new")
    services.conversation_assign(conversation=conversation, assignee=agent)
    assert Conversation.objects.get(pk=conversation.pk).assignee == agent
    services.conversation_assign(conversation=conversation, assignee=None)
    assert Conversation.objects.get(pk=conversation.pk).assignee is None


def test_assign_refused_on_closed_and_for_inactive_agents(agent):
    inactive = UserFactory(is_active=False)
    conversation = conversation_in("new")
    with pytest.raises(InvalidInput):
        services.conversation_assign(conversation=conversation, assignee=inactive)
    closed = conversation_in("closed")
    with pytest.raises(IllegalTransition):
        services.conversation_assign(conversation=closed, assignee=agent)
    assert Conversation.objects.get(pk=closed.pk).assignee is None


def test_inbound_in_a_flow_does_not_wait_for_an_agent():
    conversation = conversation_in("in_flow")
    contact = conversation.contact
    services.message_receive(channel=contact.channel, external_id=contact.external_id, text="1")
    conversation.refresh_from_db()
    assert conversation.status == "in_flow"
    assert conversation.waiting_since is None


def test_automated_message_keeps_status_and_is_refused_when_closed():
    conversation = conversation_in("in_flow")
    message = services.message_send_automated(conversation=conversation, text="Welcome!")
    assert (message.direction, message.sender_kind) == ("outbound", "flow")
    assert Conversation.objects.get(pk=conversation.pk).status == "in_flow"
    closed = conversation_in("closed")
    with pytest.raises(IllegalTransition):
        services.message_send_automated(conversation=closed, text="Too late")


def test_timeline_mixes_messages_and_status_events_in_order(agent):
    from conversations.selectors import conversation_timeline

    conversation = conversation_in("in_progress", agent=agent)
    services.conversation_close(conversation=conversation, actor=agent)
    kinds = [
        (e.kind, getattr(e.item, "to_status", None))
        for e in conversation_timeline(conversation=conversation)
    ]
    assert kinds == [
        ("status", "not_contacted"),
        ("status", "new"),
        ("message", None),
        ("status", "in_progress"),
        ("message", None),
        ("status", "closed"),
    ]


def test_status_counts_in_one_query(django_assert_num_queries):
    from conversations.selectors import status_counts

    for status in ("not_contacted", "new", "new", "in_progress", "in_flow", "closed", "resolved"):
        conversation_in(status)
    conversation_in("closed", archived=True)
    with django_assert_num_queries(1):
        counts = status_counts()
    assert counts == {
        "resolved": 1,
        "not_contacted": 1,
        "new": 2,
        "in_progress": 1,
        "in_flow": 1,
        "closed": 1,
        "archived": 1,
        "snoozed": 0,
        "all": 7,
    }


def test_contact_history_newest_first():
    from conversations.selectors import contact_history

    contact = ContactFactory()
    first = contact.conversations.get()
    services.conversation_close(conversation=first)
    second = services.message_receive(
        channel=contact.channel, external_id=contact.external_id, text="again"
    ).conversation
    assert [c.pk for c in contact_history(contact=contact)] == [second.pk, first.pk]
    assert StatusChange.objects.filter(conversation=second).count() == 1


def test_inbound_answers_with_the_status_a_receiver_moved_it_to():
    """A keyword flow (or any hook receiver) may move the conversation on inside the
    same transaction: the service reports the real, final status."""
    from conversations import hooks
    from conversations.transitions import Event

    def keyword(message, conversation, **kwargs):
        services.apply_event(conversation=conversation, event=Event.KEYWORD, source=Source.FLOW)
        return True  # it acted: the hooks' contract (conversations/hooks.py)

    hooks.message_received.connect(keyword, dispatch_uid="test-keyword")
    try:
        result = services.message_receive(channel="web", external_id="kw", text="hi")
    finally:
        hooks.message_received.disconnect(dispatch_uid="test-keyword")
    assert result.conversation.status == "in_flow"
    assert Conversation.objects.get(pk=result.conversation.pk).status == "in_flow"


def test_refusals_read_as_sentences(agent):
    closed = conversation_in("closed")
    with pytest.raises(IllegalTransition) as refusal:
        services.conversation_reply(conversation=closed, agent=agent, text="hello?")
    assert refusal.value.detail == (
        "Replying is not possible: the conversation is closed, and closed conversations "
        "are read-only."
    )
