"""Request and response bodies of the conversations API (django-ninja schemas).

Requests declare the limits the services enforce, taken from the same source (the
model fields' ``max_length``, ``MESSAGE_MAX_LENGTH``, the services' channel pattern),
so the OpenAPI schema documents exactly what the API accepts, and a request outside
them is refused by the schema's validation before it reaches a service.

Responses are built from the model objects (``from_attributes``): the few fields
that are not plain attributes have a ``resolve_<field>``.
"""

import math
import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from ninja import Schema
from pydantic import Field, Strict, field_validator

from .models import MESSAGE_MAX_LENGTH, Contact, Tag
from .text import CHANNEL_RE
from .transitions import STATUS_LABELS, Status

ATTRIBUTES_MAX_KEYS = 100
ATTRIBUTES_MAX_DEPTH = 5
# The largest id PostgreSQL's bigint holds: a larger one is refused (422), not a 500.
ID_MAX = 2**63 - 1
CHANNEL_MAX_LENGTH = Contact._meta.get_field("channel").max_length
EXTERNAL_ID_MAX_LENGTH = Contact._meta.get_field("external_id").max_length
NAME_MAX_LENGTH = Contact._meta.get_field("name").max_length
TAG_MAX_LENGTH = Tag._meta.get_field("name").max_length
SEARCH_MAX_LENGTH = 200  # the inbox FilterSet's ``q``
USERNAME_MAX_LENGTH = 150

# The services lowercase a channel, then match CHANNEL_RE: the API accepts either case.
CHANNEL_PATTERN = CHANNEL_RE.pattern.replace("a-z", "A-Za-z")

Id = Annotated[int, Field(ge=1, le=ID_MAX)]
# In a JSON body a number is a number and a boolean a boolean (not "1" nor 0).
BodyId = Annotated[int, Strict(), Field(ge=1, le=ID_MAX)]
Flag = Annotated[bool, Strict()]
Channel = Annotated[
    str,
    Field(
        min_length=1,
        max_length=CHANNEL_MAX_LENGTH,
        pattern=CHANNEL_PATTERN,
        description="A short slug such as `web` or `whatsapp`: letters, digits, `-` or `_` "
        "(stored in lowercase).",
    ),
]
ExternalId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=EXTERNAL_ID_MAX_LENGTH,
        description="The contact's id on that channel.",
    ),
]
Name = Annotated[str, Field(max_length=NAME_MAX_LENGTH)]
DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Days a filter can compute with (the day after the last one still exists).
Day = Annotated[date, Field(ge=date(1900, 1, 1), le=date(9998, 12, 31))]
Text = Annotated[str, Field(min_length=1, max_length=MESSAGE_MAX_LENGTH)]
TagName = Annotated[
    str,
    Field(min_length=1, max_length=TAG_MAX_LENGTH, description="The tag's name."),
]


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


class ContactIn(TextSchema):
    channel: Channel
    external_id: ExternalId
    name: Name = ""
    attributes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict) -> dict:
        if len(value) > ATTRIBUTES_MAX_KEYS:
            raise ValueError(f"at most {ATTRIBUTES_MAX_KEYS} attributes")
        _check_json(value)
        return value


class InboundIn(TextSchema):
    channel: Channel
    external_id: ExternalId
    text: Text = Field(description="What the contact wrote (not only spaces).")
    name: Name | None = Field(None, description="The contact's name, kept up to date.")


class ReplyIn(TextSchema):
    text: Text = Field(description="The agent's reply (not only spaces).")
    template: Annotated[str, Field(max_length=512)] = Field(
        default="",
        description="WhatsApp: the name of an approved template to send instead of the text "
        "(the thread stores its body filled in). Outside WhatsApp's 24-hour window free text "
        "is refused with 409 `outside_window`.",
    )
    template_params: list[Annotated[str, Field(max_length=1000)]] = Field(
        default_factory=list, max_length=20, description="The template's {{1}}, {{2}}… values."
    )


class SnoozeIn(Schema):
    until: datetime = Field(
        description="When it wakes up: an ISO 8601 date and time with its offset, "
        "in the future (at most a year ahead)."
    )


class NoteIn(TextSchema):
    text: Text = Field(
        description="The private note (agents only; `@username` or `@first name` mentions)."
    )


class TagIn(TextSchema):
    name: TagName = Field(description="The tag's name; created on first use.")


PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 200


