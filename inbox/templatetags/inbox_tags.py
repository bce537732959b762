"""Small display helpers for the inbox templates."""

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from conversations.models import SenderKind, Source
from conversations.transitions import STATUS_LABELS

from ..filters import agent_label

register = template.Library()


@register.filter
def agent_name(user) -> str:
    return agent_label(user) if user else ""


@register.filter
def ago(value) -> str:
    """A short relative time: "now", "5 min", "3 h", "2 d", then the date."""
    if not value:
        return ""
    seconds = (timezone.now() - value).total_seconds()
    if seconds < 60:
        return "now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h"
    if seconds < 7 * 86400:
        return f"{int(seconds // 86400)} d"
    local = timezone.localtime(value)
    if local.year == timezone.localtime().year:
        return f"{local.day} {local:%b}"
    return f"{local.day} {local:%b %Y}"


@register.simple_tag
def status_badge(conversation) -> str:
    label = STATUS_LABELS.get(conversation.status, conversation.status)
    badge = format_html(
        '<span class="badge badge-{}">{}</span>', conversation.status.replace("_", "-"), label
    )
    if conversation.archived_at:
        badge += mark_safe(' <span class="badge badge-archived">Archived</span>')  # noqa: S308
    return badge


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
