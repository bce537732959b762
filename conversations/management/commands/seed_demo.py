"""Fill an empty database with demo data: agents, an admin, ~60 contacts on three
channels, conversations in every status with realistic threads and history.

Idempotent: when the database already has contacts it adds nothing. Everything goes
through the services (so the history is real); only the clock is moved back, so
the inbox shows activity spread over the last weeks.
"""

import random
from datetime import timedelta
from unittest import mock

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from conversations import services, snooze
from conversations.models import Contact, Conversation, InboxSettings, Source
from conversations.transitions import Event

# The flow seed_demo_flows creates and runs on these conversations ("Welcome").
DEMO_FLOW_NOTE = "Flow “Welcome”"
DEMO_PASSWORD = "parley-demo"  # noqa: S105  (printed by bin/run; demo only)
AGENTS = [("alice", "Alice", "Martin"), ("bob", "Bob", "Nguyen"), ("carol", "Carol", "Diaz")]
TAGS = [
    ("billing", "#b45309"),
    ("bug", "#dc2626"),
    ("feature-request", "#7c3aed"),
    ("vip", "#0f766e"),
    ("shipping", "#2563eb"),
    ("refund", "#be185d"),
]
FIRST = (  # noqa: SIM905 (a list of words reads best as words)
    "Amara Bruno Chen Dana Elif Farid Greta Hugo Ines Jonas Kemal Lena Mateo Nadia Omar "
    "Priya Quentin Rosa Sven Tara Umar Vera Wen Ximena Yusuf Zoe Anton Bea Cyril Dilnoza"
).split()
LAST = (  # noqa: SIM905
    "Okafor Rossi Li Kowalski Yilmaz Haddad Berg Laurent Costa Weber Demir Novak Alvarez "
    "Sato Dubois Silva Ivanova Jensen Moreau Patel"
).split()
TOPICS = [
    (
        "billing",
        [
            "Hi, I was charged twice for my subscription this month.",
            "The second charge is from the 3rd, order #48213.",
        ],
        "Sorry about that! I can see the duplicate charge; I've refunded it, it will show "
        "in 3-5 days.",
    ),
    (
        "shipping",
        [
            "My parcel has said 'in transit' for 9 days now.",
            "Tracking number is PX-99120-NL if that helps.",
        ],
        "Thanks, I've opened an inquiry with the carrier and will update you tomorrow.",
    ),
    (
        "bug",
        [
            "The export button does nothing when I click it in Firefox.",
            "Chrome works fine. Firefox 132 on Windows.",
        ],
        "Thanks for the details, we reproduced it and a fix ships this week.",
    ),
    (
        "feature-request",
        ["Could you add a dark mode to the dashboard? My eyes would thank you."],
        "Great idea. I've added your vote to the dark mode request.",
    ),
    (
        "refund",
        [
            "I'd like to return the shoes, they're a size too small.",
            "Can I get a refund instead of an exchange?",
        ],
        "Of course. I've emailed you a prepaid return label; the refund follows on arrival.",
    ),
    (
        None,
        ["How do I change the email address on my account?"],
        "Go to Settings → Profile → Email; you'll get a confirmation link.",
    ),
    (
        None,
        ["Is the store open on public holidays?", "Specifically next Monday."],
        "Yes, 10:00 to 16:00 on public holidays.",
    ),
    (
        "vip",
        ["We'd like to upgrade our team plan to 40 seats before Friday."],
        "Happy to help. I've prepared the upgrade; you'll see the new seats within the hour.",
    ),
    (
        None,
        ["The app logs me out every few minutes on my phone."],
        "Could you try updating to version 5.2? It fixes a session bug.",
    ),
    (
        "bug",
        ["Password reset emails never arrive.", "Checked spam too."],
        "Found it: your domain bounced our mail. I've whitelisted it, please try again.",
    ),
]
FOLLOW_UPS = ["Thanks!", "That worked, thank you.", "Great, appreciate the quick help."]


class Clock:
    """A movable 'now' for the services while seeding, never past the real now (a
    long thread that started recently ends now, not in the future)."""

    def __init__(self, start, *, ceiling):
        self.ceiling = ceiling
        self.now = min(start, ceiling)

    def advance(self, **kwargs) -> None:
        self.now = min(self.now + timedelta(**kwargs), self.ceiling)

    def __call__(self):
        return self.now


