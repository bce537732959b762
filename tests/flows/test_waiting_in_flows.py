"""Nobody waits for an agent while a flow has the conversation (docs/decisions.md):
no "waiting" badge in a flow or after a flow moved it on, except a hand-off to the
agents' queue, which starts the wait then."""

import re

import pytest

from conversations.models import Conversation
from conversations.transitions import Status
from flows import engine
from tests.factories import conversation_in

from .conftest import make_flow

pytestmark = pytest.mark.django_db


def _badge(agent_client, conversation) -> bool:
    page = agent_client.get("/inbox/").text
    row = re.search(rf'data-id="{conversation.pk}".*?</li>', page, re.S).group(0)
    return 'class="waiting"' in row


@pytest.mark.parametrize(
    ("steps", "status", "waiting"),
    [
        ((("ask", "Name?", "name"),), Status.IN_FLOW, False),
        ((("mark_in_progress",),), Status.IN_PROGRESS, False),
        ((("send_message", "Hi"),), Status.NEW, True),  # completes: back to New, waiting
        ((("hand_off",),), Status.NEW, True),
    ],
)
def test_a_flow_started_on_a_waiting_conversation(agent_client, steps, status, waiting):
    conversation = conversation_in(Status.NEW)
    assert _badge(agent_client, conversation)
    engine.flow_start(flow=make_flow(*steps), conversation=conversation, has_priority=True)
    conversation = Conversation.objects.get(pk=conversation.pk)
    assert conversation.status == status
    assert (conversation.waiting_since is not None) is waiting
    assert _badge(agent_client, conversation) is waiting
