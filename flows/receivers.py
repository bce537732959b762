"""Flows' side of the core's hooks (``conversations.hooks``).

Both receivers run inside the core service's transaction, so what they write
commits or rolls back with the change that caused it.
"""

import logging

from django.dispatch import receiver

from conversations import hooks
from conversations.locks import is_retryable
from conversations.transitions import FLOW_EVENTS, Event

from . import engine

logger = logging.getLogger(__name__)

CANCEL_OUTCOMES = {
    Event.AGENT_REPLY: (engine.Outcome.TAKEOVER, "An agent replied: human takeover."),
    Event.CLOSE: (engine.Outcome.CONVERSATION_CLOSED, "The conversation was closed."),
}


@receiver(hooks.message_received, dispatch_uid="flows.message_received")
def on_message_received(sender, message, conversation, **kwargs) -> bool:
    """Hands the message to a waiting flow or starts a keyword's flow; returns whether
    a flow acted, so that ``message_receive`` re-reads the conversation only then."""
    # The contact's message is stored whatever happens to the flow: a flow that
    # fails rolls back to its savepoint (``handle_inbound``) and is logged, not the
    # message.
    try:
        return engine.handle_inbound(message=message, conversation=conversation) is not None
    except Exception as exc:
        if is_retryable(exc):  # a deadlock: the whole message_receive runs again
            raise
        logger.exception(
            "Flow handling failed for message %s on conversation %s", message.pk, conversation.pk
        )
        return False


@receiver(hooks.status_changed, dispatch_uid="flows.status_changed")
def on_status_changed(sender, conversation, change, rule, **kwargs) -> None:
    if not rule.cancels_flow or rule.event in FLOW_EVENTS:
        return
    outcome, detail = CANCEL_OUTCOMES.get(
        rule.event, (engine.Outcome.CONVERSATION_CLOSED, f"Cancelled: {rule.event.label}.")
    )
    if change.actor_id:
        detail = f"{detail} ({change.actor})"
    engine.flow_cancel_for(conversation=conversation, outcome=outcome, detail=detail)
