"""The web chat's limits (issue 12.2): per client address and per visitor, on
messages and on new conversations, so one client cannot flood the inbox.

The rates come from ``settings.CHAT_LIMITS`` (environment variables
``CHAT_MESSAGES_PER_VISITOR`` …); the counters are ``connectors.ratelimit``'s, shared
by every process and host. A message that would open a conversation (the visitor has
none open: a first message, or after a close) also counts as a new conversation.
"""

import secrets
from functools import cache

from django.conf import settings
from django.http import HttpRequest

from conversations.exceptions import ParleyError
from conversations.models import Conversation

from . import ratelimit
from .ratelimit import Rate, client_address

# Now and then a send also deletes the counters whose window has ended.
PURGE_ONE_IN = 500


class ChatLimited(ParleyError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, detail: str, *, retry_after: int):
        super().__init__(detail)
        self.retry_after = retry_after


@cache
def _rates(limits: tuple) -> dict[str, Rate]:
    return {name: Rate.parse(value) for name, value in limits}


def rates() -> dict[str, Rate]:
    return _rates(tuple(sorted(settings.CHAT_LIMITS.items())))


def _wait(seconds: int) -> str:
    if seconds < 90:
        return "a minute"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} minutes"
    hours = round(seconds / 3600)
    return "an hour" if hours == 1 else f"{hours} hours"


def _opens_conversation(channel: str, visitor: str) -> bool:
    return (
        not Conversation.objects.filter(contact__channel=channel, contact__external_id=visitor)
        .current()
        .exists()
    )


def _hit_both(kind: str, name: str, *, channel: str, address: str, visitor: str) -> int:
    """Count a hit on the address's and on the visitor's counter of ``kind``; the
    seconds to wait when either is passed, else 0."""
    limits = rates()
    verdicts = [
        ratelimit.hit(f"chat:{kind}:a:{channel}:{address}", limits[f"{name}_per_address"]),
        ratelimit.hit(f"chat:{kind}:v:{channel}:{visitor}", limits[f"{name}_per_visitor"]),
    ]
    return max((v.retry_after for v in verdicts if not v.allowed), default=0)


def chat_send_allowed(request: HttpRequest, *, channel: str, visitor: str) -> None:
    """Count this send against the limits; raise ``ChatLimited`` when one is passed."""
    who = {"channel": channel, "address": client_address(request), "visitor": visitor}
    if wait := _hit_both("msg", "messages", **who):
        raise ChatLimited(
            f"You are sending messages too fast. Please wait {_wait(wait)} and send it again.",
            retry_after=wait,
        )
    if _opens_conversation(channel, visitor) and (
        wait := _hit_both("new", "new_conversations", **who)
    ):
        raise ChatLimited(
            "Too many new conversations were started from your network. Please try "
            f"again in {_wait(wait)}.",
            retry_after=wait,
        )
    if secrets.randbelow(PURGE_ONE_IN) == 0:
        ratelimit.purge_expired()
