"""Small display helpers for the inbox templates."""

from django import template

from conversations.models import SenderKind, Source

from .. import display
from ..display import relative_time
from ..filters import agent_label

register = template.Library()


@register.filter
def agent_name(user) -> str:
    return agent_label(user) if user else ""


@register.filter
def ago(value) -> str:
    """A short relative time: "now", "5 min", "3 h", "2 d", then the date."""
    return relative_time(value)


@register.simple_tag
def status_badge(conversation) -> str:
    return display.status_badge(conversation)


@register.filter
def sender_label(message) -> str:
    if message.sender_kind == SenderKind.CONTACT:
        return message.conversation.contact.display_name
    if message.sender_kind == SenderKind.AGENT:
        return agent_label(message.author) if message.author else "An agent"
    return "Flow" if message.sender_kind == SenderKind.FLOW else "Broadcast"


@register.filter
def change_actor(change) -> str:
    if change.actor is not None:
        return agent_label(change.actor)
    if change.source == Source.CONTACT:
        return "the contact"
    return Source(change.source).label if change.source in Source.values else change.source
