"""Small display helpers for the inbox templates."""

from django import template

from .. import display
from ..filters import agent_label

register = template.Library()


@register.filter
def agent_name(user) -> str:
    return agent_label(user) if user else ""


@register.filter
def ago(value) -> str:
    """A short relative time: "now", "5 min", "3 h", "2 d", then the date."""
    return display.Clock().ago(value)


@register.simple_tag
def status_badge(conversation):
    """The status badge: ``templates/jinja2/inbox/macros.html``'s ``status_badge``."""
    return display.status_badge(conversation)