class Command(BaseCommand):
    help = "Fill an empty database with demo data (idempotent)."

    def handle(self, *args, **options):
        if Contact.objects.exists():
            self.stdout.write("Demo data: the database already has contacts; nothing added.")
            return
        rng = random.Random(2026)  # the same demo every time
        with transaction.atomic():
            agents, admin = self._users()
            for name, colour in TAGS:
                services.tag_get_or_create(name=name, colour=colour)
            # Satisfaction surveys on: closes become Resolved, most get rated.
            InboxSettings(pk=1, csat_enabled=True).save()
            counts = self._contacts(rng, agents)
            self._snooze(agents)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data: {len(agents)} agents, 1 admin, {counts['contacts']} contacts, "
                f"{counts['conversations']} conversations."
            )
        )

    def _users(self):
        """The agents, then the admin (the last one)."""
        users = []
        people = [(*agent, False) for agent in AGENTS] + [("admin", "Ada", "Admin", True)]
        for username, first, last, is_admin in people:
            user = get_user_model()(
                username=username,
                first_name=first,
                last_name=last,
                email=f"{username}@parley.example",
                is_staff=is_admin,
                is_superuser=is_admin,
            )
            user.set_password(DEMO_PASSWORD)
            user.save()
            users.append(user)
        return users[:-1], users[-1]

    def _snooze(self, agents) -> None:
        """Two conversations in progress wait in the Snoozed view until tomorrow morning."""
        until = {key: moment for key, _, moment in snooze.presets()}["tomorrow"]
        waiting = Conversation.objects.filter(status="in_progress").order_by("id")[:2]
        for conversation in waiting:
            snooze.conversation_snooze(
                conversation=conversation, until=until, actor=conversation.assignee or agents[0]
            )

    def _contacts(self, rng: random.Random, agents):
        # Which status each demo contact's current conversation ends in.
        plan = (
            ["not_contacted"] * 8
            + ["new"] * 12
            + ["in_progress"] * 12
            + ["in_flow"] * 4
            + ["closed"] * 8
            + ["resolved"] * 3
            + ["archived"] * 8
            + ["history_new"] * 4
            + ["history_in_progress"] * 4
        )
        rng.shuffle(plan)
        channels = ["web", "whatsapp", "email"]
        now = timezone.now()
        conversations = 0
        for index, outcome in enumerate(plan):
            channel = channels[index % 3]
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            external_id = (
                f"{name.split()[0].lower()}.{index}@example.com"
                if channel == "email"
                else f"+31 6 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}"
                if channel == "whatsapp"
                else f"visitor-{index:04d}"
            )
            # Older outcomes start further back, so the default view mixes them.
            age = timedelta(
                days=rng.randint(1, 30) if outcome in ("closed", "archived") else 0,
                # A survey awaited is recent: its window (24 h) is still open.
                hours=rng.randint(0, 2 if outcome == "resolved" else 72),
                minutes=rng.randint(0, 59),
            )
            clock = Clock(
                now - age - timedelta(days=8 if outcome.startswith("history") else 0),
                ceiling=now - timedelta(minutes=1),
            )
            with mock.patch("django.utils.timezone.now", clock):
                contact = services.contact_create(
                    channel=channel, external_id=external_id, name=name, source=Source.ADMIN
                )
                conversations += 1
                conversations += self._play(rng, clock, contact, outcome, agents)
        return {"contacts": len(plan), "conversations": conversations}

    def _play(self, rng, clock: Clock, contact, outcome: str, agents) -> int:
        """Bring the contact's conversation(s) to ``outcome``; returns how many extra
        conversations were opened."""
        extra = 0
        if outcome == "not_contacted":
            return 0
        if outcome == "in_flow":
            clock.advance(minutes=5)
            services.apply_event(
                contact=contact, event=Event.FLOW_START, source=Source.FLOW, note=DEMO_FLOW_NOTE
            )
            return 0
        if outcome.startswith("history"):
            # An earlier episode, closed with tags, then the contact writes again.
            self._thread(rng, clock, contact, agents, reply=True, close=True)
            clock.advance(days=rng.randint(3, 7))
            extra = 1
            outcome = outcome.removeprefix("history_")
        self._thread(
            rng,
            clock,
            contact,
            agents,
            reply=outcome in ("in_progress", "closed", "archived", "resolved"),
            close=outcome in ("closed", "archived", "resolved"),
            rate=outcome != "resolved",
            archive=outcome == "archived",
        )
        return extra

    def _thread(self, rng, clock, contact, agents, *, reply, close=False, archive=False, rate=True):
        tag, lines, answer = rng.choice(TOPICS)
        inbound = None
        for line in lines:
            clock.advance(minutes=rng.randint(1, 6))
            inbound = services.message_receive(
                channel=contact.channel, external_id=contact.external_id, text=line
            )
        conversation = inbound.conversation
        if tag:
            services.conversation_tag_add(conversation=conversation, tag=tag)
        if reply:
            agent = rng.choice(agents)
            clock.advance(minutes=rng.randint(4, 90))
            services.conversation_reply(conversation=conversation, agent=agent, text=answer)
            if close:
                clock.advance(minutes=rng.randint(2, 30))
                services.message_receive(
                    channel=contact.channel,
                    external_id=contact.external_id,
                    text=rng.choice(FOLLOW_UPS),
                )
                clock.advance(minutes=rng.randint(1, 20))
                services.conversation_close(conversation=conversation, actor=agent)
                if rate:  # the survey's answer (a rating from 3 to 5) closes it
                    clock.advance(minutes=rng.randint(1, 30))
                    services.message_receive(
                        channel=contact.channel,
                        external_id=contact.external_id,
                        text=str(rng.randint(3, 5)),
                    )
                if archive:
                    clock.advance(days=1)
                    services.conversation_archive(conversation=conversation, actor=agent)
        return conversation
