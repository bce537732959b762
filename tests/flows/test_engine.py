"""The flow rows of the transition table (PRODUCT.md §3), through the engine."""

import pytest

from conversations import services as core
from conversations.exceptions import ConversationOngoing
from conversations.models import Conversation, Direction, Message, SenderKind, StatusChange
from conversations.transitions import Event, Status
from flows import engine
from flows.models import FlowRun, RunState, StepKind, Trigger
from tests.factories import ContactFactory, conversation_in

from .conftest import make_flow

pytestmark = pytest.mark.django_db

S = Status
ARCHIVED = "archived"


def start_from(state: str, **kwargs) -> Conversation:
    if state == ARCHIVED:
        return conversation_in(S.CLOSED, archived=True, **kwargs)
    return conversation_in(state, **kwargs)


def snapshot(conversation: Conversation):
    conversation.refresh_from_db()
    return (
        conversation.status,
        conversation.archived_at,
        Message.objects.filter(conversation=conversation).count(),
        StatusChange.objects.filter(conversation=conversation).count(),
        Conversation.objects.filter(contact_id=conversation.contact_id).count(),
    )


# --- starting a flow: every starting status, with and without priority --------------

# (from, has_priority) -> (same conversation?, event recorded) or None if refused
START_TABLE = {
    (S.NOT_CONTACTED, False): (True, Event.FLOW_START),
    (S.NOT_CONTACTED, True): (True, Event.FLOW_START),
    (S.NEW, False): None,
    (S.NEW, True): (True, Event.FLOW_START_PRIORITY),
    (S.IN_PROGRESS, False): None,
    (S.IN_PROGRESS, True): (True, Event.FLOW_START_PRIORITY),
    (S.IN_FLOW, False): None,
    (S.IN_FLOW, True): (True, None),  # In a flow → In a flow: no status change to record
    (S.CLOSED, False): (False, Event.FLOW_START),
    (S.CLOSED, True): (False, Event.FLOW_START),
    (ARCHIVED, False): (False, Event.FLOW_START),
    (ARCHIVED, True): (False, Event.FLOW_START),
}


@pytest.mark.parametrize(("state", "has_priority"), list(START_TABLE))
def test_flow_start_from_each_status(state, has_priority, ask_flow, agent):
    conversation = start_from(state)
    expected = START_TABLE[(state, has_priority)]
    before = snapshot(conversation)

    if expected is None:
        with pytest.raises(ConversationOngoing) as refused:
            engine.flow_start(
                flow=ask_flow, conversation=conversation, has_priority=has_priority, actor=agent
            )
        assert refused.value.code == "conversation_ongoing"
        assert "priority" in refused.value.detail
        assert snapshot(conversation) == before  # nothing changed
        assert not FlowRun.objects.exists()
        return

    run = engine.flow_start(
        flow=ask_flow, conversation=conversation, has_priority=has_priority, actor=agent
    )
    same, event = expected
    run.conversation.refresh_from_db()
    assert run.conversation.status == S.IN_FLOW
    assert run.state == RunState.WAITING
    assert (run.conversation_id == conversation.pk) is same
    if not same:  # the closed one stays in history untouched
        assert snapshot(conversation)[:4] == before[:4]
        assert conversation.status == S.CLOSED
    if event is not None:
        change = run.conversation.status_changes.order_by("-id").first()
        assert change.event == event
        assert change.to_status == S.IN_FLOW
    sent = list(run.conversation.messages.filter(direction=Direction.OUTBOUND).order_by("id"))
    assert [m.sender_kind for m in sent[-2:]] == [SenderKind.FLOW, SenderKind.FLOW]
    assert [m.text for m in sent[-2:]] == [
        f"Hello {conversation.contact.name}!",
        "What is your name?",
    ]


def test_priority_start_cancels_the_running_run(ask_flow, send_only_flow):
    conversation = conversation_in(S.NEW)
    first = engine.flow_start(flow=ask_flow, conversation=conversation, has_priority=True)
    assert first.status_before_flow == S.NEW

    second = engine.flow_start(flow=send_only_flow, conversation=conversation, has_priority=True)

    first.refresh_from_db()
    assert first.state == RunState.CANCELLED
    assert first.outcome == engine.Outcome.REPLACED
    assert first.ended_at is not None
    # The replacing flow completes back to where the interrupted one would have.
    assert second.status_before_flow == S.NEW
    conversation.refresh_from_db()
    assert conversation.status == S.NEW
    assert FlowRun.objects.active().count() == 0


