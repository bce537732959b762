"""The API and the inbox agree: what one closes, the other shows closed, with its
tags locked, and refuses to change."""

import pytest

from conversations.exceptions import TagsLocked
from conversations.models import Conversation
from conversations.transitions import Status
from tests.factories import TagFactory, conversation_in

pytestmark = pytest.mark.django_db


def test_closed_through_the_api_shows_closed_and_locked_in_the_inbox(api, agent_client):
    conversation = conversation_in(Status.IN_PROGRESS, tags=[TagFactory(name="vip")])
    before = agent_client.get(f"/inbox/c/{conversation.pk}/").content.decode()
    assert "badge-in-progress" in before and "is-locked" not in before

    assert api.post(f"/conversations/{conversation.pk}/close").status == 200

    page = agent_client.get(f"/inbox/c/{conversation.pk}/").content.decode()
    assert "badge-closed" in page
    assert "is-locked" in page  # the tags are shown locked
    assert "vip" in page
    # The inbox's own tag action is refused too, and changes nothing.
    agent_client.post(f"/inbox/c/{conversation.pk}/tags/add/", {"name": "late"})
    assert list(conversation.tags.values_list("name", flat=True)) == ["vip"]


def test_closed_in_the_inbox_shows_closed_and_locked_in_the_api(api, agent_client, agent):
    conversation = conversation_in(Status.NEW, tags=[TagFactory(name="vip")])
    response = agent_client.post(f"/inbox/c/{conversation.pk}/close/")
    assert response.status_code in (200, 302)
    assert Conversation.objects.get(pk=conversation.pk).status == Status.CLOSED

    detail = api.get(f"/conversations/{conversation.pk}").body
    assert detail["status"] == "closed"
    assert detail["status_history"][-1]["actor"] == agent.username
    assert detail["tags"] == [{"name": "vip", "colour": "#2563eb"}]
    added = api.post(f"/conversations/{conversation.pk}/tags", {"name": "x"})
    removed = api.delete(f"/conversations/{conversation.pk}/tags/vip")
    assert (added.status, added.error) == (409, TagsLocked.code)
    assert (removed.status, removed.error) == (409, TagsLocked.code)
