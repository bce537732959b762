"""The pane's thread shows the newest entries; the earlier ones stay reachable, page
by page ("Show earlier messages"), in the same order as the whole timeline, and the
pane's refreshes keep what the reader has loaded."""

import re
from datetime import timedelta

import pgtrigger
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations.models import Direction, Message, SenderKind, StatusChange
from conversations.selectors import conversation_timeline
from conversations.transitions import Status
from inbox.selectors import THREAD_PAGE
from tests.factories import conversation_in

from .conftest import hx

pytestmark = pytest.mark.django_db

PANE = hx(target="conversation-pane")
EARLIER = hx(target="thread-earlier")
ENTRY = re.compile(r'<div class="msg-text">(.*?)</div>|<p class="event event-([\w-]+)"', re.S)
EARLIER_LINK = re.compile(r'<p id="thread-earlier"[^>]*>\s*<a href="([^"]+)"')
CURSOR = re.compile(r'data-cursor="([^"]+)"')


def entries(html: str) -> list[str]:
    return [f"m:{text}" if text else f"s:{event}" for text, event in ENTRY.findall(html)]


def earlier_link(html: str) -> str | None:
    found = EARLIER_LINK.search(html)
    return found.group(1).replace("&amp;", "&") if found else None


def expected(conversation) -> list[str]:
    """The whole timeline, oldest first, as the pane used to show it."""
    return [
        f"m:{entry.item.text}" if entry.kind == "message" else f"s:{entry.item.event}"
        for entry in conversation_timeline(conversation=conversation)
    ]


