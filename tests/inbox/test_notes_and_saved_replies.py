"""#15 in the inbox: notes in the pane, the audit lines, Mentions, saved replies."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations import services
from conversations.models import Activity, Mention, SavedReply
from conversations.transitions import Status
from tests.factories import ContactFactory, UserFactory, conversation_in

from .conftest import hx

pytestmark = pytest.mark.django_db

PANE = hx(target="conversation-pane")


def pane(client, conversation):
    return client.get(f"/inbox/c/{conversation.pk}/", headers=PANE)


def test_a_note_from_the_pane_is_shown_as_a_note(agent_client, agent):
    conversation = conversation_in(Status.NEW)
    response = agent_client.post(
        f"/inbox/c/{conversation.pk}/note/", {"note": "Check <b>the</b> order"}, headers=PANE
    )
    assert "Note added. Only agents see it." in response.text
    assert re.search(r'<article class="note"[^>]*>.*?Private note', response.text, re.S)
    assert "Check &lt;b&gt;the&lt;/b&gt; order" in response.text
    # The composer stays in note mode; the status did not move.
    assert re.search(r'id="mode-note-\d+"[^>]*checked', response.text)
    assert "badge-new" in response.text


def test_the_pane_shows_assignment_and_tag_lines_with_actor_and_time(agent_client, agent):
    bob = UserFactory(username="bob", first_name="Bob", last_name="Stone")
    conversation = conversation_in(Status.NEW)
    services.conversation_assign(conversation=conversation, assignee=bob, actor=agent)
    services.conversation_tag_add(conversation=conversation, tag="refund", actor=bob)
    services.conversation_tag_remove(conversation=conversation, tag="refund", actor=bob)
    text = re.sub(r"\s+", " ", pane(agent_client, conversation).text)
    me = f"{agent.first_name} {agent.last_name}".strip() or agent.username
    assert re.search(
        rf"<strong>Assigned</strong> · Nobody → Bob Stone · by {me} · <time datetime=", text
    ) or re.search(rf"<strong>Assigned</strong> · nobody → Bob Stone · by {me} · <time", text)
    assert re.search(r"<strong>Tag added</strong> · refund · by Bob Stone · <time", text)
    assert re.search(r"<strong>Tag removed</strong> · refund · by Bob Stone · <time", text)


def test_the_pane_queries_do_not_grow_with_the_activities(agent_client, agent, other_agent):
    few = conversation_in(Status.NEW)
    many = conversation_in(Status.NEW, contact=ContactFactory())
    for index in range(30):
        services.conversation_assign(
            conversation=many, assignee=agent if index % 2 else other_agent, actor=agent
        )
        services.note_add(conversation=many, author=other_agent, text=f"@{agent.username} {index}")
    assert Activity.objects.filter(conversation=many).count() == 60
    pane(agent_client, few), pane(agent_client, many)  # the choices memory warm
    counts = []
    for conversation in (few, many):
        with CaptureQueriesContext(connection) as queries:
            assert pane(agent_client, conversation).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 6


def test_mentions_view_counts_unread_and_opening_reads(agent_client, agent, other_agent):
    conversation = conversation_in(Status.NEW)
    services.note_add(conversation=conversation, author=other_agent, text=f"@{agent.username} look")
    inbox = agent_client.get("/inbox/").text
    assert re.search(r'data-view-count="mentions">1<', inbox)
    page = agent_client.get("/inbox/mentions/").text
    assert "Unread" in page and "look" in page
    # The pane asks to mark them read (it shows the note).
    text = pane(agent_client, conversation).text
    read_url = f"/inbox/c/{conversation.pk}/mentions/read/"
    assert read_url in text
    assert agent_client.post(read_url).status_code == 200
    assert Mention.objects.get().read_at is not None
    assert re.search(r'data-view-count="mentions">0<', agent_client.get("/inbox/").text)
    assert "Unread" not in agent_client.get("/inbox/mentions/").text


def test_saved_replies_pages(agent_client, agent, other_agent):
    response = agent_client.post(
        "/inbox/replies/new/", {"title": "Greeting", "body": "Hi {{contact.name}}!"}
    )
    assert response.status_code == 302
    mine = SavedReply.objects.get(owner=agent)
    bad = agent_client.post("/inbox/replies/new/", {"title": "X", "body": "{{contact.age}}"})
    assert bad.status_code == 400 and "Unknown placeholder" in bad.text
    shared = SavedReply.objects.create(
        owner=other_agent, title="Refund policy", body="30 days", shared=True
    )
    private = SavedReply.objects.create(owner=other_agent, title="Secret", body="x")
    page = agent_client.get("/inbox/replies/").text
    assert "Greeting" in page and "Refund policy" in page and "Secret" not in page
    # Only one's own can be edited or deleted.
    assert agent_client.get(f"/inbox/replies/{shared.pk}/").status_code == 404
    assert agent_client.post(f"/inbox/replies/{shared.pk}/delete/").status_code == 404
    agent_client.post(f"/inbox/replies/{mine.pk}/", {"title": "Hello", "body": "Hey"})
    mine.refresh_from_db()
    assert (mine.title, mine.body) == ("Hello", "Hey")
    search = agent_client.get("/inbox/replies/search/?q=ref").json()["results"]
    assert [r["title"] for r in search] == ["Refund policy"]
    everything = agent_client.get("/inbox/replies/search/?q=").json()["results"]
    assert {r["title"] for r in everything} == {"Hello", "Refund policy"}
    assert private.pk not in {r["id"] for r in everything}
    assert agent_client.post(f"/inbox/replies/{mine.pk}/delete/").status_code == 302
    assert not SavedReply.objects.filter(pk=mine.pk).exists()


def test_a_saved_reply_is_filled_for_the_conversation(agent_client, agent, other_agent):
    conversation = conversation_in(Status.NEW, contact=ContactFactory(name="Dana Reyes"))
    reply = SavedReply.objects.create(
        owner=agent, title="Hi", body="Hello {{contact.first_name}}, {{agent.first_name}} here."
    )
    private = SavedReply.objects.create(owner=other_agent, title="Theirs", body="x")
    url = f"/inbox/c/{conversation.pk}/replies/"
    text = agent_client.get(f"{url}{reply.pk}/").json()["text"]
    assert text == f"Hello Dana, {agent.first_name or agent.username} here."
    assert agent_client.get(f"{url}{private.pk}/").status_code == 404