# --- each ending step ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (StepKind.MARK_IN_PROGRESS, S.IN_PROGRESS),
        (StepKind.HAND_OFF, S.NEW),
        (StepKind.CLOSE, S.CLOSED),
    ],
)
@pytest.mark.parametrize("state", [S.NOT_CONTACTED, S.NEW, S.IN_PROGRESS])
def test_ending_step_sets_its_status(state, kind, expected):
    flow = make_flow(("send_message", "Hi"), (kind,), ("send_message", "never sent"))
    conversation = conversation_in(state)

    run = engine.flow_start(flow=flow, conversation=conversation, has_priority=True)

    conversation.refresh_from_db()
    assert conversation.status == expected
    assert run.state == RunState.FINISHED
    assert run.outcome == kind
    assert [entry["kind"] for entry in run.log] == [StepKind.SEND_MESSAGE, kind]
    assert not conversation.messages.filter(text="never sent").exists()
    last = conversation.status_changes.order_by("-id").first()
    assert (last.from_status, last.to_status) == (S.IN_FLOW, expected)
    assert last.source == "flow"


# --- completing with no status step, from each starting status ----------------------

COMPLETION = [
    (S.NOT_CONTACTED, S.CLOSED),
    (S.NEW, S.NEW),
    (S.IN_PROGRESS, S.IN_PROGRESS),
    (S.IN_FLOW, S.CLOSED),  # reached from Not contacted, with no run to carry over
    (S.CLOSED, S.CLOSED),  # a new conversation, whose "before" was none
    (ARCHIVED, S.CLOSED),
]


@pytest.mark.parametrize(("state", "expected"), COMPLETION)
def test_completion_without_status_step_returns_to_the_status_before(
    state, expected, send_only_flow
):
    conversation = start_from(state)

    run = engine.flow_start(flow=send_only_flow, conversation=conversation, has_priority=True)

    run.conversation.refresh_from_db()
    assert run.state == RunState.FINISHED
    assert run.outcome == engine.Outcome.COMPLETED
    assert run.conversation.status == expected
    last = run.conversation.status_changes.order_by("-id").first()
    assert last.event == Event.FLOW_COMPLETE
    assert (last.from_status, last.to_status) == (S.IN_FLOW, expected)


def test_completion_after_priority_restart_of_a_flow_started_from_in_progress(
    ask_flow, send_only_flow
):
    conversation = conversation_in(S.IN_PROGRESS)
    engine.flow_start(flow=ask_flow, conversation=conversation, has_priority=True)
    engine.flow_start(flow=send_only_flow, conversation=conversation, has_priority=True)
    conversation.refresh_from_db()
    assert conversation.status == S.IN_PROGRESS


# --- ask, reply, resume ----------------------------------------------------------------


def test_reply_resumes_the_run_and_is_stored_on_the_contact():
    flow = make_flow(
        ("ask", "Your name?", "name"),
        ("add_tag", "lead"),
        ("ask", "Thanks {name}. Your city?", "city"),
        ("send_message", "Bye {name} from {city}"),
        ("hand_off",),
    )
    conversation = conversation_in(S.NOT_CONTACTED)
    contact = conversation.contact
    engine.flow_start(flow=flow, conversation=conversation)

    core.message_receive(channel=contact.channel, external_id=contact.external_id, text=" Ada ")
    contact.refresh_from_db()
    assert contact.attributes["name"] == "Ada"
    conversation.refresh_from_db()
    assert conversation.status == S.IN_FLOW
    assert list(conversation.tags.values_list("name", flat=True)) == ["lead"]

    core.message_receive(channel=contact.channel, external_id=contact.external_id, text="Paris")
    contact.refresh_from_db()
    conversation.refresh_from_db()
    assert contact.attributes == {"name": "Ada", "city": "Paris"}
    assert conversation.status == S.NEW
    outbound = list(
        conversation.messages.filter(direction=Direction.OUTBOUND).values_list("text", flat=True)
    )
    assert outbound == ["Your name?", "Thanks Ada. Your city?", "Bye Ada from Paris"]
    run = FlowRun.objects.get()
    assert run.outcome == engine.Outcome.HANDED_OFF
    assert [e["kind"] for e in run.log] == [
        "ask",
        "reply",
        "add_tag",
        "ask",
        "reply",
        "send_message",
        "hand_off",
    ]


# --- takeover and close ----------------------------------------------------------------


def test_agent_reply_during_a_flow_cancels_the_run(ask_flow, agent):
    conversation = conversation_in(S.NOT_CONTACTED)
    contact = conversation.contact
    run = engine.flow_start(flow=ask_flow, conversation=conversation)

    core.conversation_reply(conversation=conversation, agent=agent, text="I'll take it from here")

    run.refresh_from_db()
    conversation.refresh_from_db()
    assert conversation.status == S.IN_PROGRESS
    assert run.state == RunState.CANCELLED
    assert run.outcome == engine.Outcome.TAKEOVER
    assert "alice" in run.outcome_detail
    # The contact's next message goes to the agent, not to the cancelled flow.
    core.message_receive(channel=contact.channel, external_id=contact.external_id, text="Ada")
    contact.refresh_from_db()
    assert "name" not in contact.attributes
    conversation.refresh_from_db()
    assert conversation.status == S.IN_PROGRESS


