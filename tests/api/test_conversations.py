from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations import services
from conversations.exceptions import (
    ConversationClosed,
    NotArchivable,
    NotArchived,
    TagsLocked,
)
from conversations.models import Conversation, Message, Tag
from conversations.transitions import Status
from tests.factories import ContactFactory, TagFactory, conversation_in

pytestmark = pytest.mark.django_db


def _spread_activity(conversations):
    """Distinct, known activity times (newest last in the given order)."""
    base = timezone.now() - timedelta(hours=1)
    for minutes, conversation in enumerate(conversations):
        Conversation.objects.filter(pk=conversation.pk).update(
            last_activity_at=base + timedelta(minutes=minutes)
        )


# --- list -----------------------------------------------------------------------------


def test_the_list_walks_every_page_newest_first_without_gaps(api):
    conversations = [conversation_in(Status.NEW) for _ in range(5)]
    _spread_activity(conversations)
    # Two with the same activity time: the id breaks the tie.
    Conversation.objects.filter(pk=conversations[1].pk).update(
        last_activity_at=Conversation.objects.get(pk=conversations[2].pk).last_activity_at
    )
    seen, cursor, pages = [], None, 0
    while True:
        response = api.get("/conversations?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert response.status == 200
        seen += [item["id"] for item in response.body["items"]]
        pages += 1
        cursor = response.body["next_cursor"]
        if cursor is None:
            break
    expected = list(
        Conversation.objects.order_by("-last_activity_at", "-id").values_list("pk", flat=True)
    )
    assert seen == expected
    assert pages == 3


def test_the_list_filters_by_several_statuses(api):
    new = conversation_in(Status.NEW)
    in_progress = conversation_in(Status.IN_PROGRESS)
    conversation_in(Status.NOT_CONTACTED)
    conversation_in(Status.CLOSED)
    repeated = api.get("/conversations?status=new&status=in_progress")
    comma = api.get("/conversations?status=new,in_progress")
    assert {c["id"] for c in repeated.body["items"]} == {new.pk, in_progress.pk}
    assert comma.body == repeated.body


def test_the_list_hides_archived_by_default_and_shows_them_on_request(api):
    live = conversation_in(Status.CLOSED)
    archived = conversation_in(Status.CLOSED, archived=True)
    ids = {
        value: {c["id"] for c in api.get(f"/conversations?archived={value}").body["items"]}
        for value in ("no", "yes", "any")
    }
    assert {c["id"] for c in api.get("/conversations").body["items"]} == {live.pk}
    assert ids == {"no": {live.pk}, "yes": {archived.pk}, "any": {live.pk, archived.pk}}


def test_the_list_filters_by_tag_case_insensitively(api):
    vip = TagFactory(name="VIP")
    tagged = conversation_in(Status.NEW, tags=[vip])
    conversation_in(Status.NEW)
    response = api.get("/conversations?tag=vip")
    assert [c["id"] for c in response.body["items"]] == [tagged.pk]
    assert response.body["items"][0]["tags"] == [{"name": "VIP", "colour": "#2563eb"}]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("status=snoozed", "invalid_input"),
        ("archived=maybe", "invalid_request"),  # the schema's enum
        ("sort=newest", "invalid_request"),
        ("stauts=new", "invalid_request"),  # a misspelt filter is not ignored
        ("tag=a&tag=b", "invalid_request"),
        ("tag=", "invalid_request"),
        ("active_to=0", "invalid_request"),  # not a Unix time: a day
        ("active_to=9999-12-31", "invalid_request"),
        ("cursor=not-a-cursor", "invalid_cursor"),
        ("cursor=WzEsMl0", "invalid_cursor"),  # base64 of [1,2]: well-formed, wrong content
        ("limit=0", "invalid_request"),
        ("limit=abc", "invalid_request"),
    ],
)
def test_bad_list_parameters_are_422(api, query, code):
    response = api.get(f"/conversations?{query}")
    assert response.status == 422
    assert response.error == code


