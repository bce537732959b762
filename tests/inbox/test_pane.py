"""The conversation pane: full page and partial, the buttons the transition table
allows, every action and its refusal, tags locked on close, assignment, escaping,
and the query budget."""

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations import services
from conversations.models import Direction, Message, SenderKind, StatusChange
from conversations.transitions import Event, Status, allowed
from flows.models import Flow
from tests.factories import ContactFactory, TagFactory, UserFactory, conversation_in

from .conftest import hx, receive, refresh

pytestmark = pytest.mark.django_db

PANE = hx(target="conversation-pane")


def pane_url(conversation, action: str = "") -> str:
    return f"/inbox/c/{conversation.pk}/" + (f"{action}/" if action else "")


def notice(response) -> str:
    found = re.search(r'<p class="notice notice-(\w+)"[^>]*>(.*?)</p>', response.text, re.S)
    return f"{found.group(1)}: {found.group(2).strip()}" if found else ""


def trigger(response) -> dict:
    return json.loads(response["HX-Trigger"])


# --- showing it -------------------------------------------------------------------------


def test_full_page_shows_the_inbox_with_the_pane_open(agent_client, agent):
    conversation = conversation_in(Status.IN_PROGRESS, agent=agent)
    response = agent_client.get(pane_url(conversation) + "?status=in_progress")

    assert response.status_code == 200
    assert "<html" in response.text
    assert f'data-conversation="{conversation.pk}"' in response.text
    assert 'id="conversation-list"' in response.text  # the list, filtered as the URL says
    assert [tab["key"] for tab in response.context["tabs"] if tab["active"]] == ["in_progress"]
    assert conversation.contact.display_name in response.text
    assert f'href="/contacts/{conversation.contact.pk}/"' in response.text


def test_htmx_gets_just_the_pane(agent_client, agent):
    conversation = conversation_in(Status.NEW)
    response = agent_client.get(pane_url(conversation), headers=PANE)
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="conversation-pane"')
    assert "<html" not in response.text
    assert 'id="conversation-list"' not in response.text


def test_timeline_shows_messages_and_status_events_in_order(agent_client, agent):
    conversation = conversation_in(Status.IN_PROGRESS, agent=agent, text="First question")
    receive(conversation, "Second question")
    response = agent_client.get(pane_url(conversation), headers=PANE)
    text = response.text
    order = [
        text.index("Contact created"),
        text.index("First question"),
        text.index("Agent replied"),
        text.index("Happy to help!"),
        text.index("Second question"),
    ]
    assert order == sorted(order)
    assert "New → In progress" in text
    assert 'class="msg msg-inbound msg-contact"' in text
    assert 'class="msg msg-outbound msg-agent"' in text


def test_message_text_is_escaped(agent_client):
    conversation = conversation_in(Status.NEW, text='<img src=x onerror="alert(1)">')
    response = agent_client.get(pane_url(conversation), headers=PANE)
    assert "<img src=x" not in response.text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in response.text


def test_missing_conversation(agent_client):
    assert agent_client.get("/inbox/c/999999/").status_code == 404
    assert agent_client.get("/inbox/c/99999999999999999999/").status_code == 404
    response = agent_client.get("/inbox/c/999999/", headers=PANE)
    assert response.status_code == 200  # htmx swaps the explanation in
    assert "That conversation no longer exists" in response.text


@pytest.mark.parametrize(
    ("status", "archived"),
    [
        (Status.NOT_CONTACTED, False),
        (Status.NEW, False),
        (Status.IN_PROGRESS, False),
        (Status.IN_FLOW, False),
        (Status.CLOSED, False),
        (Status.CLOSED, True),
    ],
)
def test_buttons_follow_the_transition_table(agent_client, agent, status, archived):
    conversation = conversation_in(status, agent=agent, archived=archived)
    text = agent_client.get(pane_url(conversation), headers=PANE).text

    for action, event in (
        ("close", Event.CLOSE),
        ("archive", Event.ARCHIVE),
        ("unarchive", Event.UNARCHIVE),
        ("reply", Event.AGENT_REPLY),
    ):
        shown = f'hx-post="/inbox/c/{conversation.pk}/{action}/"' in text
        assert shown == allowed(event, status, archived), action
    closed = status == Status.CLOSED
    assert ("Tags are locked: the conversation is closed." in text) == closed
    assert (f'hx-post="/inbox/c/{conversation.pk}/tags/add/"' in text) == (not closed)
    assert (f'hx-post="/inbox/c/{conversation.pk}/assign/"' in text) == (not closed)
    assert ("This conversation is closed and read-only." in text) == closed


