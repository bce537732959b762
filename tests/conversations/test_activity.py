"""#15: the audit timeline (assignment and tag lines), private notes and mentions,
saved replies' placeholders."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from conversations import bulk, services
from conversations.exceptions import InvalidInput
from conversations.models import Activity, Conversation, Mention, SavedReply, Source
from conversations.saved_replies import fill, validate_placeholders
from conversations.transitions import Status
from tests.factories import ContactFactory, TagFactory, UserFactory, conversation_in

pytestmark = pytest.mark.django_db


def lines(conversation, kind=None):
    rows = Activity.objects.filter(conversation=conversation).order_by("id")
    if kind:
        rows = rows.filter(kind=kind)
    return [(a.kind, a.actor_id, a.source, a.data) for a in rows]


def test_assignment_changes_are_recorded_with_actor_and_source(agent, other_agent):
    conversation = conversation_in(Status.NEW)
    services.conversation_assign(conversation=conversation, assignee=agent, actor=agent)
    services.conversation_assign(
        conversation=conversation, assignee=other_agent, actor=agent, source=Source.ADMIN
    )
    services.conversation_assign(conversation=conversation, assignee=other_agent, actor=agent)
    services.conversation_assign(conversation=conversation, assignee=None, actor=other_agent)
    assert lines(conversation) == [
        ("assigned", agent.pk, "agent", {"from": None, "to": agent.pk}),
        ("assigned", agent.pk, "admin", {"from": agent.pk, "to": other_agent.pk}),
        ("assigned", other_agent.pk, "agent", {"from": other_agent.pk, "to": None}),
    ]


def test_a_reply_that_assigns_records_it(agent):
    conversation = conversation_in(Status.NEW)
    services.conversation_reply(conversation=conversation, agent=agent, text="Hi")
    services.conversation_reply(conversation=conversation, agent=agent, text="Again")
    assert lines(conversation) == [("assigned", agent.pk, "agent", {"from": None, "to": agent.pk})]


def test_tag_adds_and_removes_are_recorded(agent):
    conversation = conversation_in(Status.NEW)
    services.conversation_tag_add(conversation=conversation, tag="VIP", actor=agent)
    services.conversation_tag_add(conversation=conversation, tag="vip", actor=agent)  # no change
    services.conversation_tag_remove(
        conversation=conversation, tag="vip", actor=agent, source=Source.API
    )
    assert services.conversation_tag_remove(conversation=conversation, tag="vip") is False
    assert lines(conversation) == [
        ("tag_added", agent.pk, "agent", {"tag": "VIP"}),
        ("tag_removed", agent.pk, "api", {"tag": "VIP"}),
    ]


def _bulk_tag(contacts, tag):
    with transaction.atomic():
        targets = bulk.lock_targets([c.pk for c in contacts])
        with CaptureQueriesContext(connection) as queries:
            bulk.tag_add(targets, tag=tag)
    return len(queries)


def test_bulk_tagging_writes_its_lines_set_based():
    tag = TagFactory(name="promo")
    few = [ContactFactory() for _ in range(2)]
    many = [ContactFactory() for _ in range(20)]
    already = many[0].conversations.get()
    services.conversation_tag_add(conversation=already, tag=tag)
    assert _bulk_tag(few, tag) == _bulk_tag(many, tag)
    added = Activity.objects.filter(kind="tag_added", source="broadcast")
    assert added.count() == 2 + 19  # not the conversation that carried the tag already
    assert not added.filter(conversation=already).exists()
    assert all(data == {"tag": "promo"} for data in added.values_list("data", flat=True))


def test_a_note_changes_nothing_the_contact_or_the_list_sees(agent):
    bob = UserFactory(username="bob", first_name="Robert")
    carol = UserFactory(username="carol", first_name="Carol")
    conversation = conversation_in(Status.NEW)
    before = Conversation.objects.get(pk=conversation.pk)
    note = services.note_add(
        conversation=conversation,
        author=agent,
        text=f"@bob and @Carol please look; @{agent.username} too; mail a@b.com",
    )
    after = Conversation.objects.get(pk=conversation.pk)
    assert (after.status, after.waiting_since, after.last_activity_at) == (
        before.status,
        before.waiting_since,
        before.last_activity_at,
    )
    assert after.last_message_preview == before.last_message_preview
    assert after.updated_at > before.updated_at  # open panes refresh (the change bus)
    assert conversation.messages.count() == 1
    assert note.data["mentions"] == sorted([bob.pk, carol.pk])
    assert set(Mention.objects.values_list("agent_id", "read_at")) == {
        (bob.pk, None),
        (carol.pk, None),
    }


def test_a_first_name_mention_yields_to_a_username(agent):
    robert = UserFactory(username="robert", first_name="Bob")
    bob = UserFactory(username="bob", first_name="Zed")
    conversation = conversation_in(Status.NEW)
    services.note_add(conversation=conversation, author=agent, text="cc @Bob")
    assert list(Mention.objects.values_list("agent_id", flat=True)) == [bob.pk]
    assert robert.pk != bob.pk


def test_notes_are_allowed_on_closed_conversations(agent):
    conversation = conversation_in(Status.CLOSED)
    services.note_add(conversation=conversation, author=agent, text="For the record")
    assert lines(conversation, "note")[0][3]["text"] == "For the record"


def test_an_empty_note_is_refused_and_changes_nothing(agent):
    conversation = conversation_in(Status.NEW)
    with pytest.raises(InvalidInput):
        services.note_add(conversation=conversation, author=agent, text="   ")
    assert not Activity.objects.filter(kind="note").exists()


def test_placeholders_are_filled_and_unknown_ones_refused(agent):
    conversation = conversation_in(Status.NEW, contact=ContactFactory(name="Dana <b>Smith</b>"))
    agent.first_name, agent.last_name = "Alice", "Archer"
    body = "Hi {{contact.first_name}} ({{ contact.name }}), {{agent.first_name}} here, "
    body += "#{{conversation.id}}"
    assert fill(body, conversation=conversation, agent=agent) == (
        f"Hi Dana (Dana <b>Smith</b>), Alice here, #{conversation.pk}"
    )
    with pytest.raises(ValidationError, match="Unknown placeholder"):
        validate_placeholders("Hello {{contact.email}}")
    validate_placeholders("Hello {{agent.name}}")


def test_admin_assignment_and_tags_are_recorded(staff_client, staff, agent):
    conversation = conversation_in(Status.NEW)
    tag = TagFactory(name="billing")
    url = reverse("admin:conversations_conversation_change", args=[conversation.pk])
    data = {
        "assignee": agent.pk,
        "tag_links-TOTAL_FORMS": "1",
        "tag_links-INITIAL_FORMS": "0",
        "tag_links-0-tag": tag.pk,
        "tag_links-0-conversation": conversation.pk,
    }
    for prefix in ("messages", "status_changes", "activities"):
        data |= {f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"}
    assert staff_client.post(url, data).status_code == 302
    assert lines(conversation) == [
        ("assigned", staff.pk, "admin", {"from": None, "to": agent.pk}),
        ("tag_added", staff.pk, "admin", {"tag": "billing"}),
    ]
    page = staff_client.get(url).text
    assert "Activity (assignments, tags, private notes)" in page
    assert f"nobody → {agent.username}" in page


def test_saved_replies_in_the_admin(staff_client):
    url = reverse("admin:conversations_savedreply_add")
    response = staff_client.post(url, {"title": "Bad", "body": "Hi {{nope}}", "owner": ""})
    assert response.status_code == 200
    assert "Unknown placeholder" in response.text
    assert not SavedReply.objects.exists()
