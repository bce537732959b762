"""Request and response bodies of the conversations API (django-ninja schemas)."""

import math
from datetime import date, datetime
from typing import Any

from ninja import Schema
from pydantic import Field, field_validator

ATTRIBUTES_MAX_KEYS = 100
ATTRIBUTES_MAX_DEPTH = 5


def _check_text(value: str) -> str:
    """Text PostgreSQL can store: no lone surrogates (valid JSON can carry them) and
    no NUL character (PostgreSQL text cannot hold it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _check_json(value: Any, depth: int = 0) -> None:
    if depth > ATTRIBUTES_MAX_DEPTH:
        raise ValueError(f"must not nest deeper than {ATTRIBUTES_MAX_DEPTH} levels")
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json(key, depth + 1)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)


class TextSchema(Schema):
    """Every string field (and every string in a list field) is storable text."""

    @field_validator("*", mode="after")
    @classmethod
    def _unicode(cls, value):
        if isinstance(value, str):
            return _check_text(value)
        if isinstance(value, list):
            for item in value:
                if isinstance(item, str):
                    _check_text(item)
        return value


# --- requests ----------------------------------------------------------------------


class ContactIn(TextSchema):
    channel: str = Field(description="A short slug such as `web` or `whatsapp`.")
    external_id: str = Field(description="The contact's id on that channel.")
    name: str = ""
    attributes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict) -> dict:
        if len(value) > ATTRIBUTES_MAX_KEYS:
            raise ValueError(f"at most {ATTRIBUTES_MAX_KEYS} attributes")
        _check_json(value)
        return value


class InboundIn(TextSchema):
    channel: str = Field(description="A short slug such as `web` or `whatsapp`.")
    external_id: str = Field(description="The contact's id on that channel.")
    text: str = Field(description="What the contact wrote (1 to 10,000 characters).")
    name: str | None = Field(None, description="The contact's name, kept up to date.")


class ReplyIn(TextSchema):
    text: str = Field(description="The agent's reply (1 to 10,000 characters).")


class TagIn(TextSchema):
    name: str = Field(description="The tag's name; created on first use.")


PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 200


class ConversationFilters(TextSchema):
    """The inbox's filters, as query parameters."""

    status: list[str] = Field(
        default_factory=list,
        description="Repeat or comma-separate: `not_contacted`, `new`, `in_progress`, "
        "`in_flow`, `closed`.",
    )
    archived: str = Field(
        "no", description="`no` (default, like the inbox), `yes` (the archive) or `any`."
    )
    tag: str | None = Field(None, description="Only conversations carrying this tag.")
    channel: str | None = Field(None, description="Only contacts of this channel.")
    assignee: str | None = Field(
        None, description="`me` (the token's user), `none` (unassigned) or a username."
    )
    q: str | None = Field(
        None, max_length=200, description="Text in the contact's name or in a message."
    )
    active_from: date | None = Field(None, description="Last activity on or after this day.")
    active_to: date | None = Field(None, description="Last activity on or before this day.")
    cursor: str | None = Field(None, description="The `next_cursor` of the previous page.")
    limit: int = Field(PAGE_SIZE_DEFAULT, ge=1, le=PAGE_SIZE_MAX)


# --- responses ---------------------------------------------------------------------


class ErrorOut(Schema):
    error: str = Field(description="A machine code, e.g. `tags_locked`.")
    detail: str = Field(description="A sentence for humans.")


class ContactOut(Schema):
    id: int
    channel: str
    external_id: str
    name: str
    attributes: dict[str, Any]
    created_at: datetime


class ConversationRef(Schema):
    id: int
    status: str


class ContactCreatedOut(Schema):
    contact: ContactOut
    conversation: ConversationRef


class InboundOut(Schema):
    message_id: int
    contact_id: int
    contact_created: bool
    conversation_id: int
    status: str = Field(description="The conversation's status after the message.")


class TagOut(Schema):
    name: str
    colour: str


class MessageOut(Schema):
    id: int
    direction: str = Field(description="`inbound` or `outbound`.")
    sender_kind: str = Field(description="`contact`, `agent`, `flow` or `broadcast`.")
    author: str | None = Field(description="The agent's username, for agent replies.")
    text: str
    created_at: datetime


class StatusChangeOut(Schema):
    from_status: str | None
    to_status: str
    event: str
    source: str = Field(description="Who or what: contact, agent, flow, broadcast, admin, api.")
    actor: str | None
    note: str
    at: datetime


class ConversationOut(Schema):
    id: int
    status: str
    status_label: str
    archived: bool
    contact: ContactOut
    assignee: str | None
    tags: list[TagOut]
    last_message_preview: str
    last_activity_at: datetime
    waiting_since: datetime | None
    created_at: datetime
    closed_at: datetime | None
    archived_at: datetime | None


class ConversationDetailOut(ConversationOut):
    messages: list[MessageOut]
    status_history: list[StatusChangeOut]


class ConversationPageOut(Schema):
    items: list[ConversationOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class ReplyOut(Schema):
    message: MessageOut
    conversation: ConversationRef


class TagsOut(Schema):
    conversation_id: int
    tags: list[TagOut]
