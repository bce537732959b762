"""The inbox's event stream and presence endpoints (inbox/stream.py); the stream's
delivery itself is measured in Chromium (tests/e2e/test_realtime.py)."""

import json

import psycopg
import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from django.urls import reverse

from conversations import events, services

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_stream_needs_a_login(client):
    response = client.get(reverse("inbox:stream"))
    assert response.status_code == 401


def test_the_page_opens_the_stream_with_the_vendored_extension(agent):
    html = async_to_sync(_page)(agent, reverse("inbox:list"))
    assert f'sse-connect="{reverse("inbox:stream")}"' in html
    assert "django_htmx/ext/hx-sse-2.min.js" in html
    assert "js/stream.js" in html
    assert "https://" not in html.split("<body")[0]  # no CDN
    # The heartbeat stays: it takes over when the stream cannot be opened.
    assert 'id="poller"' in html


def test_on_a_wsgi_server_the_page_keeps_to_its_heartbeat(agent_client):
    html = agent_client.get(reverse("inbox:list")).content.decode()
    assert "sse-connect" not in html and 'id="poller"' in html


async def _page(agent, url: str) -> str:
    client = AsyncClient()
    await client.aforce_login(agent)
    return (await client.get(url)).content.decode()


def test_presence_is_published_to_the_other_agents(agent_client, agent):
    conversation = services.message_receive(channel="sms", external_id="+1", text="hi").conversation
    with psycopg.connect(**events._conninfo(), autocommit=True) as conn:
        conn.execute(f"LISTEN {events.PRESENCE}")
        url = reverse("inbox:presence", args=[conversation.pk])
        assert agent_client.post(url, {"state": "typing"}).status_code == 204
        (notify,) = list(conn.notifies(timeout=2, stop_after=1))
    data = json.loads(notify.payload)
    assert data["conversation"] == conversation.pk and data["agent"] == agent.pk
    assert data["state"] == "typing" and data["name"].startswith("Alice")


def test_presence_ignores_unknown_states_and_conversations(agent_client):
    assert agent_client.post(reverse("inbox:presence", args=[999999])).status_code == 204
    conversation = services.message_receive(channel="sms", external_id="+2", text="hi").conversation
    url = reverse("inbox:presence", args=[conversation.pk])
    assert agent_client.post(url, {"state": "<script>"}).status_code == 204


def test_presence_is_a_post_behind_the_login(client):
    url = reverse("inbox:presence", args=[1])
    assert client.get(url).status_code == 405
    assert client.post(url, {"state": "viewing"}).status_code == 302


def test_the_chat_stream_waits_for_a_contact(client):
    assert client.get(reverse("connectors:chat-stream", args=["web"])).status_code == 204


def test_the_chat_stream_is_for_web_chats_only(client):
    assert client.get(reverse("connectors:chat-stream", args=["sms"])).status_code == 404


def test_a_wsgi_server_gets_no_stream_the_page_keeps_its_heartbeat(agent_client):
    assert agent_client.get(reverse("inbox:stream")).status_code == 204


def test_the_stream_says_hello_and_replays_what_was_missed(agent):
    conversation = services.message_receive(channel="sms", external_id="+7", text="hi").conversation
    async_to_sync(_hello_and_replay)(agent, conversation)


async def _hello_and_replay(agent, conversation):
    client = AsyncClient()
    await client.aforce_login(agent)
    response = await client.get(reverse("inbox:stream"), headers={"Last-Event-ID": "0"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    chunks = aiter(response.streaming_content)
    hello = (await anext(chunks)).decode()
    assert "event: hello" in hello and hello.startswith("retry: ")
    missed = (await anext(chunks)).decode()
    assert "event: changed" in missed and f'"ids":[{conversation.pk}]' in missed
    await chunks.aclose()


def test_a_stream_that_cannot_listen_is_a_503_not_an_error(agent, monkeypatch):
    from conversations.events import BusUnavailable, bus

    async def unavailable():
        raise BusUnavailable

    monkeypatch.setattr(bus, "subscribe", unavailable)
    client = AsyncClient()
    async_to_sync(client.aforce_login)(agent)
    response = async_to_sync(client.get)(reverse("inbox:stream"))
    assert response.status_code == 503 and response["Retry-After"] == "30"
