"""Issue #14 through real HTTP: close answers with the resulting status, the detail
shows the rating, a resolved conversation refuses replies, tags and a second close."""

import pytest

from conversations import services
from conversations.transitions import Status
from tests.factories import conversation_in, inbox_settings_set

pytestmark = pytest.mark.django_db


def test_close_answers_resolved_then_the_detail_has_the_rating(api, agent):
    inbox_settings_set(csat_enabled=True)
    conversation = conversation_in(Status.IN_PROGRESS, agent=agent)
    closed = api.post(f"/conversations/{conversation.pk}/close")
    assert closed.status == 200
    assert (closed.body["status"], closed.body["status_label"]) == ("resolved", "Resolved")

    detail = api.get(f"/conversations/{conversation.pk}").body
    assert (detail["rating"], detail["rated_agent"]) == (None, None)
    assert detail["messages"][-1]["sender_kind"] == "survey"

    contact = conversation.contact
    services.message_receive(channel=contact.channel, external_id=contact.external_id, text="4")
    detail = api.get(f"/conversations/{conversation.pk}").body
    assert (detail["status"], detail["rating"], detail["rated_agent"]) == (
        "closed",
        4,
        agent.username,
    )
    assert [h["event"] for h in detail["status_history"]][-2:] == [
        "close_with_survey",
        "survey_answer",
    ]


def test_close_answers_closed_with_csat_off(api):
    conversation = conversation_in(Status.IN_PROGRESS)
    assert api.post(f"/conversations/{conversation.pk}/close").body["status"] == "closed"


def test_close_archives_with_archive_on_close(api):
    inbox_settings_set(archive_on_close=True)
    conversation = conversation_in(Status.NEW)
    closed = api.post(f"/conversations/{conversation.pk}/close").body
    assert (closed["status"], closed["archived"]) == ("closed", True)


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("post", "reply", {"text": "Hi"}, "illegal_transition"),
        ("post", "close", None, "illegal_transition"),
        ("post", "archive", None, "not_archivable"),
        ("post", "tags", {"name": "vip"}, "tags_locked"),
    ],
)
def test_a_resolved_conversation_refuses_with_409(api, method, path, body, code):
    conversation = conversation_in(Status.RESOLVED)
    history = conversation.status_changes.count()
    response = getattr(api, method)(f"/conversations/{conversation.pk}/{path}", body)
    assert (response.status, response.error) == (409, code)
    conversation.refresh_from_db()
    assert conversation.status == Status.RESOLVED
    assert conversation.status_changes.count() == history
