"""Saved replies' placeholders: ``{{contact.name}}`` in a body becomes the contact's
name when the agent inserts the reply (spaces inside the braces allowed). The
values are plain text: the composer holds text, and every page escapes it."""

import re

from django.core.exceptions import ValidationError

PLACEHOLDER = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")
PLACEHOLDERS = {
    "contact.name": "the contact's name (or their id on the channel)",
    "contact.first_name": "the first word of the contact's name",
    "agent.name": "your name",
    "agent.first_name": "your first name",
    "conversation.id": "the conversation's number",
}


def validate_placeholders(body: str) -> None:
    unknown = sorted({name for name in PLACEHOLDER.findall(body) if name not in PLACEHOLDERS})
    if unknown:

        def braced(names):
            return ", ".join("{{" + name + "}}" for name in names)

        raise ValidationError(
            f"Unknown placeholder {braced(unknown)}; use one of {braced(PLACEHOLDERS)}."
        )


def fill(body: str, *, conversation, agent) -> str:
    name = conversation.contact.display_name
    agent_name = agent.get_full_name() or agent.get_username()
    values = {
        "contact.name": name,
        "contact.first_name": name.split()[0] if name.split() else name,
        "agent.name": agent_name,
        "agent.first_name": agent.first_name or agent_name,
        "conversation.id": str(conversation.pk),
    }
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), body)
