"""Bulk actions: each row goes through the service; the answer counts successes and
names each refusal with its reason; "all matching the filter" re-runs the filter."""

import json
import re

import pytest

from conversations import services
from conversations.models import Conversation
from conversations.transitions import Status
from tests.factories import ContactFactory, TagFactory, UserFactory, conversation_in

from .conftest import hx, refresh

pytestmark = pytest.mark.django_db

BULK = hx(target="bulk-result")


def result(response) -> str:
    found = re.search(
        r'<p class="notice notice-(\w+)"[^>]*>\s*(.*?)\s*<button', response.text, re.S
    )
    return f"{found.group(1)}: {found.group(2)}"


def post(client, **data):
    return client.post("/inbox/bulk/", data, headers=BULK)


def test_bulk_close_of_selected_rows(agent_client, agent):
    rows = [conversation_in(Status.NEW) for _ in range(3)]
    untouched = conversation_in(Status.NEW)

    response = post(agent_client, action="close", ids=[c.pk for c in rows])

    assert response.status_code == 200
    assert result(response) == "success: 3 closed."
    assert all(refresh(c).status == Status.CLOSED for c in rows)
    assert refresh(untouched).status == Status.NEW
    assert {refresh(c).closed_by for c in rows} == {agent}
    events = json.loads(response["HX-Trigger"])
    assert "conversationChanged" in events
    assert "bulkDone" not in events  # #15: the selection is kept after an action


def test_refused_rows_are_named_with_their_reason(agent_client):
    open_one = conversation_in(Status.NEW)
    closed = conversation_in(Status.CLOSED)

    response = post(agent_client, action="close", ids=[open_one.pk, closed.pk, 999999])

    # #15: grouped by reason.
    assert result(response) == (
        f"warning: 1 closed; 1 not closed: it is Closed (#{closed.pk}); "
        "1 not closed: it does not exist (#999999)."
    )
    assert refresh(open_one).status == Status.CLOSED


def test_all_refused_is_an_error_but_still_refreshes_the_list(agent_client):
    conversation = conversation_in(Status.NEW)
    response = post(agent_client, action="archive", ids=[conversation.pk])
    assert result(response) == (
        f"error: 0 archived; 1 not archived: it is New (#{conversation.pk})."
    )
    events = json.loads(response["HX-Trigger"])
    assert "conversationChanged" in events


def test_bulk_archive(agent_client):
    rows = [conversation_in(Status.CLOSED) for _ in range(2)]
    response = post(agent_client, action="archive", ids=[c.pk for c in rows])
    assert result(response) == "success: 2 archived."
    assert all(refresh(c).is_archived for c in rows)


def test_bulk_assign(agent_client, agent, other_agent):
    rows = [conversation_in(Status.NEW) for _ in range(2)]
    closed = conversation_in(Status.CLOSED)
    ids = [c.pk for c in rows]

    response = post(agent_client, action="assign", assignee="me", ids=ids)
    assert result(response) == "success: 2 assigned to Alice."
    assert {refresh(c).assignee for c in rows} == {agent}

    response = post(agent_client, action="assign", assignee=other_agent.pk, ids=[*ids, closed.pk])
    assert result(response) == (
        f"warning: 2 assigned to Bob; 1 not assigned to Bob: it is Closed (#{closed.pk})."
    )
    assert {refresh(c).assignee for c in rows} == {other_agent}

    response = post(agent_client, action="assign", assignee="none", ids=ids)
    assert result(response) == "success: 2 unassigned."
    assert {refresh(c).assignee for c in rows} == {None}

    inactive = UserFactory(is_active=False)
    response = post(agent_client, action="assign", assignee=inactive.pk, ids=ids)
    assert result(response) == "error: Choose an active agent from the list."
    assert {refresh(c).assignee for c in rows} == {None}


def test_bulk_tag(agent_client):
    TagFactory(name="vip")
    open_one = conversation_in(Status.IN_PROGRESS)
    closed = conversation_in(Status.CLOSED)

    response = post(agent_client, action="tag", tag="VIP", ids=[open_one.pk, closed.pk])

    assert result(response).startswith(
        "warning: 1 tagged “VIP”; 1 not tagged “VIP”: Tags are locked"
    )
    assert list(refresh(open_one).tags.values_list("name", flat=True)) == ["vip"]
    assert not refresh(closed).tags.exists()

    response = post(agent_client, action="tag", tag="   ", ids=[open_one.pk])
    assert result(response) == "error: Type the tag to add."