def test_the_list_takes_the_same_number_of_queries_for_1_and_50_rows(
    client, token, django_assert_num_queries
):
    """In-process client so that the queries are counted on this connection: the
    inbox's page of rows (their tag ids as an array) and the whole rows for the API
    (contact and assignee joined). The token, the FilterSet's choices and the tags
    are remembered by the process (a first request warms them)."""
    headers = {"Authorization": f"Bearer {token}"}
    conversation_in(Status.NEW, tags=[TagFactory()])
    client.get("/api/v1/conversations", headers=headers)  # token's first use, memories
    with django_assert_num_queries(2):
        assert client.get("/api/v1/conversations", headers=headers).status_code == 200
    for _ in range(49):
        conversation_in(Status.NEW, tags=[TagFactory()])
    client.get("/api/v1/conversations", headers=headers)  # the memory learns the new tags
    with django_assert_num_queries(2):
        response = client.get("/api/v1/conversations", headers=headers)
    items = response.json()["items"]
    assert len(items) == 50
    assert all(len(item["tags"]) == 1 for item in items)


# --- detail ---------------------------------------------------------------------------


def test_the_detail_takes_the_same_number_of_queries_for_1_and_50_messages(client, token, agent):
    headers = {"Authorization": f"Bearer {token}"}
    conversation = conversation_in(Status.IN_PROGRESS, agent=agent, tags=[TagFactory()])
    url = f"/api/v1/conversations/{conversation.pk}"
    client.get(url, headers=headers)  # records the token's first use

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url, headers=headers).status_code == 200
        return len(queries)

    few = count()
    contact = conversation.contact
    for n in range(25):
        services.message_receive(
            channel=contact.channel, external_id=contact.external_id, text=f"more {n}"
        )
        services.conversation_reply(conversation=conversation, agent=agent, text=f"ok {n}")
    assert count() == few
    assert len(client.get(url, headers=headers).json()["messages"]) == 52


def test_the_detail_has_contact_tags_messages_and_history(api, agent):
    conversation = conversation_in(Status.IN_PROGRESS, agent=agent, tags=[TagFactory(name="b2b")])
    response = api.get(f"/conversations/{conversation.pk}")
    assert response.status == 200
    body = response.body
    assert body["status"] == "in_progress" and body["status_label"] == "In progress"
    assert body["contact"]["external_id"] == conversation.contact.external_id
    assert body["tags"] == [{"name": "b2b", "colour": "#2563eb"}]
    assert [(m["direction"], m["author"]) for m in body["messages"]] == [
        ("inbound", None),
        ("outbound", "alice"),
    ]
    assert [(h["from_status"], h["to_status"]) for h in body["status_history"]] == [
        (None, "not_contacted"),
        ("not_contacted", "new"),
        ("new", "in_progress"),
    ]


def test_the_detail_escapes_nothing_and_loses_nothing(api):
    """JSON carries the text as written; escaping is the HTML pages' job."""
    text = "<script>alert('x')</script> & ünïcödé 🎉"
    conversation = conversation_in(Status.NEW, text=text)
    response = api.get(f"/conversations/{conversation.pk}")
    assert response.body["messages"][0]["text"] == text


def test_unknown_conversations_are_404(api):
    """One test for every route (each example is a real request): unknown ids are
    404; one beyond PostgreSQL's bigint range is outside the schema's range (422)."""
    routes = [
        ("GET", ""),
        ("POST", "/reply"),
        ("POST", "/close"),
        ("POST", "/archive"),
        ("POST", "/unarchive"),
        ("POST", "/tags"),
        ("DELETE", "/tags/vip"),
    ]
    for conversation_id, status, code in (
        (424242, 404, "not_found"),
        (10**30, 422, "invalid_request"),
    ):
        for method, path in routes:
            body = {"text": "hi", "name": "vip"} if method == "POST" else None
            response = api.request(method, f"/conversations/{conversation_id}{path}", body)
            assert (method, path, response.status, response.error) == (method, path, status, code)
    assert Message.objects.count() == 0 and Tag.objects.count() == 0


# --- reply ----------------------------------------------------------------------------


def test_reply_as_the_tokens_user(api, agent):
    conversation = conversation_in(Status.NEW)
    response = api.post(f"/conversations/{conversation.pk}/reply", {"text": "On it!"})
    assert response.status == 201
    assert response.body["conversation"] == {"id": conversation.pk, "status": "in_progress"}
    assert response.body["message"]["author"] == "alice"
    conversation.refresh_from_db()
    assert conversation.status == Status.IN_PROGRESS
    assert conversation.assignee == agent
    reply = conversation.messages.get(direction="outbound")
    assert (reply.text, reply.author) == ("On it!", agent)
    change = conversation.status_changes.latest("at")
    assert (change.actor, change.source) == (agent, "api")