def test_the_pane_refreshes_itself_on_changes_from_elsewhere(agent_client):
    conversation = conversation_in(Status.NEW)
    text = agent_client.get(pane_url(conversation), headers=PANE).text
    # static/js/inbox.js turns conversationChanged (unless the pane sent it) into
    # paneRefresh: an hx-trigger filter would need eval, which the CSP forbids.
    assert 'hx-trigger="paneRefresh from:body"' in text


# --- actions ----------------------------------------------------------------------------


def test_reply_moves_it_to_in_progress_and_clears_the_box(agent_client, agent):
    conversation = conversation_in(Status.NEW)
    response = agent_client.post(
        pane_url(conversation, "reply"), {"text": "  On it!  "}, headers=PANE
    )

    assert response.status_code == 200
    conversation = refresh(conversation)
    assert conversation.status == Status.IN_PROGRESS
    assert conversation.assignee == agent
    message = conversation.messages.last()
    assert (message.text, message.direction, message.author) == ("On it!", "outbound", agent)
    assert "On it!" in response.text
    assert 'class="badge badge-in-progress"' in response.text
    # The box is cleared (not preserved) and the list and tabs are told to refresh.
    assert re.search(r'<textarea[^>]*id="reply-text[^>]*hx-preserve', response.text) is None
    assert trigger(response)["conversationChanged"] == {"id": conversation.pk, "pane": True}


def test_reply_takes_over_from_a_flow(agent_client):
    conversation = conversation_in(Status.IN_FLOW)
    text = agent_client.get(pane_url(conversation), headers=PANE).text
    assert "Replying takes over from the running flow." in text
    agent_client.post(pane_url(conversation, "reply"), {"text": "Human here"}, headers=PANE)
    assert refresh(conversation).status == Status.IN_PROGRESS


@pytest.mark.parametrize(
    ("text", "error"), [("   ", "Reply must not be empty."), ("x" * 10_001, "Reply is too long")]
)
def test_bad_reply_is_refused_and_keeps_the_draft(agent_client, text, error):
    conversation = conversation_in(Status.NEW)
    response = agent_client.post(pane_url(conversation, "reply"), {"text": text}, headers=PANE)
    assert response.status_code == 200
    assert error in notice(response)
    assert notice(response).startswith("error")
    assert re.search(r'<textarea[^>]*id="reply-text[^>]*hx-preserve', response.text)
    assert refresh(conversation).status == Status.NEW
    assert conversation.messages.filter(direction=Direction.OUTBOUND).count() == 0


def test_reply_to_a_conversation_closed_a_second_ago_is_refused(agent_client, other_agent):
    conversation = conversation_in(Status.NEW)
    services.conversation_close(conversation=conversation, actor=other_agent)  # someone else

    response = agent_client.post(pane_url(conversation, "reply"), {"text": "Hello?"}, headers=PANE)
    assert response.status_code == 200
    assert "closed conversations are read-only" in notice(response)
    assert 'class="badge badge-closed"' in response.text  # the true state
    assert "This conversation is closed and read-only." in response.text
    assert not Message.objects.filter(conversation=conversation, sender_kind=SenderKind.AGENT)
    assert "conversationChanged" in trigger(response)


