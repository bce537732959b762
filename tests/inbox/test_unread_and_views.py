"""Unread markers per agent (conversations/reads.py) and the Mine / Unassigned
views with their counts; Mine is where an agent with assigned conversations lands."""

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from conversations import services
from conversations.models import ReadMark
from conversations.transitions import Status
from tests.factories import conversation_in

from .conftest import hx, receive

pytestmark = pytest.mark.django_db


def unread(response, conversation) -> str | None:
    match = re.search(rf'data-id="{conversation.pk}"( data-unread="([^"]+)")?', response.text)
    assert match, "the row is listed"
    return match.group(2)


def read_url(response) -> str:
    return re.search(r'hx-post="(/inbox/c/\d+/read/\?upto=[^"]+)"', response.text).group(1)


def test_contact_messages_are_unread_until_the_pane_shows_them(agent_client, agent, other_agent):
    conversation = conversation_in(Status.NEW)
    receive(conversation, "Are you there?")
    assert unread(agent_client.get("/inbox/"), conversation) == "2"

    pane = agent_client.get(f"/inbox/c/{conversation.pk}/", headers=hx(target="conversation-pane"))
    response = agent_client.post(read_url(pane))
    assert response.status_code == 200 and "conversationRead" in response["HX-Trigger"]
    assert unread(agent_client.get("/inbox/"), conversation) is None
    # Per agent: the other agent has not read it.
    agent_client.force_login(other_agent)
    assert unread(agent_client.get("/inbox/"), conversation) == "2"
    agent_client.force_login(agent)

    receive(conversation, "Hello?")
    assert unread(agent_client.get("/inbox/"), conversation) == "1"
    # Saying it again moves nothing (204, no refresh).
    assert agent_client.post(read_url(pane)).status_code == 204


def test_the_mark_never_moves_back_nor_past_now(agent_client, agent):
    conversation = conversation_in(Status.NEW)
    pane = agent_client.get(f"/inbox/c/{conversation.pk}/", headers=hx(target="conversation-pane"))
    agent_client.post(read_url(pane))
    mark = ReadMark.objects.get(agent=agent, conversation=conversation).read_upto
    agent_client.post(f"/inbox/c/{conversation.pk}/read/?upto=2000-01-01T00:00:00%2B00:00")
    agent_client.post(f"/inbox/c/{conversation.pk}/read/?upto=2999-01-01T00:00:00%2B00:00")
    after = ReadMark.objects.get(agent=agent, conversation=conversation).read_upto
    assert mark <= after and after.year < 2999
    for bad in ("", "yesterday", "2026-01-01T00:00:00"):
        assert agent_client.post(f"/inbox/c/{conversation.pk}/read/?upto={bad}").status_code == 204


def test_closed_conversations_are_never_unread(agent_client, agent):
    conversation = conversation_in(Status.CLOSED)
    assert unread(agent_client.get("/inbox/?status=closed"), conversation) is None


def test_mine_and_unassigned_views_with_their_counts(agent_client, agent, other_agent):
    mine = conversation_in(Status.IN_PROGRESS, agent=agent)
    theirs = conversation_in(Status.IN_PROGRESS, agent=other_agent)
    nobody = conversation_in(Status.NEW)
    conversation_in(Status.CLOSED, agent=agent)  # closed: in no view
    resolved = conversation_in(Status.RESOLVED, agent=agent)  # its survey awaited: neither

    page = agent_client.get("/inbox/").text
    assert re.search(r'data-view-count="mine">1<', page)
    assert re.search(r'data-view-count="unassigned">1<', page)

    link = re.search(r'href="([^"]+)" class="tab tab-view tab-mine"', page).group(1)
    query = parse_qs(urlsplit(link.replace("&amp;", "&")).query)
    assert query["assignee"] == ["me"]
    response = agent_client.get(link.replace("&amp;", "&"))
    assert f'data-id="{mine.pk}"' in response.text
    assert f'data-id="{theirs.pk}"' not in response.text
    assert f'data-id="{nobody.pk}"' not in response.text
    assert f'data-id="{resolved.pk}"' not in response.text
    assert re.search(r'class="tab tab-view tab-mine"[^>]*aria-current="page"', response.text)

    unassigned = re.search(r'href="([^"]+)" class="tab tab-view tab-unassigned"', page).group(1)
    response = agent_client.get(unassigned.replace("&amp;", "&"))
    assert f'data-id="{nobody.pk}"' in response.text
    assert f'data-id="{mine.pk}"' not in response.text


def test_an_agent_lands_on_the_default_view_which_holds_mine(agent_client, agent):
    # #15: the default view (open: mine or unassigned) replaces the landing on Mine.
    assert agent_client.get("/")["Location"] == "/inbox/"
    mine = conversation_in(Status.IN_PROGRESS, agent=agent)
    assert agent_client.get("/")["Location"] == "/inbox/"
    assert f'data-id="{mine.pk}"' in agent_client.get("/inbox/").text


def test_the_landing_needs_a_login(client):
    assert client.get("/")["Location"].startswith("/login/")


def test_reading_is_a_post_behind_the_login(agent_client):
    conversation = conversation_in(Status.NEW)
    url = f"/inbox/c/{conversation.pk}/read/?upto=2026-01-01T00:00:00%2B00:00"
    assert agent_client.get(url).status_code == 405
    assert Client().post(url).status_code == 302
    services.conversation_close(conversation=conversation)
    assert not ReadMark.objects.exists()


def test_reading_mentions_gives_the_page_the_new_count(agent_client, agent, other_agent):
    first, second = conversation_in(Status.NEW), conversation_in(Status.NEW)
    for conversation in (first, second):
        services.note_add(conversation=conversation, author=other_agent, text="@alice look")
    url = f"/inbox/c/{first.pk}/mentions/read/"
    response = agent_client.post(url)
    assert response.status_code == 200
    trigger = json.loads(response["HX-Trigger"])
    assert trigger == {"mentionsRead": {"id": first.pk, "unread": "1"}}
    # Read already: nothing to say.
    assert agent_client.post(url).status_code == 204