def test_reply_to_a_closed_conversation_is_409(api):
    conversation = conversation_in(Status.CLOSED)
    response = api.post(f"/conversations/{conversation.pk}/reply", {"text": "Hello?"})
    assert response.status == 409
    assert response.error == ConversationClosed.code
    assert "closed" in response.body["detail"]
    assert conversation.messages.count() == 1


@pytest.mark.parametrize("body", [{"text": "   "}, {}, {"text": None}, {"text": 12}])
def test_an_empty_or_malformed_reply_is_422(api, body):
    conversation = conversation_in(Status.NEW)
    response = api.post(f"/conversations/{conversation.pk}/reply", body)
    assert response.status == 422
    conversation.refresh_from_db()
    assert conversation.status == Status.NEW
    assert conversation.messages.count() == 1


# --- close, archive, unarchive -----------------------------------------------------------


def test_close_archive_unarchive(api, agent):
    conversation = conversation_in(Status.IN_PROGRESS)
    closed = api.post(f"/conversations/{conversation.pk}/close")
    assert closed.status == 200
    assert (closed.body["status"], closed.body["archived"]) == ("closed", False)
    archived = api.post(f"/conversations/{conversation.pk}/archive")
    assert archived.status == 200 and archived.body["archived"] is True
    conversation.refresh_from_db()
    assert conversation.is_archived and conversation.closed_by == agent
    unarchived = api.post(f"/conversations/{conversation.pk}/unarchive")
    assert unarchived.status == 200
    assert (unarchived.body["status"], unarchived.body["archived"]) == ("closed", False)
    events = list(conversation.status_changes.values_list("event", "source"))
    assert events[-3:] == [("close", "api"), ("archive", "api"), ("unarchive", "api")]


REFUSED_ACTIONS = [
    (Status.CLOSED, False, "close", ConversationClosed),
    (Status.CLOSED, True, "close", ConversationClosed),
    (Status.NEW, False, "archive", NotArchivable),
    (Status.NOT_CONTACTED, False, "archive", NotArchivable),
    (Status.CLOSED, True, "archive", NotArchivable),
    (Status.CLOSED, False, "unarchive", NotArchived),
    (Status.IN_PROGRESS, False, "unarchive", NotArchived),
]


def test_refused_status_actions_are_409_and_change_nothing(api):
    for status, archived, action, refusal in REFUSED_ACTIONS:
        conversation = conversation_in(status, archived=archived)
        history = conversation.status_changes.count()
        response = api.post(f"/conversations/{conversation.pk}/{action}")
        case = (status, archived, action)
        assert (case, response.status, response.error) == (case, 409, refusal.code)
        assert response.body["detail"]
        after = Conversation.objects.get(pk=conversation.pk)
        assert (after.status, after.is_archived) == (status, archived)
        assert after.status_changes.count() == history


# --- tags -----------------------------------------------------------------------------------


def test_add_and_remove_tags_while_open(api):
    conversation = conversation_in(Status.NEW)
    added = api.post(f"/conversations/{conversation.pk}/tags", {"name": "Billing"})
    assert added.status == 201
    assert added.body == {
        "conversation_id": conversation.pk,
        "tags": [{"name": "Billing", "colour": "#64748b"}],
    }
    again = api.post(f"/conversations/{conversation.pk}/tags", {"name": "billing"})
    assert again.status == 201 and len(again.body["tags"]) == 1  # same tag, case-insensitive
    removed = api.delete(f"/conversations/{conversation.pk}/tags/Billing")
    assert removed.status == 200 and removed.body["tags"] == []
    assert not conversation.tags.exists()


def test_removing_a_tag_the_conversation_does_not_carry_is_404(api):
    conversation = conversation_in(Status.NEW)
    response = api.delete(f"/conversations/{conversation.pk}/tags/nope")
    assert response.status == 404
    assert "nope" in response.body["detail"]


def test_tags_are_locked_once_closed(api):
    vip = TagFactory(name="vip")
    conversation = conversation_in(Status.CLOSED, tags=[vip])
    added = api.post(f"/conversations/{conversation.pk}/tags", {"name": "other"})
    removed = api.delete(f"/conversations/{conversation.pk}/tags/vip")
    assert (added.status, removed.status) == (409, 409)
    assert added.error == removed.error == TagsLocked.code
    assert list(conversation.tags.values_list("name", flat=True)) == ["vip"]


