"""Writing the conversation timeline's non-status lines (``models.Activity``), and
finding the agents a private note mentions."""

import re

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.db.models.functions import Lower

from .models import Activity, Source

# ``@name``: a username or a first name (letters, digits, and . + - inside).
MENTION = re.compile(r"(?<![\w@])@(\w+(?:[.+-]\w+)*)")


def record_activity(
    conversation, kind: str, *, actor=None, source: str = Source.AGENT, **data
) -> Activity:
    """One timeline line for ``conversation`` (a Conversation or its id); ``data``
    holds the kind's details (JSON)."""
    return Activity.objects.create(
        conversation_id=getattr(conversation, "pk", conversation),
        kind=kind,
        actor=actor,
        source=source,
        data=data,
    )


def record_assignment(conversation, before: int | None, *, actor, source: str) -> Activity:
    """The timeline line of an assignment: from ``before`` to the conversation's
    assignee now (agent ids; None is nobody)."""
    return record_activity(
        conversation,
        Activity.Kind.ASSIGNED,
        actor=actor,
        source=source,
        to=conversation.assignee_id,
        **{"from": before},
    )


def mentioned_agents(text: str) -> list[int]:
    """The active agents ``text`` mentions: ``@name`` is a username, else a first
    name (every agent of that first name), any case."""
    names = {name.lower() for name in MENTION.findall(text)}
    if not names:
        return []
    users = (
        get_user_model()
        .objects.filter(is_active=True)
        .annotate(u=Lower("username"), f=Lower("first_name"))
        .filter(Q(u__in=names) | Q(f__in=names))
        .values_list("pk", "u", "f")
    )
    rows = list(users)
    usernames = {u for _, u, _ in rows}
    return sorted(pk for pk, u, f in rows if u in names or (f in names and f not in usernames))
