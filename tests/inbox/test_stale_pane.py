"""Two agents, one conversation: an assignment from a pane that no longer shows the
conversation as it is is refused and says who changed it; a reply typed while
someone else closed the conversation is refused and kept."""

import html

import pytest

from conversations import services
from conversations.transitions import Status
from tests.factories import UserFactory, conversation_in

from .conftest import hx, refresh
from .test_pane import notice, pane_url

pytestmark = pytest.mark.django_db
PANE = hx(target="conversation-pane")


@pytest.fixture
def bob(db):
    return UserFactory(username="bob", first_name="Bob", last_name="")


def test_an_assignment_from_a_stale_pane_is_refused_with_who(agent_client, agent, bob):
    carol = UserFactory(username="carol", first_name="Carol", last_name="")
    conversation = conversation_in(Status.NEW)
    # Alice's pane shows it unassigned; meanwhile Bob takes it.
    services.conversation_assign(conversation=conversation.pk, assignee=bob, actor=bob)

    response = agent_client.post(
        pane_url(conversation, "assign"), {"assignee": carol.pk, "assignee_was": ""}, headers=PANE
    )
    assert response.status_code == 200
    text = html.unescape(notice(response))
    assert text.startswith("error: Changed a moment ago by Bob")
    assert "it is now assigned to Bob" in text
    assert refresh(conversation).assignee == bob  # not silently overwritten
    # The refused pane shows the truth, and carries it for the next try.
    assert f'name="assignee_was" value="{bob.pk}"' in response.text


def test_an_assignment_from_a_fresh_pane_goes_through(agent_client, agent, bob):
    conversation = conversation_in(Status.NEW)
    services.conversation_assign(conversation=conversation.pk, assignee=bob, actor=bob)
    response = agent_client.post(
        pane_url(conversation, "assign"),
        {"assignee": agent.pk, "assignee_was": bob.pk},
        headers=PANE,
    )
    assert notice(response).startswith("success: Assigned to you.")
    assert refresh(conversation).assignee == agent


def test_a_form_without_the_version_is_not_checked(agent_client, agent, bob):
    conversation = conversation_in(Status.NEW)
    services.conversation_assign(conversation=conversation.pk, assignee=bob, actor=bob)
    agent_client.post(pane_url(conversation, "assign"), {"assignee": agent.pk}, headers=PANE)
    assert refresh(conversation).assignee == agent


def test_a_garbage_version_is_a_refusal_not_an_error(agent_client, agent, bob):
    conversation = conversation_in(Status.NEW)
    services.conversation_assign(conversation=conversation.pk, assignee=bob, actor=bob)
    response = agent_client.post(
        pane_url(conversation, "assign"), {"assignee": agent.pk, "assignee_was": "x'"}, headers=PANE
    )
    assert response.status_code == 200
    assert notice(response).startswith("error: Changed a moment ago")


def test_a_reply_refused_by_a_close_meanwhile_is_kept_in_the_box(agent_client, agent, bob):
    conversation = conversation_in(Status.NEW)
    services.conversation_close(conversation=conversation, actor=bob)
    draft = "Half of my <careful> answer"
    response = agent_client.post(pane_url(conversation, "reply"), {"text": draft}, headers=PANE)
    assert response.status_code == 200
    assert notice(response).startswith("error: Closed a moment ago by Bob.")
    assert '<div class="kept-draft" id="kept-draft">' in response.text  # shown
    assert "Half of my &lt;careful&gt; answer</textarea>" in response.text  # escaped


def test_a_closed_pane_has_the_kept_draft_box_hidden(agent_client, agent, bob):
    conversation = conversation_in(Status.NEW)
    services.conversation_close(conversation=conversation, actor=bob)
    response = agent_client.get(pane_url(conversation), headers=PANE)
    assert '<div class="kept-draft" id="kept-draft" hidden>' in response.text
