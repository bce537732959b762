"""The flows pages: the "Start flow" form and the broadcast pages."""

import pytest
from django.test import Client
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from conversations import services
from conversations.transitions import Status
from flows import broadcasts
from flows.models import Broadcast, FlowRun, Segment
from tests.factories import ContactFactory, conversation_in, grant_broadcast

from .conftest import make_flow

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def start_url(conversation):
    return reverse("flows:start_flow", args=[conversation.pk])


def test_start_flow_refused_without_priority_on_an_ongoing_conversation(agent_client, ask_flow):
    conversation = conversation_in(Status.NEW)

    response = agent_client.post(start_url(conversation), {"flow": ask_flow.pk}, **HX)

    assert response.status_code == 200
    body = response.content.decode()
    assert 'role="alert"' in body
    assert "only interrupt an ongoing conversation when started with priority" in body
    assert "conversationChanged" in response["HX-Trigger"]
    conversation.refresh_from_db()
    assert conversation.status == Status.NEW
    assert not FlowRun.objects.exists()


def test_start_flow_with_priority_moves_it_in_a_flow(agent_client, agent, ask_flow):
    conversation = conversation_in(Status.IN_PROGRESS)

    response = agent_client.post(
        start_url(conversation), {"flow": ask_flow.pk, "has_priority": "on"}, **HX
    )

    assert response.status_code == 200
    assert "is now In a flow" in response.content.decode()
    assert response["HX-Trigger"] == (
        f'{{"conversationChanged": {{"conversation": {conversation.pk}}}}}'
    )
    conversation.refresh_from_db()
    assert conversation.status == Status.IN_FLOW
    run = FlowRun.objects.get()
    assert (run.started_by, run.trigger) == (agent, "agent")


def test_start_flow_on_closed_conversation_says_a_new_one_started(agent_client, ask_flow):
    conversation = conversation_in(Status.CLOSED)
    response = agent_client.post(start_url(conversation), {"flow": ask_flow.pk}, **HX)
    run = FlowRun.objects.get()
    assert run.conversation_id != conversation.pk
    link = f'<a href="/inbox/c/{run.conversation_id}/">#{run.conversation_id}</a>'
    assert f"on a new conversation, {link}" in response.content.decode()


def test_start_flow_on_a_closed_conversation_names_the_contacts_other_one(agent_client, ask_flow):
    closed = conversation_in(Status.CLOSED)
    contact = closed.contact
    services.message_receive(channel=contact.channel, external_id=contact.external_id, text="Hi")
    current = contact.conversations.open().get()
    response = agent_client.post(start_url(closed), {"flow": ask_flow.pk}, **HX)
    body = response.content.decode()
    assert "This conversation is closed, so the flow would start on" in body
    assert f'<a href="/inbox/c/{current.pk}/">#{current.pk}</a>, which is new' in body
    assert not FlowRun.objects.exists()


@pytest.mark.parametrize("flow_value", ["", "999999", "abc", "1 OR 1=1"])
def test_start_flow_bad_input_is_a_clear_error_and_changes_nothing(
    agent_client, ask_flow, flow_value
):
    conversation = conversation_in(Status.NOT_CONTACTED)
    response = agent_client.post(start_url(conversation), {"flow": flow_value}, **HX)
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.status == Status.NOT_CONTACTED
    assert not FlowRun.objects.exists()


def test_start_flow_inactive_flow_is_refused(agent_client):
    flow = make_flow(("send_message", "x"), is_active=False)
    conversation = conversation_in(Status.NOT_CONTACTED)
    response = agent_client.post(start_url(conversation), {"flow": flow.pk}, **HX)
    assert "does not exist or is inactive" in response.content.decode()
    assert not FlowRun.objects.exists()


def test_start_flow_unknown_conversation_is_404(agent_client, ask_flow):
    response = agent_client.post("/flows/start/999999/", {"flow": ask_flow.pk}, **HX)
    assert response.status_code == 404


def test_start_flow_from_the_pane_leaves_a_message_for_the_pane(agent_client, ask_flow):
    conversation = conversation_in(Status.NEW)
    agent_client.post(start_url(conversation), {"flow": ask_flow.pk, "origin": "pane"}, **HX)
    page = agent_client.get(start_url(conversation))  # the next page shows it once
    assert "only interrupt an ongoing conversation" in page.content.decode()


def test_start_flow_without_htmx_redirects_back_with_the_message(agent_client, ask_flow):
    conversation = conversation_in(Status.NOT_CONTACTED)
    response = agent_client.post(start_url(conversation), {"flow": ask_flow.pk}, follow=True)
    body = response.content.decode()
    assert response.redirect_chain[-1][0] == start_url(conversation)
    assert "started; the conversation is now In a flow" in body
    assert 'data-status="in_flow"' in body


def test_start_flow_page_and_status_partial(agent_client, ask_flow):
    conversation = conversation_in(Status.NOT_CONTACTED)
    page = agent_client.get(start_url(conversation))
    assert page.status_code == 200
    assert "<html" in page.content.decode()
    assert ask_flow.name in page.content.decode()
    part = agent_client.get(start_url(conversation) + "?part=status", **HX)
    assert "<html" not in part.content.decode()
    assert 'id="conversation-status"' in part.content.decode()


