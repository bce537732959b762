"""A small hand-made history with fixed times (UTC), through the real services."""

from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from unittest import mock

from conversations import services
from conversations.models import Conversation, Source
from conversations.transitions import Event

D1, D2 = date(2025, 3, 3), date(2025, 3, 4)  # a Monday and a Tuesday


@contextmanager
def at(day: date, hour: int, minute: int = 0):
    moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


def make(alice, bob) -> dict[str, Conversation]:
    with at(D1, 9):
        c1 = services.message_receive(channel="web", external_id="a", text="hi").conversation
    with at(D1, 9, 10):
        services.conversation_reply(conversation=c1, agent=alice, text="hello")  # 600 s
    with at(D1, 10):
        c2 = services.message_receive(channel="whatsapp", external_id="b", text="hi").conversation
    with at(D1, 10, 5):
        services.conversation_tag_add(conversation=c2, tag="billing")
    with at(D1, 11):
        services.conversation_close(conversation=c1, actor=alice)  # resolved in 7200 s
    with at(D2, 10, 30):
        services.conversation_reply(conversation=c2, agent=bob, text="sorry")  # 88200 s
    with at(D2, 14):
        c3 = services.message_receive(channel="web", external_id="c", text="hey").conversation
    with at(D2, 15):
        contact = services.contact_create(channel="web", external_id="d")
    with at(D2, 15, 1):
        c4 = services.apply_event(
            contact=contact, event=Event.FLOW_START, source=Source.FLOW
        ).conversation
    with at(D2, 15, 2):
        services.apply_event(conversation=c4, event=Event.FLOW_HAND_OFF, source=Source.FLOW)
    return {"c1": c1, "c2": c2, "c3": c3, "c4": c4}


def busy_fortnight(agents, last_day: date, per_day: int = 4) -> None:
    """A fortnight of ordinary days for the screenshots: contacts write in business
    hours, agents answer after a while, most conversations close."""
    channels = ["web", "whatsapp", "telegram"]
    for d in range(14):
        day = last_day - timedelta(13 - d)
        for k in range(per_day + d % 3):
            n = d * 10 + k
            agent = agents[n % len(agents)]
            with at(day, 8 + (n * 5) % 10, (n * 7) % 60):
                c = services.message_receive(
                    channel=channels[n % 3], external_id=f"f{n}", text="Hello"
                ).conversation
            with at(day, 8 + (n * 5) % 10 + (n % 4), 50):
                services.conversation_reply(conversation=c, agent=agent, text="On it")
            if n % 5:
                with at(day, 20, n % 60):
                    services.conversation_close(conversation=c, actor=agent)
