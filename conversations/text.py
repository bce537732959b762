"""Texts that users give: cleaned once, refused rather than truncated; and the
one-line preview the inbox shows of a conversation's newest message."""

import re

from .exceptions import InvalidInput
from .models import PREVIEW_LENGTH

CHANNEL_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def clean_text(value, *, field: str, max_length: int, required: bool = True) -> str:
    """Strip and check a user-supplied string; refuse instead of truncating."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text.")
    value = value.strip()
    if "\x00" in value:
        raise InvalidInput(f"{field} must not contain NUL characters.")
    if required and not value:
        raise InvalidInput(f"{field} must not be empty.")
    if len(value) > max_length:
        raise InvalidInput(f"{field} is too long ({len(value)} characters; at most {max_length}).")
    return value


def clean_channel(value) -> str:
    channel = clean_text(value, field="Channel", max_length=32).lower()
    if not CHANNEL_RE.match(channel):
        raise InvalidInput(
            "Channel must be a short slug: lowercase letters, digits, '-' or '_' "
            "(for example 'web' or 'whatsapp')."
        )
    return channel


def preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_LENGTH else flat[: PREVIEW_LENGTH - 1] + "…"