def test_login_required_and_csrf(client, agent, ask_flow):
    conversation = conversation_in(Status.NOT_CONTACTED)
    response = client.post(start_url(conversation), {"flow": ask_flow.pk})
    assert response.status_code == 302
    assert "/login/" in response["Location"]
    assert client.get(reverse("flows:index")).status_code == 302

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(agent)
    assert csrf_client.post(start_url(conversation), {"flow": ask_flow.pk}).status_code == 403
    assert (
        csrf_client.post(reverse("flows:broadcast_create"), {"flow": ask_flow.pk}).status_code
        == 403
    )
    conversation.refresh_from_db()
    assert conversation.status == Status.NOT_CONTACTED
    assert not Broadcast.objects.exists()


def test_output_is_escaped(agent_client):
    flow = make_flow(("send_message", "x"), name="<script>alert(1)</script>")
    conversation = conversation_in(Status.NOT_CONTACTED, contact=ContactFactory(name="<b>x</b>"))
    body = agent_client.get(start_url(conversation)).content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;" in body
    assert "<b>x</b>" not in body
    index = agent_client.get(reverse("flows:index")).content.decode()
    assert "<script>alert(1)</script>" not in index
    assert flow.name not in index and "&lt;script&gt;alert(1)&lt;/script&gt;" in index


# --- broadcasts --------------------------------------------------------------------


def test_create_broadcast_queues_it_and_shows_its_page(
    agent_client, agent, send_only_flow, django_capture_on_commit_callbacks
):
    ContactFactory()
    grant_broadcast(agent)
    with django_capture_on_commit_callbacks(execute=True):
        response = agent_client.post(
            reverse("flows:broadcast_create"), {"flow": send_only_flow.pk, "segment": "all"}
        )
    broadcast = Broadcast.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("flows:broadcast", args=[broadcast.pk])
    assert broadcast.created_by == agent
    assert broadcast.total == 1
    # Queued for the worker once the request's transaction commits.
    task = DBTaskResult.objects.get(task_path="flows.tasks.run_broadcast")
    assert task.args_kwargs["kwargs"] == {"broadcast_id": broadcast.pk}

    page = agent_client.get(response["Location"]).content.decode()
    assert 'hx-trigger="every 1s"' in page  # polls while queued/running
    assert "queued for 1 contacts" in page


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"segment": "all"}, "Choose a flow to broadcast."),
        ({"segment": "tag", "tag": ""}, "Choose a tag."),
        ({"segment": "status", "status": "nope"}, "Select a valid choice"),
        ({"segment": "channel", "channel": "Not A Slug!"}, "No contact uses that channel."),
        ({"segment": "everyone"}, "Select a valid choice"),
    ],
)
def test_create_broadcast_bad_input(agent_client, agent, send_only_flow, data, error):
    grant_broadcast(agent)
    if "segment" in data and data != {"segment": "all"}:
        data = {"flow": send_only_flow.pk, **data}
    response = agent_client.post(reverse("flows:broadcast_create"), data)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Broadcast.objects.exists()


def test_finished_broadcast_page_shows_counts_and_stops_polling(agent_client, ask_flow):
    conversation_in(Status.NEW)
    conversation_in(Status.NOT_CONTACTED)
    bad = ContactFactory(attributes={"bio": "x" * 10_001})
    flow = make_flow(("send_message", "{bio}"))
    broadcast = broadcasts.broadcast_create(flow=flow, segment=Segment.ALL)
    broadcasts.broadcast_execute(broadcast_id=broadcast.pk)

    page = agent_client.get(reverse("flows:broadcast", args=[broadcast.pk])).content.decode()
    assert "every 1s" not in page
    assert 'id="count-sent">1<' in page
    assert 'id="count-skipped">1<' in page
    assert 'id="count-failed">1<' in page
    assert 'value="100"' in page
    assert bad.display_name in page and "too long" in page

    part = agent_client.get(reverse("flows:broadcast", args=[broadcast.pk]), **HX)
    assert "<html" not in part.content.decode()
    assert 'id="progress"' in part.content.decode()


def test_unknown_broadcast_is_404(agent_client):
    assert agent_client.get("/flows/broadcasts/424242/").status_code == 404


def _index_queries(agent_client, django_assert_num_queries, n):
    for _ in range(n):
        flow = make_flow(("send_message", "x"), ("ask", "y", "z"))
        Broadcast.objects.create(flow=flow)
    agent_client.get(reverse("flows:index"))  # warm the session
    # The flows, the broadcasts, the form's tags and channels, the session with its
    # user (one query), the user's permissions (two), the top bar's away switch: none
    # per broadcast.
    with django_assert_num_queries(9) as ctx:
        response = agent_client.get(reverse("flows:index"))
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_index_has_no_n_plus_one(agent_client, django_assert_num_queries):
    assert _index_queries(agent_client, django_assert_num_queries, 1) == 9
    assert _index_queries(agent_client, django_assert_num_queries, 50) == 9


def test_htmx_request_when_logged_out_redirects_the_whole_page(client, ask_flow):
    conversation = conversation_in(Status.NOT_CONTACTED)
    response = client.post(start_url(conversation), {"flow": ask_flow.pk}, **HX)
    assert response["HX-Redirect"].startswith("/login/?next=")
    conversation.refresh_from_db()
    assert conversation.status == Status.NOT_CONTACTED