@pytest.fixture
def long_thread():
    """130 messages and a few status changes; several share a moment (the id, and
    a status change before a message, decide the order)."""
    conversation = conversation_in(Status.NEW)
    start = timezone.now() - timedelta(days=1)
    messages = Message.objects.bulk_create(
        Message(
            conversation=conversation,
            direction=Direction.INBOUND,
            sender_kind=SenderKind.CONTACT,
            text=f"Message {index}",
        )
        for index in range(129)
    )
    for index, message in enumerate(messages):
        # Pairs of messages at the same moment.
        Message.objects.filter(pk=message.pk).update(
            created_at=start + timedelta(minutes=index // 2)
        )
    change = StatusChange.objects.filter(conversation=conversation).first()
    # A status change at the same moment as messages in the middle of the thread
    # (history lines are never rewritten: a fixture back-dates one the declared way).
    with pgtrigger.ignore("conversations.StatusChange:history_append_only"):
        StatusChange.objects.filter(pk=change.pk).update(at=start + timedelta(minutes=30))
    return conversation


def test_the_pane_shows_the_newest_entries_with_a_link_to_the_earlier_ones(
    agent_client, long_thread
):
    everything = expected(long_thread)
    assert len(everything) > 2 * THREAD_PAGE

    response = agent_client.get(f"/inbox/c/{long_thread.pk}/", headers=PANE)

    assert entries(response.text) == everything[-THREAD_PAGE:]
    assert "Show earlier messages" in response.text
    assert earlier_link(response.text).startswith(f"/inbox/c/{long_thread.pk}/?before=")


def test_earlier_pages_reach_every_entry_once_in_order(agent_client, long_thread):
    response = agent_client.get(f"/inbox/c/{long_thread.pk}/?status=new", headers=PANE)
    shown = entries(response.text)
    link = earlier_link(response.text)
    pages = 1
    while link:
        assert "status=new" in link  # the list's filters ride along
        response = agent_client.get(link, headers=EARLIER)
        assert response.status_code == 200
        assert "<section" not in response.text  # just the entries and the next link
        shown = entries(response.text) + shown
        link = earlier_link(response.text)
        pages += 1
    assert shown == expected(long_thread)
    assert pages == 3


def test_a_short_thread_has_no_earlier_link(agent_client):
    conversation = conversation_in(Status.NEW, text="Hello")
    response = agent_client.get(f"/inbox/c/{conversation.pk}/", headers=PANE)
    assert entries(response.text) == expected(conversation)
    assert "Show earlier messages" not in response.text


def test_a_refresh_keeps_the_earlier_entries_the_reader_loaded(agent_client, long_thread):
    first = agent_client.get(f"/inbox/c/{long_thread.pk}/", headers=PANE)
    earlier = agent_client.get(earlier_link(first.text), headers=EARLIER)
    oldest = CURSOR.search(earlier.text).group(1)  # what inbox.js sends as "since"

    refreshed = agent_client.get(f"/inbox/c/{long_thread.pk}/?since={oldest}", headers=PANE)
    assert entries(refreshed.text) == expected(long_thread)[-2 * THREAD_PAGE :]
    assert "Show earlier messages" in refreshed.text

    # An action answers with the pane the same way (htmx posts "since" in the form).
    replied = agent_client.post(
        f"/inbox/c/{long_thread.pk}/reply/", {"text": "Here you go", "since": oldest}, headers=PANE
    )
    assert entries(replied.text)[-1] == "m:Here you go"
    assert (
        entries(replied.text)[: 2 * THREAD_PAGE] == expected(long_thread)[-2 * THREAD_PAGE - 2 : -2]
    )


def test_without_htmx_the_earlier_link_opens_the_page_with_the_older_entries(
    agent_client, long_thread
):
    first = agent_client.get(f"/inbox/c/{long_thread.pk}/", headers=PANE)
    response = agent_client.get(earlier_link(first.text))
    assert "<html" in response.text
    thread = response.text[response.text.index('id="thread"') :]
    everything = expected(long_thread)
    assert entries(thread) == everything[-2 * THREAD_PAGE : -THREAD_PAGE]
    assert "Show the newest messages" in thread


@pytest.mark.parametrize("cursor", ["bogus", "WyJ0aHJlYWQiXQ"])
def test_bad_cursors_never_fail(agent_client, long_thread, cursor):
    url = f"/inbox/c/{long_thread.pk}/"
    response = agent_client.get(f"{url}?before={cursor}", headers=EARLIER)
    assert response.status_code == 200
    assert "The link to earlier messages is not valid." in response.text
    # A refresh with a bad "since", or a page with a bad "before": the newest entries.
    for query in (f"since={cursor}", f"before={cursor}"):
        response = agent_client.get(f"{url}?{query}", headers=PANE)
        assert entries(response.text) == expected(long_thread)[-THREAD_PAGE:]


def test_thread_entries_are_escaped(agent_client):
    conversation = conversation_in(Status.NEW, text="<script>alert(1)</script>\nline two")
    response = agent_client.get(f"/inbox/c/{conversation.pk}/", headers=PANE)
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;<br>line two" in response.text


def test_earlier_pages_need_a_login(client, long_thread):
    response = client.get(f"/inbox/c/{long_thread.pk}/?before=x", headers=EARLIER)
    assert response.status_code == 401
    assert response["HX-Redirect"].startswith("/login/?next=")
    assert "Message" not in response.text


def _queries(client, url, headers) -> int:
    client.get(url, headers=headers)  # the choices memory warm
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url, headers=headers).status_code == 200
    return len(queries)


def test_thread_queries_do_not_grow_with_its_length(agent_client, long_thread):
    short = conversation_in(Status.NEW, text="Hello")
    assert _queries(agent_client, f"/inbox/c/{short.pk}/", PANE) == _queries(
        agent_client, f"/inbox/c/{long_thread.pk}/", PANE
    )
    first = agent_client.get(f"/inbox/c/{long_thread.pk}/", headers=PANE)
    second = agent_client.get(earlier_link(first.text), headers=EARLIER)
    assert _queries(agent_client, earlier_link(first.text), EARLIER) == _queries(
        agent_client, earlier_link(second.text), EARLIER
    )