def test_close_then_archive_then_unarchive(agent_client, agent):
    billing = TagFactory(name="billing")
    conversation = conversation_in(Status.IN_PROGRESS, agent=agent, tags=[billing])

    response = agent_client.post(pane_url(conversation, "close"), headers=PANE)
    assert response.status_code == 200
    assert refresh(conversation).status == Status.CLOSED
    assert notice(response).startswith("success: Closed.")
    assert "Tags are locked: the conversation is closed." in response.text
    assert 'aria-label="Remove tag billing"' not in response.text
    assert f'hx-post="/inbox/c/{conversation.pk}/archive/"' in response.text
    assert f'hx-post="/inbox/c/{conversation.pk}/close/"' not in response.text
    change = StatusChange.objects.filter(conversation=conversation).last()
    assert (change.event, change.actor) == (Event.CLOSE, agent)

    response = agent_client.post(pane_url(conversation, "archive"), headers=PANE)
    assert refresh(conversation).is_archived
    assert notice(response).startswith("success: Archived.")
    assert f'hx-post="/inbox/c/{conversation.pk}/unarchive/"' in response.text

    response = agent_client.post(pane_url(conversation, "unarchive"), headers=PANE)
    assert not refresh(conversation).is_archived
    assert notice(response).startswith("success: Unarchived.")


@pytest.mark.parametrize(
    ("status", "archived", "action", "message"),
    [
        (Status.CLOSED, False, "close", "closed conversations are read-only"),
        (Status.NEW, False, "archive", "Only closed conversations can be archived"),
        (Status.CLOSED, True, "archive", "already archived"),
        (Status.CLOSED, False, "unarchive", "not archived"),
        (Status.IN_PROGRESS, False, "unarchive", "not archived"),
    ],
)
def test_refused_actions_show_the_reason_and_the_true_state(
    agent_client, agent, status, archived, action, message
):
    conversation = conversation_in(status, agent=agent, archived=archived)
    before = (conversation.status, conversation.archived_at, conversation.updated_at)

    response = agent_client.post(pane_url(conversation, action), headers=PANE)

    assert response.status_code == 200
    assert notice(response).startswith("error:")
    assert message in notice(response)
    after = refresh(conversation)
    assert (after.status, after.archived_at, after.updated_at) == before
    assert f'data-conversation="{conversation.pk}"' in response.text


def test_tags_add_and_remove_while_open(agent_client):
    conversation = conversation_in(Status.NEW)
    TagFactory(name="Billing", colour="#b45309")

    response = agent_client.post(
        pane_url(conversation, "tags/add"), {"name": "billing"}, headers=PANE
    )
    assert list(refresh(conversation).tags.values_list("name", flat=True)) == ["Billing"]
    assert notice(response) == "success: Tag “Billing” added."
    assert 'style="--tag: #b45309"' in response.text
    again = agent_client.post(pane_url(conversation, "tags/add"), {"name": "BILLING"}, headers=PANE)
    assert notice(again) == "success: Tag “Billing” is already on it."

    response = agent_client.post(
        pane_url(conversation, "tags/add"), {"name": "new-one"}, headers=PANE
    )
    assert sorted(refresh(conversation).tags.values_list("name", flat=True)) == [
        "Billing",
        "new-one",
    ]

    response = agent_client.post(
        pane_url(conversation, "tags/remove"), {"name": "Billing"}, headers=PANE
    )
    assert list(refresh(conversation).tags.values_list("name", flat=True)) == ["new-one"]
    assert notice(response) == "success: Tag “Billing” removed."

    response = agent_client.post(pane_url(conversation, "tags/add"), {"name": "  "}, headers=PANE)
    assert notice(response) == "error: Tag name must not be empty."


def test_tags_are_locked_once_closed(agent_client, other_agent):
    vip = TagFactory(name="vip")
    conversation = conversation_in(Status.NEW, tags=[vip])
    services.conversation_close(conversation=conversation, actor=other_agent)

    for action, name in (("tags/add", "other"), ("tags/remove", "vip")):
        response = agent_client.post(pane_url(conversation, action), {"name": name}, headers=PANE)
        assert response.status_code == 200
        assert notice(response).startswith("error: Tags are locked")
    assert list(refresh(conversation).tags.values_list("name", flat=True)) == ["vip"]