class ConversationFilters(TextSchema):
    """The inbox's filters (inbox/filters.py), as query parameters."""

    status: list[str] = Field(
        default_factory=list,
        description="Repeat or comma-separate: `not_contacted`, `new`, `in_progress`, "
        "`in_flow`, `resolved`, `closed`.",
    )
    archived: Literal["no", "yes", "any"] = Field(
        "no",
        description="`no` (default, like the inbox), `yes` (the archive) or `any`.",
    )
    tag: str | None = Field(
        None,
        min_length=1,
        max_length=TAG_MAX_LENGTH,
        description="Only conversations carrying this tag (any case); an unknown tag "
        "matches nothing.",
    )
    channel: str | None = Field(
        None,
        min_length=1,
        max_length=CHANNEL_MAX_LENGTH,
        description="Only contacts of this channel; an unknown channel matches nothing.",
    )
    assignee: str | None = Field(
        None,
        min_length=1,
        max_length=USERNAME_MAX_LENGTH,
        description="`me` (the token's user), `none` (unassigned) or an active agent's username.",
    )
    q: str | None = Field(
        None,
        min_length=1,
        max_length=SEARCH_MAX_LENGTH,
        description="Text in the contact's name or in a message, or the contact's exact "
        "external id.",
    )
    active_from: Day | None = Field(None, description="Last activity on or after this day.")
    active_to: Day | None = Field(None, description="Last activity on or before this day.")
    sort: Literal["activity", "waiting"] = Field(
        "activity",
        description="`activity` (most recently active first, the default) or `waiting` "
        "(longest waiting first).",
    )
    cursor: str | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="The `next_cursor` of the previous page.",
    )
    limit: int = Field(PAGE_SIZE_DEFAULT, ge=1, le=PAGE_SIZE_MAX)

    @field_validator("active_from", "active_to", mode="before")
    @classmethod
    def _iso_day(cls, value):
        # pydantic would also read a number as a Unix time: the schema says a date.
        if value is not None and not (isinstance(value, str) and DAY_RE.fullmatch(value)):
            raise ValueError("must be a day written YYYY-MM-DD")
        return value


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
    """From ``services.Inbound``."""

    message_id: int
    contact_id: int
    contact_created: bool
    conversation_id: int
    status: str = Field(description="The conversation's status after the message.")


class TagOut(Schema):
    name: str
    colour: str


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


class MessageOut(Schema):
    id: int
    direction: str = Field(description="`inbound` or `outbound`.")
    sender_kind: str = Field(
        description="`contact`, `agent`, `flow`, `broadcast` or `survey` (the CSAT question)."
    )
    author: str | None = Field(description="The agent's username, for agent replies.")
    text: str
    created_at: datetime

    @staticmethod
    def resolve_author(message) -> str | None:
        return _username(message.author) if message.author_id else None


class StatusChangeOut(Schema):
    from_status: str | None
    to_status: str
    event: str
    source: str = Field(description="Who or what: contact, agent, flow, broadcast, admin, api.")
    actor: str | None
    note: str
    at: datetime

    @staticmethod
    def resolve_from_status(change) -> str | None:
        return change.from_status or None

    @staticmethod
    def resolve_actor(change) -> str | None:
        return _username(change.actor) if change.actor_id else None


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
    snoozed_until: datetime | None

    @staticmethod
    def resolve_status_label(conversation) -> str:
        return STATUS_LABELS[Status(conversation.status)]

    @staticmethod
    def resolve_archived(conversation) -> bool:
        return conversation.is_archived

    @staticmethod
    def resolve_assignee(conversation) -> str | None:
        return _username(conversation.assignee) if conversation.assignee_id else None

    @staticmethod
    def resolve_tags(conversation) -> list:
        # A list page carries its rows' tags already (the inbox's ``row_tags``).
        tags = getattr(conversation, "row_tags", None)
        return tags if tags is not None else list(conversation.tags.all())


class NoteOut(Schema):
    id: int
    text: str
    author: str | None = Field(description="The agent's username.")
    mentions: list[str] = Field(description="The usernames of the agents it mentions.")
    created_at: datetime

    @staticmethod
    def resolve_text(note) -> str:
        return note.data.get("text", "")

    @staticmethod
    def resolve_author(note) -> str | None:
        return _username(note.actor) if note.actor_id else None

    @staticmethod
    def resolve_mentions(note) -> list[str]:
        return [mention.agent.get_username() for mention in note.mentions.all()]


class ActivityOut(Schema):
    kind: str = Field(description="`assigned`, `tag_added` or `tag_removed`.")
    source: str = Field(description="Who or what: contact, agent, flow, broadcast, admin, api.")
    actor: str | None
    from_assignee: str | None = Field(None, description="`assigned`: the username before.")
    to_assignee: str | None = Field(None, description="`assigned`: the username after.")
    tag: str | None = Field(None, description="`tag_added`, `tag_removed`: the tag's name.")
    created_at: datetime

    @staticmethod
    def resolve_actor(activity) -> str | None:
        return _username(activity.actor) if activity.actor_id else None

    @staticmethod
    def resolve_tag(activity) -> str | None:
        return activity.data.get("tag")


class ConversationDetailOut(ConversationOut):
    messages: list[MessageOut]
    status_history: list[StatusChangeOut]
    rating: int | None = Field(description="The contact's satisfaction rating (1–5), if any.")
    rated_agent: str | None = Field(description="The agent the rating is for (who closed it).")

    @staticmethod
    def resolve_rated_agent(conversation) -> str | None:
        return _username(conversation.closed_by) if conversation.rating else None

    notes: list[NoteOut] = Field(description="Private notes (agents only), oldest first.")
    activity: list[ActivityOut] = Field(description="Assignment and tag changes, oldest first.")

    @staticmethod
    def resolve_status_history(conversation):
        return conversation.status_changes.all()

    @staticmethod
    def resolve_notes(conversation):
        return [a for a in conversation.activities.all() if a.kind == "note"]

    @staticmethod
    def resolve_activity(conversation):
        return [a for a in conversation.activities.all() if a.kind != "note"]


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
