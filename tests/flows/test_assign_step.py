"""The flow *assign* step (PRODUCT.md §7): to a chosen agent, or to the least-loaded
available one; away agents are skipped; with nobody available, a hand-off to New."""

import pytest
from django.urls import reverse
from django.utils import timezone

from conversations import services as core
from conversations.availability import least_loaded_agent, set_away
from conversations.models import Conversation
from conversations.reads import mark_read, unread_column
from conversations.transitions import Event, Status
from flows import broadcasts, engine
from flows.models import FlowRun, FlowStep, Segment
from tests.factories import ContactFactory, UserFactory, conversation_in

from .conftest import make_flow

pytestmark = pytest.mark.django_db


def _unread(agent, conversation) -> int:
    return Conversation.objects.annotate(u=unread_column(agent.pk)).get(pk=conversation.pk).u


def _load(agent, count: int) -> None:
    for _ in range(count):
        conversation_in(Status.IN_PROGRESS, agent=agent)


def test_assigns_the_chosen_agent_in_progress_and_unread_for_them():
    chosen = UserFactory()
    flow = make_flow(("ask", "Your first name?", "name"), ("assign", chosen))
    conversation = conversation_in(Status.NOT_CONTACTED)
    engine.flow_start(flow=flow, conversation=conversation)
    contact = conversation.contact
    mark_read(agent=chosen, conversation_id=conversation.pk, upto=timezone.now())
    core.message_receive(channel=contact.channel, external_id=contact.external_id, text="Eve")

    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee) == (Status.IN_PROGRESS, chosen)
    assert conversation.waiting_since is None
    assert _unread(chosen, conversation) == 1
    run = FlowRun.objects.get()
    assert (run.state, run.outcome) == ("finished", "assign")
    assert chosen.get_full_name() in run.outcome_detail
    assert conversation.status_changes.filter(event=Event.FLOW_ASSIGN).exists()


def test_least_loaded_available_agent_with_deterministic_ties():
    busy, free, away, also_free = UserFactory(), UserFactory(), UserFactory(), UserFactory()
    _load(busy, 2)
    _load(also_free, 1)
    set_away(user=away, away=True)
    assert least_loaded_agent() == free  # away (0 open) skipped; free beats also_free
    _load(free, 1)
    assert least_loaded_agent() == free  # 1 each: the older account
    # Closed ones are no load.
    for conversation in Conversation.objects.filter(assignee=busy):
        core.conversation_close(conversation=conversation)
    assert least_loaded_agent() == busy

    flow = make_flow(("assign",))
    conversation = conversation_in(Status.NOT_CONTACTED)
    engine.flow_start(flow=flow, conversation=conversation)
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee) == (Status.IN_PROGRESS, busy)


def test_with_everyone_away_it_is_handed_off_unassigned_and_says_why():
    agent = UserFactory()
    set_away(user=agent, away=True)
    flow = make_flow(("assign",))
    conversation = conversation_in(Status.NOT_CONTACTED)
    run = engine.flow_start(flow=flow, conversation=conversation)
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee) == (Status.NEW, None)
    assert conversation.waiting_since is not None  # handed to the queue: waiting now
    assert (run.outcome, run.outcome_detail) == (
        "hand_off",
        "No agent is available (everyone is away): handed off to the queue.",
    )
    line = conversation.status_changes.order_by("-id").first()
    assert line.event == Event.FLOW_HAND_OFF and "No agent is available" in line.note


def test_a_broadcast_with_an_assign_step_spreads_the_load():
    first, second = UserFactory(), UserFactory()
    flow = make_flow(("send_message", "Hello!"), ("assign",))
    for _ in range(4):
        ContactFactory()
    broadcast = broadcasts.broadcast_create(flow=flow, segment=Segment.ALL, enqueue=False)
    broadcasts.broadcast_execute(broadcast_id=broadcast.pk)
    counts = sorted(
        Conversation.objects.filter(status=Status.IN_PROGRESS).values_list("assignee", flat=True)
    )
    assert counts == sorted([first.pk, first.pk, second.pk, second.pk])


def test_the_admin_edits_an_assign_step(staff_client):
    agent = UserFactory()
    data = {
        "name": "Route",
        "description": "",
        "trigger_keyword": "",
        "is_active": "on",
        "steps-TOTAL_FORMS": "2",
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
        "steps-0-position": "10",
        "steps-0-kind": "assign",
        "steps-0-agent": str(agent.pk),
        "steps-1-position": "20",
        "steps-1-kind": "hand_off",
        "steps-1-agent": str(agent.pk),
    }
    response = staff_client.post(reverse("admin:flows_flow_add"), data)
    assert response.status_code == 200
    assert "Only an assign step names an agent." in response.content.decode()
    data["steps-1-agent"] = ""
    response = staff_client.post(reverse("admin:flows_flow_add"), data)
    assert response.status_code == 302
    assert FlowStep.objects.get(kind="assign").agent == agent


def test_the_top_bar_switch_makes_an_agent_away_and_back(agent_client, agent):
    page = agent_client.get("/inbox/")
    assert 'aria-pressed="false"' in page.text and ">Available" in page.text
    response = agent_client.post(
        "/inbox/availability/", {"away": "yes", "next": "/inbox/?status=new"}
    )
    assert response.status_code == 302 and response["Location"] == "/inbox/?status=new"
    page = agent_client.get("/inbox/")
    assert 'aria-pressed="true"' in page.text and ">Away" in page.text
    assert least_loaded_agent() is None
    response = agent_client.post(
        "/inbox/availability/", {"away": "no", "next": "https://evil.example/"}
    )
    assert response["Location"] == "/inbox/"
    assert least_loaded_agent() == agent
    assert 'aria-pressed="false"' in agent_client.get("/flows/").text
