from django import template

from ..selectors import startable_flows

register = template.Library()


@register.simple_tag
def active_flows():
    """The flows the "Start flow" form offers, when the including page gave none."""
    return list(startable_flows())


@register.filter
def status_css(status: str) -> str:
    """``in_flow`` → ``in-flow`` (the badge classes of app.css)."""
    return str(status).replace("_", "-")
