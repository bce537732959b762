"""Real threads, real transactions on PostgreSQL: the row locks and the partial
unique constraint keep one open conversation per contact and lose no message."""

import pytest

from conversations import services
from conversations.exceptions import ParleyError
from conversations.models import Contact, Conversation, Message
from tests.concurrency import run_together
from tests.factories import UserFactory, conversation_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_twenty_inbound_messages_for_one_new_contact_at_once():
    texts = [f"message {i}" for i in range(20)]
    results, errors = run_together(
        [
            lambda text=text: services.message_receive(
                channel="whatsapp", external_id="+31600000000", text=text
            )
            for text in texts
        ]
    )
    assert errors == [None] * 20
    contact = Contact.objects.get(channel="whatsapp", external_id="+31600000000")
    open_conversations = Conversation.objects.filter(contact=contact).open()
    assert open_conversations.count() == 1
    conversation = open_conversations.get()
    assert conversation.status == "new"
    assert sorted(
        Message.objects.filter(conversation=conversation).values_list("text", flat=True)
    ) == sorted(texts)
    assert {r.conversation.pk for r in results} == {conversation.pk}


def test_twenty_inbound_messages_racing_a_close():
    conversation = conversation_in("new")
    contact = conversation.contact
    agent = UserFactory()
    calls = [
        lambda i=i: services.message_receive(
            channel=contact.channel, external_id=contact.external_id, text=f"m{i}"
        )
        for i in range(19)
    ] + [lambda: services.conversation_close(conversation=conversation, actor=agent)]
    _, errors = run_together(calls)
    assert errors == [None] * 20
    # Every message is kept; at most one conversation is open.
    assert Message.objects.filter(conversation__contact=contact, direction="inbound").count() == 20
    assert Conversation.objects.filter(contact=contact).open().count() <= 1


def test_two_agents_close_and_reply_at_once():
    conversation = conversation_in("new")
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    results, errors = run_together(
        [
            lambda: services.conversation_close(conversation=conversation, actor=alice),
            lambda: services.conversation_reply(conversation=conversation, agent=bob, text="Hi"),
        ]
    )
    conversation.refresh_from_db()
    assert conversation.status == "closed"
    replies = Message.objects.filter(conversation=conversation, author=bob).count()
    if errors[1] is None:
        # The reply came first, then the close.
        assert replies == 1
    else:
        # The close won; the reply was refused cleanly and left nothing behind.
        assert isinstance(errors[1], ParleyError)
        assert errors[1].code == "illegal_transition"
        assert replies == 0
    assert errors[0] is None
