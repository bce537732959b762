"""Issue 7: races between real transactions, and failures half-way through a
service, leave one consistent state and nothing half-written."""

import itertools

import pytest
from django.db import connection

from conversations import hooks, services
from conversations.exceptions import ParleyError
from conversations.models import Contact, Conversation, Message, StatusChange
from tests.concurrency import run_together
from tests.factories import UserFactory, conversation_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_fifty_inbound_messages_from_ten_contacts():
    senders = [f"+3161000{i:04d}" for i in range(10)]
    # Half of the contacts exist already with a closed conversation in history.
    for external_id in senders[:5]:
        old = services.message_receive(channel="whatsapp", external_id=external_id, text="old")
        services.conversation_close(conversation=old.conversation)
    calls = [
        lambda sender=sender, n=n: services.message_receive(
            channel="whatsapp", external_id=sender, text=f"{sender} #{n}"
        )
        for n, sender in itertools.product(range(5), senders)
    ]
    _, errors = run_together(calls)
    assert errors == [None] * 50
    assert Contact.objects.filter(channel="whatsapp").count() == 10
    for sender in senders:
        open_conversations = Conversation.objects.filter(contact__external_id=sender).open()
        assert open_conversations.count() == 1, sender
        texts = set(
            Message.objects.filter(conversation=open_conversations.get()).values_list(
                "text", flat=True
            )
        )
        assert texts == {f"{sender} #{n}" for n in range(5)}


@pytest.mark.parametrize("round_", range(3))
def test_archive_racing_an_inbound_message_never_archives_an_open_conversation(round_):
    agent = UserFactory()
    closed = conversation_in("closed", agent=agent)
    contact = closed.contact
    results, errors = run_together(
        [
            lambda: services.conversation_archive(conversation=closed, actor=agent),
            lambda: services.message_receive(
                channel=contact.channel, external_id=contact.external_id, text="one more thing"
            ),
        ]
    )
    assert errors == [None, None]
    # The archived conversation is the closed one; the message opened a new one.
    assert Conversation.objects.archived().filter(status="closed").count() == 1
    assert not Conversation.objects.archived().exclude(status="closed").exists()
    new = results[1].conversation
    assert new.pk != closed.pk
    assert Conversation.objects.get(pk=new.pk).archived_at is None
    assert Message.objects.filter(conversation=new, text="one more thing").exists()


def test_archive_racing_a_close_refuses_or_archives_cleanly():
    agent = UserFactory()
    conversation = conversation_in("in_progress", agent=agent)
    _, errors = run_together(
        [
            lambda: services.conversation_close(conversation=conversation, actor=agent),
            lambda: services.conversation_archive(conversation=conversation, actor=agent),
        ]
    )
    assert errors[0] is None
    conversation.refresh_from_db()
    assert conversation.status == "closed"
    if errors[1] is not None:
        assert isinstance(errors[1], ParleyError) and errors[1].code == "not_archivable"
        assert conversation.archived_at is None
    else:
        assert conversation.archived_at is not None


class Crash(Exception):
    """Stands for anything failing half-way: a bug, a lost connection."""


def _state():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM conversations_contact),"
            " (SELECT count(*) FROM conversations_conversation),"
            " (SELECT count(*) FROM conversations_message),"
            " (SELECT count(*) FROM conversations_statuschange)"
        )
        return cursor.fetchone()


@pytest.fixture
def crash_after_inbound_message_is_stored():
    def crash(**kwargs):
        assert Message.objects.filter(pk=kwargs["message"].pk).exists()  # it was written
        raise Crash

    hooks.message_received.connect(crash, dispatch_uid="test-crash")
    yield
    hooks.message_received.disconnect(dispatch_uid="test-crash")


def test_failure_half_way_through_inbound_leaves_nothing(crash_after_inbound_message_is_stored):
    before = _state()
    with pytest.raises(Crash):
        services.message_receive(channel="web", external_id="newcomer", text="hello")
    assert _state() == before  # no contact, conversation, message or history line


def test_failure_half_way_through_a_status_change_leaves_nothing():
    agent = UserFactory()
    conversation = conversation_in("new", agent=agent)
    before = _state()

    def crash(**kwargs):
        raise Crash

    hooks.status_changed.connect(crash, dispatch_uid="test-crash-status")
    try:
        with pytest.raises(Crash):
            services.conversation_reply(conversation=conversation, agent=agent, text="Hi")
    finally:
        hooks.status_changed.disconnect(dispatch_uid="test-crash-status")
    assert _state() == before
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee) == ("new", None)
    assert StatusChange.objects.filter(conversation=conversation).count() == 2


def test_failure_half_way_through_an_http_request_leaves_nothing(
    client, agent, crash_after_inbound_message_is_stored
):
    """The same through a real request: a 500 from a crash, and the database as
    before (the API answers through the same service)."""
    from connectors.tokens import token_create

    _, token = token_create(user=agent, name="crash test")
    client.raise_request_exception = False
    before = _state()
    response = client.post(
        "/api/v1/messages/inbound",
        {"channel": "web", "external_id": "newcomer", "text": "hello"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 500
    assert _state() == before