def test_assign_unassign_and_refusals(agent_client, agent, other_agent):
    conversation = conversation_in(Status.NEW)

    response = agent_client.post(
        pane_url(conversation, "assign"), {"assignee": other_agent.pk}, headers=PANE
    )
    assert refresh(conversation).assignee == other_agent
    assert notice(response) == "success: Assigned to Bob."

    response = agent_client.post(
        pane_url(conversation, "assign"), {"assignee": agent.pk}, headers=PANE
    )
    assert notice(response) == "success: Assigned to you."

    response = agent_client.post(pane_url(conversation, "assign"), {"assignee": ""}, headers=PANE)
    assert refresh(conversation).assignee is None
    assert notice(response) == "success: Unassigned."

    inactive = UserFactory(is_active=False)
    for value in (inactive.pk, 999999, "abc"):
        response = agent_client.post(
            pane_url(conversation, "assign"), {"assignee": value}, headers=PANE
        )
        assert notice(response) == "error: Choose an active agent from the list."
    assert refresh(conversation).assignee is None

    services.conversation_close(conversation=conversation)
    response = agent_client.post(
        pane_url(conversation, "assign"), {"assignee": agent.pk}, headers=PANE
    )
    assert notice(response).startswith("error: Cannot assign: the conversation is closed")


def test_actions_on_a_missing_conversation_are_404(agent_client):
    for action in ("reply", "close", "archive", "unarchive", "assign", "tags/add"):
        assert agent_client.post(f"/inbox/c/999999/{action}/", headers=PANE).status_code == 404


def test_without_htmx_an_action_redirects_to_the_pane_with_a_message(agent_client):
    conversation = conversation_in(Status.NEW)
    response = agent_client.post(pane_url(conversation, "close") + "?status=new", follow=True)
    assert response.redirect_chain == [(pane_url(conversation) + "?status=new", 302)]
    assert refresh(conversation).status == Status.CLOSED
    assert "Closed. The conversation is now read-only" in response.text

    response = agent_client.post(pane_url(conversation, "close"), follow=True)
    assert "closed conversations are read-only" in response.text


def test_messages_recorded_by_another_request_show_in_the_pane(agent_client):
    """How the flows app's start-flow form reports back: its view records a message
    and fires conversationChanged; the pane refreshes itself and shows the message."""
    conversation = conversation_in(Status.NEW)
    agent_client.post(pane_url(conversation, "close"))  # records a message, no htmx
    text = agent_client.get(pane_url(conversation), headers=PANE).text
    assert "Closed. The conversation is now read-only" in text
    # Shown once.
    text = agent_client.get(pane_url(conversation), headers=PANE).text
    assert "Closed. The conversation is now read-only" not in text


@pytest.mark.parametrize(
    "action",
    ["reply", "close", "archive", "unarchive", "assign", "tags/add", "tags/remove"],
)
def test_actions_need_post(agent_client, action):
    conversation = conversation_in(Status.NEW)
    assert agent_client.get(pane_url(conversation, action)).status_code == 405


# --- query budget -------------------------------------------------------------------------


def _pane_queries(client, conversation) -> int:
    client.get(pane_url(conversation), headers=PANE)  # the choices memory warm
    with CaptureQueriesContext(connection) as queries:
        response = client.get(pane_url(conversation), headers=PANE)
    assert response.status_code == 200
    return len(queries)


def test_pane_queries_do_not_grow_with_the_messages(agent_client, agent, other_agent):
    Flow.objects.create(name="Welcome", is_active=True)
    one = conversation_in(Status.NEW, tags=[TagFactory(name="vip")])
    assert one.messages.count() == 1
    many = conversation_in(Status.NEW, contact=ContactFactory(), tags=[TagFactory(name="vip")])
    for index in range(24):
        services.conversation_reply(
            conversation=many, agent=agent if index % 2 else other_agent, text=f"Answer {index}"
        )
        receive(many, f"Question {index}")
    services.message_send_automated(conversation=many, text="From a flow")
    assert many.messages.count() == 50

    assert _pane_queries(agent_client, one) == _pane_queries(agent_client, many)
    # the session with its user (one query: inbox.sessions), the conversation (its
    # tags' ids a column), the newest messages, the newest status changes and
    # activities (assignments, tags, notes) in one; agents, tags and the flows to start
    # from memory
    assert _pane_queries(agent_client, many) == 4
    assert "Start flow" in agent_client.get(pane_url(many), headers=PANE).text