def test_all_matching_the_filter(agent_client):
    on_whatsapp = [
        conversation_in(Status.NEW, contact=ContactFactory(channel="whatsapp")) for _ in range(3)
    ]
    elsewhere = conversation_in(Status.NEW)
    archived = conversation_in(
        Status.CLOSED, contact=ContactFactory(channel="whatsapp"), archived=True
    )

    response = post(
        agent_client, action="close", scope="all", filters="channel=whatsapp&status=new"
    )

    assert result(response) == "success: 3 closed."
    assert all(refresh(c).status == Status.CLOSED for c in on_whatsapp)
    assert refresh(elsewhere).status == Status.NEW
    assert refresh(archived).is_archived


def test_all_matching_refuses_a_bad_filter_and_an_empty_one(agent_client):
    conversation = conversation_in(Status.NEW)
    response = post(agent_client, action="close", scope="all", filters="archived=maybe")
    assert result(response).startswith("error: The filter is not valid: Archived:")
    response = post(agent_client, action="close", scope="all", filters="q=nobody-matches-this")
    assert result(response) == "error: No conversations match the filter."
    assert refresh(conversation).status == Status.NEW


def test_all_matching_refuses_more_than_the_limit_and_changes_nothing(agent_client, monkeypatch):
    monkeypatch.setattr("inbox.views.BULK_LIMIT", 2)
    rows = [conversation_in(Status.NEW) for _ in range(3)]
    response = post(agent_client, action="close", scope="all", filters="")
    assert result(response).startswith("error: More than 2 conversations match the filter")
    assert {refresh(c).status for c in rows} == {Status.NEW}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "close"}, "Select at least one conversation"),
        ({"action": "close", "ids": ["x"]}, "Select conversations from the list."),
        ({"action": "explode", "ids": ["1"]}, "Choose an action from the bar."),
        ({"ids": ["1"]}, "Choose an action."),
    ],
)
def test_bad_bulk_requests_change_nothing(agent_client, data, message):
    conversation = conversation_in(Status.NEW)
    response = agent_client.post("/inbox/bulk/", data, headers=BULK)
    assert response.status_code == 200
    assert message in result(response)
    assert "HX-Trigger" not in response
    assert refresh(conversation).status == Status.NEW


def test_without_htmx_bulk_redirects_to_the_filtered_list_with_the_result(agent_client):
    rows = [conversation_in(Status.NEW) for _ in range(2)]
    response = agent_client.post(
        "/inbox/bulk/",
        {"action": "close", "ids": [c.pk for c in rows], "filters": "status=new&archived=no"},
        follow=True,
    )
    assert response.redirect_chain == [("/inbox/?status=new", 302)]
    assert "2 closed." in response.text


def test_each_row_is_its_own_transaction(agent_client, monkeypatch):
    """A refusal half-way does not undo the rows before it."""
    first, second = conversation_in(Status.NEW), conversation_in(Status.NEW)
    services.conversation_close(conversation=second)
    response = post(agent_client, action="close", ids=[first.pk, second.pk])
    assert result(response).startswith("warning: 1 closed; 1 not closed: it is Closed")
    assert Conversation.objects.get(pk=first.pk).status == Status.CLOSED


def test_refusals_are_grouped_by_reason(agent_client, monkeypatch):
    from inbox import views

    monkeypatch.setattr(views, "SHOW_REFUSALS", 2)
    in_flow = [conversation_in(Status.IN_FLOW) for _ in range(3)]
    new = conversation_in(Status.NEW)
    closed = conversation_in(Status.CLOSED)
    ids = [c.pk for c in [*in_flow, new, closed]]
    response = post(agent_client, action="archive", ids=ids)
    flow_ids = sorted(c.pk for c in in_flow)
    assert result(response) == (
        f"warning: 1 archived; 3 not archived: they are In a flow "
        f"(#{flow_ids[0]}, #{flow_ids[1]} and 1 more); 1 not archived: it is New (#{new.pk})."
    )
