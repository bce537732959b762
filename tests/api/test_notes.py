"""#15: private notes over the API (real HTTP), and the audit in the detail."""

import pytest

from conversations import services
from conversations.models import Mention
from conversations.transitions import Status
from tests.factories import UserFactory, conversation_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_note_with_a_mention(api, agent):
    bob = UserFactory(username="bob", first_name="Bob")
    conversation = conversation_in(Status.NEW)
    response = api.post(f"/conversations/{conversation.pk}/notes", {"text": "@bob can you check?"})
    assert response.status == 201, response.body
    assert response.body["text"] == "@bob can you check?"
    assert response.body["author"] == agent.username
    assert response.body["mentions"] == ["bob"]
    assert Mention.objects.filter(agent=bob, read_at__isnull=True).count() == 1
    conversation.refresh_from_db()
    assert conversation.status == Status.NEW
    assert conversation.messages.count() == 1  # nothing sent


def test_notes_on_a_closed_conversation_and_bad_input(api):
    conversation = conversation_in(Status.CLOSED)
    assert api.post(f"/conversations/{conversation.pk}/notes", {"text": "Noted"}).status == 201
    empty = api.post(f"/conversations/{conversation.pk}/notes", {"text": "  "})
    assert empty.status == 422
    assert empty.body["error"]
    assert api.post("/conversations/999999/notes", {"text": "x"}).status == 404


def test_the_detail_lists_notes_and_the_audit(api, agent, other_agent):
    conversation = conversation_in(Status.NEW)
    services.conversation_assign(conversation=conversation, assignee=other_agent, actor=agent)
    services.conversation_tag_add(conversation=conversation, tag="vip", actor=agent)
    services.note_add(conversation=conversation, author=agent, text="Internal")
    body = api.get(f"/conversations/{conversation.pk}").body
    assert [(n["text"], n["author"]) for n in body["notes"]] == [("Internal", agent.username)]
    assert [
        (a["kind"], a["actor"], a["from_assignee"], a["to_assignee"], a["tag"])
        for a in body["activity"]
    ] == [
        ("assigned", agent.username, None, other_agent.username, None),
        ("tag_added", agent.username, None, None, "vip"),
    ]


def test_the_notes_endpoint_is_in_the_openapi_schema(agent_client):
    schema = agent_client.get("/api/v1/openapi.json").json()
    operation = schema["paths"]["/api/v1/conversations/{conversation_id}/notes"]["post"]
    assert "201" in operation["responses"]