def test_closing_during_a_flow_cancels_the_run(ask_flow, agent):
    conversation = conversation_in(S.NEW)
    run = engine.flow_start(flow=ask_flow, conversation=conversation, has_priority=True)

    core.conversation_close(conversation=conversation, actor=agent)

    run.refresh_from_db()
    assert run.state == RunState.CANCELLED
    assert run.outcome == engine.Outcome.CONVERSATION_CLOSED


def test_a_flow_status_step_does_not_cancel_its_own_run():
    flow = make_flow(("close",))
    run = engine.flow_start(flow=flow, conversation=conversation_in(S.NOT_CONTACTED))
    run.refresh_from_db()
    assert (run.state, run.outcome) == (RunState.FINISHED, engine.Outcome.CLOSED)


# --- keywords ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "text", "starts", "new_conversation"),
    [
        (S.NOT_CONTACTED, "hi", True, False),
        (S.NEW, "  HI ", False, False),  # already waiting for an agent: stays queued
        (S.CLOSED, "Hi", True, True),
        (ARCHIVED, "hi", True, True),
        (S.IN_PROGRESS, "hi", False, False),  # in an agent's hands
        (S.NOT_CONTACTED, "hi there", False, False),  # not the whole message
    ],
)
def test_keyword_starts_the_flow(state, text, starts, new_conversation, ask_flow):
    ask_flow.trigger_keyword = "hi"
    ask_flow.save()
    conversation = start_from(state)
    contact = conversation.contact

    inbound = core.message_receive(
        channel=contact.channel, external_id=contact.external_id, text=text
    )

    current = inbound.conversation
    current.refresh_from_db()
    assert (current.pk != conversation.pk) is new_conversation
    if starts:
        assert current.status == S.IN_FLOW
        run = FlowRun.objects.get(conversation=current)
        assert run.trigger == Trigger.KEYWORD
        assert current.status_changes.filter(event=Event.KEYWORD).exists()
        assert current.messages.filter(sender_kind=SenderKind.FLOW).count() == 2
    else:
        assert current.status != S.IN_FLOW
        assert not FlowRun.objects.exists()
    if new_conversation:
        conversation.refresh_from_db()
        assert conversation.status == S.CLOSED
        assert conversation.messages.filter(text=text).count() == 0


@pytest.mark.parametrize(
    ("state", "expected"),
    [(S.NOT_CONTACTED, S.CLOSED), (S.NEW, S.NEW), (S.CLOSED, S.CLOSED)],
)
def test_keyword_flow_completing_returns_to_the_status_before_the_message(state, expected):
    make_flow(("send_message", "Opening hours: 9-17"), keyword="hours")
    conversation = conversation_in(state)
    contact = conversation.contact

    inbound = core.message_receive(
        channel=contact.channel, external_id=contact.external_id, text="hours"
    )

    inbound.conversation.refresh_from_db()
    assert inbound.conversation.status == expected


def test_inactive_flow_keyword_is_ignored_and_start_refused():
    flow = make_flow(("send_message", "x"), keyword="promo", is_active=False)
    conversation = conversation_in(S.NOT_CONTACTED)
    contact = conversation.contact
    core.message_receive(channel=contact.channel, external_id=contact.external_id, text="promo")
    conversation.refresh_from_db()
    assert conversation.status == S.NEW
    with pytest.raises(engine.FlowInactive):
        engine.flow_start(flow=flow, conversation=conversation, has_priority=True)
    conversation.refresh_from_db()
    assert conversation.status == S.NEW


def test_closed_contact_reengaged_by_a_flow_opens_a_new_conversation(ask_flow):
    contact = ContactFactory()
    old = conversation_in(S.CLOSED, contact=contact)

    run = engine.flow_start(flow=ask_flow, contact=contact)

    assert run.conversation_id != old.pk
    old.refresh_from_db()
    assert old.status == S.CLOSED
    assert contact.conversations.count() == 2
    first = run.conversation.status_changes.get()
    assert (first.from_status, first.to_status, first.event) == ("", S.IN_FLOW, Event.FLOW_START)


def test_a_failing_keyword_flow_never_loses_the_contacts_message():
    make_flow(("send_message", "About you: {bio}"), keyword="bio")
    contact = ContactFactory(attributes={"bio": "x" * 10_001})

    inbound = core.message_receive(
        channel=contact.channel, external_id=contact.external_id, text="bio"
    )

    inbound.conversation.refresh_from_db()
    assert inbound.conversation.status == S.NEW
    assert inbound.conversation.messages.filter(text="bio").exists()
    assert not FlowRun.objects.exists()
    assert not inbound.conversation.status_changes.filter(event=Event.KEYWORD).exists()
