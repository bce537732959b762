"""The demo: seed_demo_flows is idempotent and the welcome flow works end to end."""

import pytest
from django.core.management import call_command

from conversations import services as core
from conversations.models import Conversation, Message, SenderKind
from conversations.transitions import Status
from flows.models import Broadcast, BroadcastState, Flow, FlowRun, FlowStep

pytestmark = pytest.mark.django_db


def test_seed_demo_flows_is_idempotent_after_seed_demo():
    call_command("seed_demo", verbosity=0)
    call_command("seed_demo_flows", verbosity=0)
    flows, steps = Flow.objects.count(), FlowStep.objects.count()
    messages = Message.objects.count()
    broadcast = Broadcast.objects.get()
    assert broadcast.state == BroadcastState.DONE
    assert broadcast.sent > 0
    assert broadcast.sent + broadcast.skipped + broadcast.failed == broadcast.total

    in_flow = Conversation.objects.filter(status=Status.IN_FLOW)
    assert in_flow.exists()
    # Every demo conversation in a flow runs a flow that exists (no "Onboarding").
    for conversation in in_flow:
        run = conversation.flow_runs.get(state="waiting")
        notes = {line.note for line in conversation.status_changes.all()}
        assert notes <= {"", f"Flow “{run.flow.name}”"}, notes
    assert FlowRun.objects.filter(flow__name="Welcome", state="waiting").exists()
    assert Conversation.objects.snoozed().exists()  # the Snoozed view has something to show
    messages = Message.objects.count()

    call_command("seed_demo_flows", verbosity=0)

    assert (Flow.objects.count(), FlowStep.objects.count()) == (flows, steps) == (2, 8)
    assert Broadcast.objects.count() == 1
    assert Message.objects.count() == messages


def test_writing_hi_runs_the_welcome_flow_and_ends_in_new():
    call_command("seed_demo_flows", verbosity=0)

    inbound = core.message_receive(channel="web", external_id="demo-visitor", text="Hi")
    conversation = inbound.conversation
    conversation.refresh_from_db()
    assert conversation.status == Status.IN_FLOW
    assert list(
        conversation.messages.filter(sender_kind=SenderKind.FLOW).values_list("text", flat=True)
    ) == ["Hi! Welcome to Parley support.", "What's your first name?"]

    core.message_receive(channel="web", external_id="demo-visitor", text="42")
    assert conversation.messages.filter(
        text="Sorry, I didn't catch your name. Please write just your first name."
    ).exists()
    core.message_receive(channel="web", external_id="demo-visitor", text="My name is ada!")

    conversation.refresh_from_db()
    assert conversation.status == Status.NEW  # handed off: an agent's answer is awaited
    assert conversation.contact.attributes["name"] == "Ada"
    assert list(conversation.tags.values_list("name", flat=True)) == ["welcome"]
    assert conversation.messages.filter(
        text="Thanks, Ada! An agent will be with you in a moment."
    ).exists()
    run = FlowRun.objects.get(conversation=conversation)
    assert (run.trigger, run.outcome) == ("keyword", "hand_off")