def test_an_empty_tag_name_is_422(api):
    conversation = conversation_in(Status.NEW)
    response = api.post(f"/conversations/{conversation.pk}/tags", {"name": "  "})
    assert response.status == 422
    assert not Tag.objects.exists()


# --- the API and the inbox agree ------------------------------------------------------------


def test_closed_through_the_api_is_closed_with_locked_tags_everywhere(api):
    vip = TagFactory(name="vip")
    conversation = conversation_in(Status.NEW, tags=[vip])
    assert api.post(f"/conversations/{conversation.pk}/close").status == 200
    conversation.refresh_from_db()
    assert conversation.status == Status.CLOSED
    with pytest.raises(TagsLocked):
        services.conversation_tag_remove(conversation=conversation, tag=vip)
    with pytest.raises(ConversationClosed):
        services.conversation_reply(conversation=conversation, agent=None, text="late")


def test_closed_in_the_inbox_is_closed_with_locked_tags_in_the_api(api, other_agent):
    vip = TagFactory(name="vip")
    conversation = conversation_in(Status.IN_PROGRESS, tags=[vip])
    services.conversation_close(conversation=conversation, actor=other_agent)
    detail = api.get(f"/conversations/{conversation.pk}").body
    assert detail["status"] == "closed"
    assert detail["status_history"][-1]["actor"] == "bob"
    assert api.post(f"/conversations/{conversation.pk}/tags", {"name": "x"}).status == 409
    assert api.delete(f"/conversations/{conversation.pk}/tags/vip").status == 409


def test_the_list_has_the_inboxs_other_filters(api, agent, other_agent):
    mine = conversation_in(Status.IN_PROGRESS, agent=agent, text="refund for order 77")
    theirs = conversation_in(Status.IN_PROGRESS, agent=other_agent)
    unassigned = conversation_in(Status.NEW)
    whatsapp = conversation_in(Status.NEW, contact=ContactFactory(channel="whatsapp"))
    Conversation.objects.filter(pk=theirs.pk).update(
        last_activity_at=timezone.now() - timedelta(days=10)
    )

    def ids(query):
        response = api.get(f"/conversations?{query}")
        assert response.status == 200, response.body
        return {c["id"] for c in response.body["items"]}

    assert ids("assignee=me") == {mine.pk}
    assert ids("assignee=bob") == {theirs.pk}
    assert ids("assignee=none") == {unassigned.pk, whatsapp.pk}
    assert ids("channel=whatsapp") == {whatsapp.pk}
    assert ids("q=ORDER%2077") == {mine.pk}
    assert ids(f"q={whatsapp.contact.external_id}") == {whatsapp.pk}
    today = timezone.localdate()
    assert theirs.pk not in ids(f"active_from={today - timedelta(days=1)}")
    assert ids(f"active_to={today - timedelta(days=5)}") == {theirs.pk}
    refused = api.get(f"/conversations?active_from={today}&active_to={today - timedelta(days=1)}")
    assert refused.status == 422
    assert api.get("/conversations?active_from=yesterday").status == 422


def test_the_list_is_the_inboxs_list_with_its_cursor(api):
    """One FilterSet and one keyset cursor for the inbox and the API."""
    from inbox.selectors import decode_cursor

    rows = [conversation_in(Status.NEW) for _ in range(3)]
    first = api.get("/conversations?limit=2")
    at, pk = decode_cursor(first.body["next_cursor"], sort="activity")
    assert pk == first.body["items"][-1]["id"]
    # A cursor of the inbox's other sort is refused for this one.
    wrong = api.get(f"/conversations?sort=waiting&cursor={first.body['next_cursor']}")
    assert (wrong.status, wrong.error) == (422, "invalid_cursor")
    # Longest waiting first, like the inbox's sort.
    waiting = api.get("/conversations?sort=waiting&limit=2")
    assert [c["id"] for c in waiting.body["items"]] == [rows[0].pk, rows[1].pk]
    rest = api.get(f"/conversations?sort=waiting&cursor={waiting.body['next_cursor']}")
    assert [c["id"] for c in rest.body["items"]] == [rows[2].pk]
    assert rest.body["next_cursor"] is None


def test_a_filter_value_that_names_nothing_gives_an_empty_page(api):
    conversation_in(Status.NEW)
    for query in ("tag=nosuchtag", "channel=nosuchchannel", "assignee=nobody"):
        response = api.get(f"/conversations?{query}")
        assert (response.status, response.body) == (200, {"items": [], "next_cursor": None})
