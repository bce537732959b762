"""Signals the core sends so that apps above it (flows, channels) can react
without the core importing them.

They are sent synchronously *inside* the service's transaction: a receiver's
writes commit or roll back with the change that caused them. A receiver that talks
to the outside world must defer that work with ``transaction.on_commit`` or a task.
"""

from django.dispatch import Signal

# A conversation's status changed (also sent for archive/unarchive).
# kwargs: conversation, change (StatusChange), rule (transitions.Rule)
status_changed = Signal()

# A contact's message was stored and the inbound transition applied.
# kwargs: message, conversation. A receiver that may have changed the conversation
# (a flow resumed or started) returns True: ``message_receive`` then re-reads it
# before answering, and only then. The return value is the only way it learns.
message_received = Signal()

# An outbound message (agent, flow or broadcast) was stored.
# kwargs: message, conversation
message_sent = Signal()

# An outbound message is about to be stored (before anything is written).
# kwargs: conversation, text, sender_kind, template (a channel's template, opaque
# here: {"name", "params"} or None). A receiver refuses by raising a ParleyError, or
# returns the text to store instead (a template's body filled in).
message_sending = Signal()


def outbound_text(*, conversation, text: str, sender_kind: str, template=None) -> str:
    """The text to store for an outbound message, after its channel has had its say."""
    answers = message_sending.send(
        sender=None,
        conversation=conversation,
        text=text,
        sender_kind=sender_kind,
        template=template,
    )
    for _, answer in answers:
        if answer:
            text = answer
    return text


# The housekeeping chain runs (conversations.tasks.housekeeping, every
# HOUSEKEEPING_SECONDS), outside any transaction: apps above the core do their periodic
# work. A receiver returns a dict of counts, reported with the core's.
housekeeping_due = Signal()

# The inbox shows a page of a conversation's messages. kwargs: channel (the contact's
# channel slug), message_ids. A channel that shows its messages its own way (an
# email's sanitised HTML, its attachments) returns {message id: markup}.
message_bodies = Signal()
