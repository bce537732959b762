"""``POST /api/v1/conversations/{id}/snooze {until}`` and ``…/unsnooze`` over real HTTP."""

from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.models import Conversation
from conversations.transitions import Event, Status
from tests.factories import conversation_in

pytestmark = pytest.mark.django_db(transaction=True)


def _iso(**kwargs) -> str:
    return (timezone.now() + timedelta(**kwargs)).isoformat()


def test_snooze_and_unsnooze(api, agent):
    conversation = conversation_in(Status.NEW)
    response = api.post(f"/conversations/{conversation.pk}/snooze", {"until": _iso(hours=2)})
    assert response.status == 200, response.body
    assert response.body["snoozed_until"] is not None
    assert response.body["status"] == "new"
    line = conversation.status_changes.order_by("-id").first()
    assert (line.event, line.source, line.actor_id) == (Event.SNOOZE, "api", agent.pk)

    response = api.post(f"/conversations/{conversation.pk}/unsnooze")
    assert response.status == 200
    assert response.body["snoozed_until"] is None
    again = api.post(f"/conversations/{conversation.pk}/unsnooze")
    assert (again.status, again.error) == (409, "not_snoozed")
    assert "not snoozed" in again.body["detail"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"until": "2001-01-01T10:00:00+00:00"}, "in the past"),
        ({"until": "2999-01-01T10:00:00"}, "time zone"),
        ({"until": "tomorrow"}, None),
        ({}, None),
    ],
)
def test_bad_times_are_refused_with_a_sentence(api, body, error):
    conversation = conversation_in(Status.IN_PROGRESS)
    response = api.post(f"/conversations/{conversation.pk}/snooze", body)
    assert response.status == 422
    assert response.error
    if error:
        assert error in response.body["detail"]
    assert Conversation.objects.get(pk=conversation.pk).snoozed_until is None


def test_a_closed_conversation_is_refused_409(api):
    conversation = conversation_in(Status.CLOSED)
    response = api.post(f"/conversations/{conversation.pk}/snooze", {"until": _iso(hours=1)})
    assert (response.status, response.error) == (409, "illegal_transition")
    assert "closed" in response.body["detail"]
    missing = api.post("/conversations/999999/snooze", {"until": _iso(hours=1)})
    assert missing.status == 404


def test_the_openapi_docs_describe_snooze(agent_client):
    schema = agent_client.get("/api/v1/openapi.json").json()
    snooze = schema["paths"]["/api/v1/conversations/{conversation_id}/snooze"]["post"]
    assert {"200", "401", "404", "409", "422"} <= set(snooze["responses"])
    ref = snooze["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert body["properties"]["until"]["format"] == "date-time"
    unsnooze = schema["paths"]["/api/v1/conversations/{conversation_id}/unsnooze"]["post"]
    assert "not_snoozed" in unsnooze["description"]
