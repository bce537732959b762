import pytest

from flows.models import Flow, FlowStep, StepKind
from tests.factories import TagFactory


def make_flow(*steps, name=None, keyword="", is_active=True) -> Flow:
    """A flow from ``(kind, text_or_attribute_or_tag...)`` tuples, in order.

    ("send_message", text) · ("ask", text, attribute) · ("add_tag", tag_name) ·
    ("mark_in_progress",) · ("hand_off",) · ("close",) · ("assign", agent?)
    """
    make_flow.counter = getattr(make_flow, "counter", 0) + 1
    flow = Flow.objects.create(
        name=name or f"flow-{make_flow.counter}", trigger_keyword=keyword, is_active=is_active
    )
    for position, (kind, *args) in enumerate(steps, start=1):
        step = FlowStep(flow=flow, position=position * 10, kind=kind)
        if kind in (StepKind.SEND_MESSAGE, StepKind.ASK):
            step.text = args[0]
        if kind == StepKind.ASK:
            step.attribute = args[1]
        if kind == StepKind.ADD_TAG:
            step.tag = TagFactory(name=args[0])
        if kind == StepKind.ASSIGN and args:
            step.agent = args[0]
        step.full_clean()
        step.save()
    return flow


@pytest.fixture
def ask_flow(db):
    """Waits for the contact: keeps the conversation In a flow."""
    return make_flow(("send_message", "Hello {name}!"), ("ask", "What is your name?", "name"))


@pytest.fixture
def send_only_flow(db):
    """Ends without a status step: completes."""
    return make_flow(("send_message", "Our shop opens at 9."))
