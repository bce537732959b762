"""Issue #14: the Resolved tab (only while CSAT is on) and closing from the pane."""

import pytest

from conversations.models import Conversation
from conversations.transitions import Status
from tests.factories import conversation_in, inbox_settings_set

pytestmark = pytest.mark.django_db


def _tab_keys(response) -> list[str]:
    return [tab["key"] for tab in response.context["tabs"]]


def test_the_resolved_tab_shows_only_while_csat_is_on(agent_client):
    conversation_in(Status.RESOLVED)
    response = agent_client.get("/inbox/")
    assert "resolved" not in _tab_keys(response)
    assert "tab-resolved" not in response.text

    inbox_settings_set(csat_enabled=True)
    response = agent_client.get("/inbox/")
    tabs = {tab["key"]: tab for tab in response.context["tabs"]}
    assert tabs["resolved"]["count"] == 1
    assert "tab-resolved" in response.text
    listed = agent_client.get("/inbox/?status=resolved")
    assert [row.pk for row in listed.context["page"].rows] == [
        Conversation.objects.get(status=Status.RESOLVED).pk
    ]


def test_closing_in_the_pane_resolves_and_says_so(agent_client, agent):
    inbox_settings_set(csat_enabled=True)
    conversation = conversation_in(Status.IN_PROGRESS, agent=agent)
    response = agent_client.post(
        f"/inbox/c/{conversation.pk}/close/", headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert "Resolved. The satisfaction survey was sent" in response.text
    assert 'name="text"' not in response.text.split('id="thread"')[1]  # no reply box
    assert "Tags are locked: the conversation is resolved." in response.text
    conversation.refresh_from_db()
    assert conversation.status == Status.RESOLVED
    assert "conversationChanged" in response["HX-Trigger"]


def test_the_pane_of_a_rated_conversation_shows_the_rating(agent_client, agent):
    conversation = conversation_in(Status.RESOLVED, agent=agent)
    from conversations import services

    contact = conversation.contact
    services.message_receive(channel=contact.channel, external_id=contact.external_id, text="5")
    response = agent_client.get(f"/inbox/c/{conversation.pk}/")
    assert "the contact rated it 5 out of 5" in response.text
    assert "Contact rated the conversation" in response.text
