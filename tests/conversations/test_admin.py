"""The back office through the Django test client as a staff user."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from conversations import services
from conversations.models import Contact, Conversation, ConversationTag, Tag
from tests.factories import TagFactory, conversation_in

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:conversations_conversation_changelist")


@pytest.fixture
def one_of_each(agent):
    return {
        status: conversation_in(status, agent=agent)
        for status in ("not_contacted", "new", "in_progress", "in_flow", "closed")
    } | {"archived": conversation_in("closed", archived=True, agent=agent)}


def test_agent_without_staff_status_gets_no_admin(agent_client):
    response = agent_client.get(CHANGELIST)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_anonymous_gets_the_admin_login(client):
    response = client.get(CHANGELIST)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_changelist_shows_every_status(staff_client, one_of_each):
    response = staff_client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    for label in ("Not contacted", "New", "In progress", "In a flow", "Closed"):
        assert f">{label}</span>" in html


def test_changelist_query_count_does_not_grow(staff_client, agent):
    def count_queries():
        with CaptureQueriesContext(connection) as queries:
            assert staff_client.get(CHANGELIST).status_code == 200
        return len(queries)

    conversation_in("new", agent=agent, tags=["a"])
    with_one = count_queries()
    for _ in range(20):
        conversation_in("in_progress", agent=agent, tags=["a", "b"])
    assert count_queries() == with_one


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("status__exact=new", {"new"}),
        ("status__exact=closed", {"closed", "archived"}),
        ("archived=yes", {"archived"}),
        ("archived=no", {"not_contacted", "new", "in_progress", "in_flow", "closed"}),
    ],
)
def test_changelist_filters(staff_client, one_of_each, params, expected):
    response = staff_client.get(f"{CHANGELIST}?{params}")
    shown = {c.pk for c in response.context["cl"].result_list}
    assert shown == {one_of_each[key].pk for key in expected}


def test_filter_by_tag_and_assignee(staff_client, agent, other_agent):
    tag = TagFactory(name="vip")
    tagged = conversation_in("new", tags=[tag])
    conversation_in("new")
    mine = conversation_in("in_progress", agent=other_agent)
    response = staff_client.get(f"{CHANGELIST}?tags__id__exact={tag.pk}")
    assert [c.pk for c in response.context["cl"].result_list] == [tagged.pk]
    response = staff_client.get(f"{CHANGELIST}?assignee__id__exact={other_agent.pk}")
    assert [c.pk for c in response.context["cl"].result_list] == [mine.pk]


def test_search_by_contact_name(staff_client):
    wanted = conversation_in("new")
    conversation_in("new")
    response = staff_client.get(f"{CHANGELIST}?q={wanted.contact.name}")
    assert wanted.pk in {c.pk for c in response.context["cl"].result_list}


def _action(client, action, conversations):
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [c.pk for c in conversations]},
        follow=True,
    )


def test_close_action_closes_and_reports_refusals(staff_client, one_of_each, staff):
    targets = [one_of_each["new"], one_of_each["in_flow"], one_of_each["closed"]]
    response = _action(staff_client, "close_conversations", targets)
    assert response.status_code == 200
    texts = [str(m) for m in response.context["messages"]]
    assert "2 conversations closed." in texts
    assert any(t.startswith(f"#{one_of_each['closed'].pk} not closed:") for t in texts)
    for key in ("new", "in_flow"):
        conversation = Conversation.objects.get(pk=one_of_each[key].pk)
        assert conversation.status == "closed"
        change = conversation.status_changes.order_by("-id").first()
        assert (change.source, change.actor) == ("admin", staff)


def test_archive_action_refuses_open_conversations(staff_client, one_of_each):
    response = _action(
        staff_client, "archive_conversations", [one_of_each["closed"], one_of_each["new"]]
    )
    texts = [str(m) for m in response.context["messages"]]
    assert "1 conversation archived." in texts
    assert any("Only closed conversations can be archived" in t for t in texts)
    assert Conversation.objects.get(pk=one_of_each["closed"].pk).archived_at is not None
    assert Conversation.objects.get(pk=one_of_each["new"].pk).archived_at is None


def test_unarchive_action(staff_client, one_of_each):
    response = _action(staff_client, "unarchive_conversations", [one_of_each["archived"]])
    assert "1 conversation unarchived." in [str(m) for m in response.context["messages"]]
    assert Conversation.objects.get(pk=one_of_each["archived"].pk).archived_at is None


def _change_form_data(conversation, tag_rows):
    data = {
        "assignee": conversation.assignee_id or "",
        "tag_links-TOTAL_FORMS": str(len(tag_rows)),
        "tag_links-INITIAL_FORMS": str(sum(1 for row in tag_rows if row.get("id"))),
        "tag_links-MIN_NUM_FORMS": "0",
        "tag_links-MAX_NUM_FORMS": "1000",
        "messages-TOTAL_FORMS": "0",
        "messages-INITIAL_FORMS": "0",
        "status_changes-TOTAL_FORMS": "0",
        "status_changes-INITIAL_FORMS": "0",
        "activities-TOTAL_FORMS": "0",
        "activities-INITIAL_FORMS": "0",
    }
    for index, row in enumerate(tag_rows):
        for key, value in row.items():
            data[f"tag_links-{index}-{key}"] = value
        data[f"tag_links-{index}-conversation"] = conversation.pk
    return data


def test_editing_tags_of_open_conversation_in_admin(staff_client):
    conversation = conversation_in("new")
    tag = TagFactory(name="vip")
    url = reverse("admin:conversations_conversation_change", args=[conversation.pk])
    response = staff_client.post(url, _change_form_data(conversation, [{"tag": tag.pk}]))
    assert response.status_code == 302
    assert list(conversation.tags.all()) == [tag]


def test_a_closed_conversation_shows_its_assignee_and_tags_read_only(staff_client, agent):
    # #15: no controls that can only fail on save (it used to be a form error).
    tag = TagFactory(name="vip")
    closed = conversation_in("in_progress", agent=agent, tags=[tag])
    services.conversation_close(conversation=closed, actor=agent)
    link = ConversationTag.objects.get(conversation=closed)
    url = reverse("admin:conversations_conversation_change", args=[closed.pk])
    page = staff_client.get(url).content.decode()
    assert 'name="assignee"' not in page
    assert 'name="tag_links-0-tag"' not in page and "tag_links-__prefix__" not in page
    assert "vip" in page and "alice" in page
    open_page = staff_client.get(
        reverse("admin:conversations_conversation_change", args=[conversation_in("new").pk])
    ).content.decode()
    assert 'name="assignee"' in open_page and "tag_links-__prefix__" in open_page
    # A crafted post (add a tag, remove one, change the assignee) changes nothing.
    other = TagFactory(name="other")
    for rows in (
        [{"id": link.pk, "tag": tag.pk}, {"tag": other.pk}],
        [{"id": link.pk, "tag": tag.pk, "DELETE": "on"}],
    ):
        data = _change_form_data(closed, rows) | {"assignee": ""}
        response = staff_client.post(url, data)
        assert response.status_code == 302
        assert list(closed.tags.all()) == [tag]
        assert Conversation.objects.get(pk=closed.pk).assignee == agent


def test_status_is_not_editable_in_the_form(staff_client):
    conversation = conversation_in("new")
    url = reverse("admin:conversations_conversation_change", args=[conversation.pk])
    data = _change_form_data(conversation, []) | {"status": "closed"}
    staff_client.post(url, data)
    assert Conversation.objects.get(pk=conversation.pk).status == "new"


def test_admin_creates_contacts_through_the_service(staff_client, staff):
    url = reverse("admin:conversations_contact_add")
    response = staff_client.post(
        url,
        {
            "channel": "email",
            "external_id": "zoe@example.com",
            "name": "Zoe",
            "attributes": "{}",
            "conversations-TOTAL_FORMS": "0",
            "conversations-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    contact = Contact.objects.get(external_id="zoe@example.com")
    conversation = contact.conversations.get()
    assert conversation.status == "not_contacted"
    change = conversation.status_changes.get()
    assert (change.source, change.actor) == ("admin", staff)


def test_admin_refuses_duplicate_contact_with_a_form_error(staff_client):
    conversation_in("new")  # creates one contact on web
    existing = Contact.objects.get()
    response = staff_client.post(
        reverse("admin:conversations_contact_add"),
        {
            "channel": existing.channel,
            "external_id": existing.external_id,
            "name": "Dup",
            "attributes": "{}",
            "conversations-TOTAL_FORMS": "0",
            "conversations-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert Contact.objects.count() == 1


def test_contact_page_lists_history_newest_first(staff_client):
    closed = conversation_in("closed")
    contact = closed.contact
    from conversations import services

    newer = services.message_receive(
        channel=contact.channel, external_id=contact.external_id, text="again"
    ).conversation
    response = staff_client.get(reverse("admin:conversations_contact_change", args=[contact.pk]))
    html = response.content.decode()
    assert html.index(f">#{newer.pk}<") < html.index(f">#{closed.pk}<")


def test_deleting_a_locked_tag_is_refused_in_admin(staff_client):
    tag = TagFactory(name="vip")
    conversation_in("closed", tags=[tag])
    url = reverse("admin:conversations_tag_delete", args=[tag.pk])
    response = staff_client.post(url, {"post": "yes"})
    assert response.status_code == 200
    assert "locked on closed conversation" in response.content.decode()
    assert Tag.objects.filter(pk=tag.pk).exists()


def test_read_only_models(staff_client):
    conversation_in("in_progress")
    for name in ("message", "statuschange"):
        assert (
            staff_client.get(reverse(f"admin:conversations_{name}_changelist")).status_code == 200
        )
        assert staff_client.get(reverse(f"admin:conversations_{name}_add")).status_code == 403
