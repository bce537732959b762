"""Channel lookups are cached per process for outbound delivery; a saved change
takes effect for the next message at once."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from connectors.models import Channel, ChannelKind, Delivery
from conversations import services
from tests.factories import conversation_in

pytestmark = pytest.mark.django_db


def test_a_channel_switched_to_webhook_applies_to_the_next_message(
    agent, django_capture_on_commit_callbacks
):
    channel = Channel.objects.create(slug="shop", kind=ChannelKind.WEB)
    conversation = conversation_in("new")
    conversation.contact.channel = "shop"
    conversation.contact.save(update_fields=["channel"])

    services.conversation_reply(conversation=conversation, agent=agent, text="one")
    assert Delivery.objects.count() == 0  # web: the chat page polls

    channel.kind = ChannelKind.WEBHOOK
    channel.webhook_url = "http://127.0.0.1:9/hook"
    channel.save()
    with django_capture_on_commit_callbacks(execute=False):
        services.conversation_reply(conversation=conversation, agent=agent, text="two")
    assert list(Delivery.objects.values_list("message__text", flat=True)) == ["two"]

    channel.is_active = False
    channel.save()
    services.conversation_reply(conversation=conversation, agent=agent, text="three")
    assert Delivery.objects.count() == 1


def test_outbound_delivery_costs_no_query_per_message_for_a_known_channel(agent):
    conversation = conversation_in("new")
    services.conversation_reply(conversation=conversation, agent=agent, text="warm the cache")
    with CaptureQueriesContext(connection) as queries:
        services.conversation_reply(conversation=conversation, agent=agent, text="again")
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert "connectors_channel" not in sql
    assert 'FROM "conversations_contact"' not in sql  # loaded with the locked conversation
