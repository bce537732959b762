"""An *ask* step says what it expects (any text, a name, a number in a range, one of
some choices) and asks again, keeping the run waiting, when the reply does not fit."""

import pytest
from django.core.exceptions import ValidationError

from conversations import services as core
from conversations.models import SenderKind
from conversations.transitions import Status
from flows import answers, engine
from flows.models import Expect, FlowRun, FlowStep, StepKind
from tests.factories import conversation_in

from .conftest import make_flow

pytestmark = pytest.mark.django_db


def _ask(**fields) -> FlowStep:
    return FlowStep(kind=StepKind.ASK, text="?", attribute="a", **fields)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Eve", "Eve"),
        ("My name is Eve", "Eve"),
        ("my name is eve!", "Eve"),
        ("Hi, I'm Jean-Luc", "Jean-Luc"),
        ("it's Anne Marie", "Anne Marie"),
        ("Zoë", "Zoë"),
        ("42", None),
        ("I would rather not say, thanks for asking so nicely", None),
        ("", None),
    ],
)
def test_a_name_is_extracted_from_the_sentence(text, value):
    accepted, ask_again = answers.accept(_ask(expects=Expect.NAME), text)
    assert accepted == value
    assert bool(ask_again) is (value is None)


@pytest.mark.parametrize(
    ("text", "value"), [("3", 3), (" 5 ", 5), ("0", None), ("6", None), ("three", None)]
)
def test_a_number_in_a_range(text, value):
    step = _ask(expects=Expect.NUMBER, min_value=1, max_value=5)
    accepted, ask_again = answers.accept(step, text)
    assert accepted == value
    if value is None:
        assert ask_again == "Please answer with a whole number from 1 to 5."


def test_one_of_some_choices_in_its_own_spelling():
    step = _ask(expects=Expect.CHOICE, choices="Yes, No , Maybe later")
    assert answers.accept(step, "maybe LATER") == ("Maybe later", "")
    assert answers.accept(step, "perhaps") == (
        None,
        "Please answer with one of: Yes, No, Maybe later.",
    )


def test_the_run_asks_again_and_waits_until_the_reply_fits():
    flow = make_flow(("ask", "Rate us from 1 to 5", "rating"), ("send_message", "Thanks!"))
    FlowStep.objects.filter(flow=flow).update(expects=Expect.NUMBER, min_value=1, max_value=5)
    flow = type(flow).objects.get(pk=flow.pk)
    conversation = conversation_in(Status.NOT_CONTACTED)
    engine.flow_start(flow=flow, conversation=conversation)
    contact = conversation.contact

    core.message_receive(channel=contact.channel, external_id=contact.external_id, text="great")
    run = FlowRun.objects.get()
    assert run.state == "waiting"
    contact.refresh_from_db()
    assert "rating" not in contact.attributes
    sent = conversation.messages.filter(sender_kind=SenderKind.FLOW).values_list("text", flat=True)
    assert list(sent)[-1] == "Please answer with a whole number from 1 to 5."

    core.message_receive(channel=contact.channel, external_id=contact.external_id, text="4")
    run.refresh_from_db()
    contact.refresh_from_db()
    assert (run.state, contact.attributes["rating"]) == ("finished", 4)
    assert list(sent.all())[-1] == "Thanks!"
    assert [e["detail"] for e in run.log if e["kind"] == "reply"] == [
        "not accepted: great",
        "rating = 4",
    ]


@pytest.mark.parametrize(
    ("fields", "field", "error"),
    [
        ({"expects": Expect.NUMBER}, "max_value", "lowest and the highest"),
        ({"expects": Expect.NUMBER, "min_value": 5, "max_value": 1}, "max_value", "below"),
        ({"expects": Expect.CHOICE, "choices": "yes"}, "choices", "at least two"),
    ],
)
def test_an_ask_step_that_cannot_be_answered_is_refused(fields, field, error):
    with pytest.raises(ValidationError) as refused:
        _ask(**fields).clean()
    assert error in refused.value.message_dict[field][0]
