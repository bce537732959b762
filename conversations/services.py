"""The only code that writes conversations.

Every service is keyword-only, runs inside ``transaction.atomic``, re-reads the row
with ``select_for_update()``, asks the transition table (``transitions.resolve``),
saves with ``update_fields``, writes the StatusChange, and raises a typed refusal
(``exceptions``) before changing anything. Rows are always locked in the same
order, contact before conversation, so concurrent services never deadlock.
"""

import re
from contextvars import ContextVar
from dataclasses import dataclass

import psycopg
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, transaction
from django.utils import timezone

from . import hooks
from .exceptions import (
    ContactExists,
    ConversationClosed,
    InvalidInput,
    TagsLocked,
)
from .locks import lock_contact, lock_conversation, open_conversation_of, retrying_atomic
from .models import (
    MESSAGE_MAX_LENGTH,
    PREVIEW_LENGTH,
    Contact,
    Conversation,
    ConversationTag,
    Direction,
    Message,
    SenderKind,
    Source,
    StatusChange,
    Tag,
)
from .transitions import Event, Move, Status, resolve

CHANNEL_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
TAG_COLOUR_DEFAULT = "#64748b"


# --- input cleaning ---------------------------------------------------------------


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


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_LENGTH else flat[: PREVIEW_LENGTH - 1] + "…"


# --- internals --------------------------------------------------------------------


# The status changes recorded meanwhile, while ``message_receive`` hands a message to
# its receivers (so that it knows whether to re-read the conversation).
_recorded: ContextVar[list | None] = ContextVar("conversations_recorded", default=None)


def _record(
    conversation: Conversation,
    *,
    from_status: str,
    move: Move,
    source: str,
    actor,
    note: str = "",
    at=None,
) -> StatusChange:
    change = StatusChange.objects.create(
        conversation=conversation,
        from_status=from_status,
        to_status=move.target,
        event=move.rule.event,
        source=source,
        actor=actor,
        note=note[:200],
    )
    hooks.status_changed.send(
        sender=Conversation, conversation=conversation, change=change, rule=move.rule
    )
    if (noted := _recorded.get()) is not None:
        noted.append(change)
    return change


def _start_conversation(
    contact: Contact, move: Move, *, source: str, actor, note: str = "", now=None
) -> Conversation:
    now = now or timezone.now()
    conversation = Conversation.objects.create(
        contact=contact, status=move.target, last_activity_at=now
    )
    _record(conversation, from_status="", move=move, source=source, actor=actor, note=note)
    return conversation


def _change_status(
    conversation: Conversation,
    move: Move,
    *,
    source: str,
    actor,
    note: str = "",
    now=None,
    save: bool = True,
) -> list[str]:
    """Apply ``move`` to a locked conversation and record it; with ``save=False``
    the caller saves the returned fields together with its own (one update of the
    row per transaction, see ``locks``)."""
    before = conversation.status
    fields = ["status", "updated_at"]
    conversation.status = move.target
    if move.target == Status.CLOSED:
        conversation.closed_at = now or timezone.now()
        conversation.closed_by = actor
        conversation.waiting_since = None
        fields += ["closed_at", "closed_by", "waiting_since"]
    if save:
        conversation.save(update_fields=fields)
    _record(conversation, from_status=before, move=move, source=source, actor=actor, note=note)
    return fields


def _touch(
    conversation: Conversation, message: Message, *, waiting: bool | None, save: bool = True
) -> list[str]:
    """Keep the inbox's denormalised columns in step with the newest message (the
    fields are returned, and saved unless ``save=False``)."""
    conversation.last_activity_at = message.created_at
    conversation.last_message_preview = _preview(message.text)
    fields = ["last_activity_at", "last_message_preview", "updated_at"]
    if waiting is True and conversation.waiting_since is None:
        conversation.waiting_since = message.created_at
        fields.append("waiting_since")
    elif waiting is False and conversation.waiting_since is not None:
        conversation.waiting_since = None
        fields.append("waiting_since")
    if save:
        conversation.save(update_fields=fields)
    return fields


# --- contacts ---------------------------------------------------------------------


@retrying_atomic
def contact_create(
    *,
    channel: str,
    external_id: str,
    name: str = "",
    attributes: dict | None = None,
    source: str = Source.ADMIN,
    actor=None,
) -> Contact:
    """Create a contact and its first conversation, Not contacted (§3 row 1)."""
    channel = clean_channel(channel)
    external_id = clean_text(external_id, field="External id", max_length=255)
    name = clean_text(name, field="Name", max_length=200, required=False)
    if attributes is not None and not isinstance(attributes, dict):
        raise InvalidInput("Attributes must be an object.")
    if Contact.objects.filter(channel=channel, external_id=external_id).exists():
        raise ContactExists()
    try:
        with transaction.atomic():
            contact = Contact.objects.create(
                channel=channel, external_id=external_id, name=name, attributes=attributes or {}
            )
    except IntegrityError as exc:  # created by someone else a moment ago
        raise ContactExists() from exc
    move = resolve(Event.CONTACT_CREATED, None)
    _start_conversation(contact, move, source=source, actor=actor)
    return contact


# --- inbound messages: the hot path (docs/performance.md, "Inbound API") ------------
#
# A contact's message is the most frequent write, so it is a handful of statements
# written by hand rather than ORM calls: the contact and its open conversation
# locked in one SELECT; when it has none, the conversation, its first history line
# and the message in one INSERT; otherwise the message and the conversation's
# denormalised columns in one statement. Instances handed to the hooks are built
# from the rows (``Model.from_db``), so receivers see ordinary model instances.


def _from_row(model, row):
    """A model instance from a row holding all its concrete fields, in order."""
    fields = model._meta.concrete_fields
    if len(row) != len(fields):  # the SQL below no longer matches the model
        raise ValueError(f"{model.__name__}: {len(row)} values for {len(fields)} fields")
    instance = model.from_db(DEFAULT_DB_ALIAS, [f.attname for f in fields], row)
    if model is Contact:  # jsonb arrives as text, as it does for the ORM's converters
        field = Contact._meta.get_field("attributes")
        instance.attributes = field.from_db_value(instance.attributes, None, connection)
    return instance


def _loaded(model, **values):
    """A model instance for a row written here, from its values by attribute name."""
    return _from_row(model, [values[f.attname] for f in model._meta.concrete_fields])


# Every column of the model, in the model's field order (test_inbound_statements.py
# checks them against the models). The predicate of an open conversation is word for
# word that of the index conversation_one_open_per_contact, so ON CONFLICT infers it.
SQL_LOCKED_OPEN = """
    SELECT ct.id, ct.channel, ct.external_id, ct.name, ct.attributes, ct.created_at,
           cv.id, cv.contact_id, cv.status, cv.assignee_id, cv.created_at, cv.updated_at,
           cv.last_activity_at, cv.waiting_since, cv.last_message_preview, cv.closed_at,
           cv.closed_by_id, cv.archived_at
    FROM conversations_contact ct
    JOIN conversations_conversation cv ON cv.contact_id = ct.id AND NOT (cv.status = 'closed')
    WHERE ct.channel = %s AND ct.external_id = %s
    FOR NO KEY UPDATE OF ct, cv
"""
SQL_LOCKED_CONTACT = """
    SELECT id, channel, external_id, name, attributes, created_at
    FROM conversations_contact WHERE channel = %s AND external_id = %s
    FOR NO KEY UPDATE
"""
SQL_INSERT_CONTACT = """
    INSERT INTO conversations_contact (channel, external_id, name, attributes, created_at)
    VALUES (%s, %s, %s, '{}', %s)
    ON CONFLICT (channel, external_id) DO NOTHING
    RETURNING id, channel, external_id, name, attributes, created_at
"""
SQL_OPEN_WITH_MESSAGE = """
    WITH cv AS (
        INSERT INTO conversations_conversation (contact_id, status, created_at, updated_at,
            last_activity_at, waiting_since, last_message_preview)
        VALUES (%(contact)s, %(status)s, %(now)s, %(now)s, %(now)s, %(waiting)s, %(preview)s)
        ON CONFLICT (contact_id) WHERE NOT (status = 'closed') DO NOTHING
        RETURNING id, contact_id, status, assignee_id, created_at, updated_at,
            last_activity_at, waiting_since, last_message_preview, closed_at, closed_by_id,
            archived_at
    ), sc AS (
        INSERT INTO conversations_statuschange (conversation_id, from_status, to_status, event,
            source, note, at)
        SELECT id, '', %(status)s, %(event)s, %(source)s, '', %(now)s FROM cv
        RETURNING id
    ), m AS (
        INSERT INTO conversations_message (conversation_id, direction, sender_kind, text,
            created_at)
        SELECT id, %(direction)s, %(sender_kind)s, %(text)s, %(now)s FROM cv
        RETURNING id
    )
    SELECT cv.*, sc.id, m.id FROM cv, sc, m
"""
SQL_APPEND_MESSAGE = """
    WITH m AS (
        INSERT INTO conversations_message (conversation_id, direction, sender_kind, text,
            created_at)
        VALUES (%(conversation)s, %(direction)s, %(sender_kind)s, %(text)s, %(now)s)
        RETURNING id
    )
    UPDATE conversations_conversation
    SET last_activity_at = %(now)s, updated_at = %(now)s,
        last_message_preview = %(preview)s, waiting_since = %(waiting)s
    WHERE id = %(conversation)s
    RETURNING (SELECT id FROM m)
"""
SQL_APPEND_MESSAGE_AND_STATUS = """
    WITH m AS (
        INSERT INTO conversations_message (conversation_id, direction, sender_kind, text,
            created_at)
        VALUES (%(conversation)s, %(direction)s, %(sender_kind)s, %(text)s, %(now)s)
        RETURNING id
    ), sc AS (
        INSERT INTO conversations_statuschange (conversation_id, from_status, to_status, event,
            source, note, at)
        VALUES (%(conversation)s, %(from_status)s, %(status)s, %(event)s, %(source)s, '',
            %(now)s)
        RETURNING id
    )
    UPDATE conversations_conversation
    SET status = %(status)s, last_activity_at = %(now)s, updated_at = %(now)s,
        last_message_preview = %(preview)s, waiting_since = %(waiting)s
    WHERE id = %(conversation)s
    RETURNING (SELECT id FROM m), (SELECT id FROM sc)
"""


class _PreparedCursor(psycopg.Cursor):
    """Server-side binding, and each statement prepared once per connection: the
    inbound statements are planned once, not once per message."""

    def execute(self, query, params=None, **kwargs):
        return super().execute(query, params, prepare=True, **kwargs)


def _fetchone(sql: str, params):
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    with connection.wrap_database_errors:
        cursor = connection._prepare_cursor(_PreparedCursor(raw))
    with cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _locked_contact_and_open_conversation(channel: str, external_id: str):
    """(contact, its open conversation), both locked, or None."""
    row = _fetchone(SQL_LOCKED_OPEN, (channel, external_id))
    if row is None:
        return None
    width = len(Contact._meta.concrete_fields)
    contact = _from_row(Contact, row[:width])
    conversation = _from_row(Conversation, row[width:])
    conversation.contact = contact
    return contact, conversation


def _contact_for_inbound(channel: str, external_id: str, name: str, now) -> tuple[Contact, bool]:
    """Get and lock the contact, creating it if unknown (race-safe, no savepoint)."""
    row = _fetchone(SQL_LOCKED_CONTACT, (channel, external_id))
    created = False
    if row is None:
        # ON CONFLICT instead of a savepoint: a contact created a moment ago by
        # another request is a conflict (this waits for that request), not an error.
        row = _fetchone(SQL_INSERT_CONTACT, (channel, external_id, name, now))
        created = row is not None
        if row is None:
            row = _fetchone(SQL_LOCKED_CONTACT, (channel, external_id))
    return _from_row(Contact, row), created


def _inbound_message(conversation: Conversation, message_id: int, text: str, now) -> Message:
    message = _loaded(
        Message,
        id=message_id,
        conversation_id=conversation.pk,
        direction=Direction.INBOUND,
        sender_kind=SenderKind.CONTACT,
        author_id=None,
        text=text,
        created_at=now,
    )
    message.conversation = conversation
    return message


def _open_with_message(contact: Contact, move: Move, *, text: str, source: str, now):
    """A new conversation for ``contact`` (locked) holding the message, or None when
    another transaction opened one first."""
    waiting = now if move.target != Status.IN_FLOW else None
    row = _fetchone(
        SQL_OPEN_WITH_MESSAGE,
        {
            "contact": contact.pk,
            "status": str(move.target),
            "now": now,
            "waiting": waiting,
            "preview": _preview(text),
            "event": str(move.rule.event),
            "source": str(source),
            "direction": str(Direction.INBOUND),
            "sender_kind": str(SenderKind.CONTACT),
            "text": text,
        },
    )
    if row is None:
        return None
    width = len(Conversation._meta.concrete_fields)
    conversation = _from_row(Conversation, row[:width])
    conversation.contact = contact
    change_id, message_id = row[width:]
    _announce_inbound_change(conversation, move, change_id, "", source=source, now=now)
    return conversation, _inbound_message(conversation, message_id, text, now)


def _announce_inbound_change(
    conversation: Conversation, move: Move, change_id: int, from_status: str, *, source, now
) -> None:
    """Send ``hooks.status_changed`` for the history line the inbound SQL wrote."""
    change = _loaded(
        StatusChange,
        id=change_id,
        conversation_id=conversation.pk,
        from_status=from_status,
        to_status=move.target,
        event=move.rule.event,
        source=source,
        actor_id=None,
        note="",
        at=now,
    )
    change.conversation = conversation
    hooks.status_changed.send(
        sender=Conversation, conversation=conversation, change=change, rule=move.rule
    )


def _append_message(
    conversation: Conversation, move: Move, *, text: str, source: str, now
) -> Message:
    """Store the message in a locked open conversation, apply the move (Not contacted
    → New) and bring its inbox columns up to date (an agent is awaited, except in a
    flow: the flow answers), in one statement. The status edge is checked by the
    transition table here and by the database's trigger."""
    waiting = conversation.waiting_since
    if move.target != Status.IN_FLOW and waiting is None:
        waiting = now
    preview = _preview(text)
    params = {
        "conversation": conversation.pk,
        "direction": str(Direction.INBOUND),
        "sender_kind": str(SenderKind.CONTACT),
        "text": text,
        "now": now,
        "preview": preview,
        "waiting": waiting,
    }
    before = conversation.status
    if move.changes_status:
        params |= {
            "from_status": str(before),
            "status": str(move.target),
            "event": str(move.rule.event),
            "source": str(source),
        }
        message_id, change_id = _fetchone(SQL_APPEND_MESSAGE_AND_STATUS, params)
        conversation.status = conversation._loaded_status = move.target
    else:
        (message_id,) = _fetchone(SQL_APPEND_MESSAGE, params)
    conversation.last_activity_at = conversation.updated_at = now
    conversation.last_message_preview = preview
    conversation.waiting_since = waiting
    if move.changes_status:
        _announce_inbound_change(conversation, move, change_id, before, source=source, now=now)
    return _inbound_message(conversation, message_id, text, now)


def _receive(
    channel: str, external_id: str, name: str, text: str, source: str
) -> tuple[Contact, bool, Conversation, Message]:
    """Lock (or create) the contact and its open conversation, open one if needed,
    store the message: the contact, whether it was created, the conversation (its
    state after the message) and the message."""
    now = timezone.now()
    found = _locked_contact_and_open_conversation(channel, external_id)
    if found is not None:
        contact, conversation = found
        created = False
    else:
        contact, created = _contact_for_inbound(channel, external_id, name, now)
        conversation = None
    move = resolve(Event.CONTACT_WRITES, conversation.status if conversation else None)
    while move.opens_new:
        opened = _open_with_message(contact, move, text=text, source=source, now=now)
        if opened is not None:
            return contact, created, *opened
        # Opened by another request since this statement's snapshot: write into it
        # (unless it was closed meanwhile: then open one again; nobody else can open
        # one now, this transaction holds the contact).
        conversation = open_conversation_of(contact)
        if conversation is not None:
            conversation.contact = contact
            move = resolve(Event.CONTACT_WRITES, conversation.status)
    message = _append_message(conversation, move, text=text, source=source, now=now)
    return contact, created, conversation, message


# --- messages ---------------------------------------------------------------------


@dataclass(frozen=True)
class Inbound:
    message: Message
    conversation: Conversation
    contact_created: bool


@retrying_atomic
def message_receive(
    *,
    channel: str,
    external_id: str,
    text: str,
    name: str | None = None,
    source: str = Source.CONTACT,
) -> Inbound:
    """A contact writes. Creates the contact if unknown; opens a new conversation
    when none is open (the closed one stays in history untouched).

    Statements (besides BEGIN and COMMIT): 2 when the contact has an open
    conversation (Not contacted → New included); 3 when it has none; 4 for a new
    contact (tests/conversations/test_inbound_statements.py holds these numbers)."""
    channel = clean_channel(channel)
    external_id = clean_text(external_id, field="External id", max_length=255)
    text = clean_text(text, field="Message", max_length=MESSAGE_MAX_LENGTH)
    name = clean_text(name, field="Name", max_length=200, required=False)
    contact, created, conversation, message = _receive(channel, external_id, name, text, source)
    if name and not created and contact.name != name:
        contact.name = name
        contact.save(update_fields=["name"])

    recorded = _recorded.set([])
    try:
        responses = hooks.message_received.send(
            sender=Message, message=message, conversation=conversation
        )
        moved = bool(_recorded.get()) or any(acted for _, acted in responses)
    finally:
        _recorded.reset(recorded)
    # A receiver moved the conversation on (a keyword flow, a running flow): answer
    # with the state it is really in. Otherwise the instance is up to date.
    if moved:
        conversation.refresh_from_db()
    return Inbound(message=message, conversation=conversation, contact_created=created)


@retrying_atomic
def conversation_reply(
    *, conversation: Conversation | int, agent, text: str, source: str = Source.AGENT
) -> Message:
    """An agent answers. Takes over from a running flow; assigns the conversation
    to the agent when nobody has it; refused on a closed conversation."""
    text = clean_text(text, field="Reply", max_length=MESSAGE_MAX_LENGTH)
    conversation = lock_conversation(conversation)
    move = resolve(Event.AGENT_REPLY, conversation.status, conversation.is_archived)
    fields = []
    if move.changes_status:
        fields += _change_status(conversation, move, source=source, actor=agent, save=False)
    message = Message.objects.create(
        conversation=conversation,
        direction=Direction.OUTBOUND,
        sender_kind=SenderKind.AGENT,
        author=agent,
        text=text,
    )
    if conversation.assignee_id is None:
        conversation.assignee = agent
        fields.append("assignee")
    fields += _touch(conversation, message, waiting=False, save=False)
    # One update of the row (status, assignee and inbox columns together).
    conversation.save(update_fields=list(dict.fromkeys(fields)))
    hooks.message_sent.send(sender=Message, message=message, conversation=conversation)
    return message


@retrying_atomic
def message_send_automated(
    *,
    conversation: Conversation | int,
    text: str,
    sender_kind: str = SenderKind.FLOW,
    author=None,
) -> Message:
    """A flow or a broadcast sends a message. No status change; refused when the
    conversation is closed."""
    if sender_kind not in (SenderKind.FLOW, SenderKind.BROADCAST):
        raise InvalidInput("Automated messages are sent by a flow or a broadcast.")
    text = clean_text(text, field="Message", max_length=MESSAGE_MAX_LENGTH)
    conversation = lock_conversation(conversation)
    if conversation.is_closed:
        raise ConversationClosed()
    message = Message.objects.create(
        conversation=conversation,
        direction=Direction.OUTBOUND,
        sender_kind=sender_kind,
        author=author,
        text=text,
    )
    _touch(conversation, message, waiting=None)
    hooks.message_sent.send(sender=Message, message=message, conversation=conversation)
    return message


# --- status events ----------------------------------------------------------------


@retrying_atomic
def conversation_apply_event(
    *,
    event: Event,
    source: str,
    conversation: Conversation | int | None = None,
    contact: Contact | int | None = None,
    actor=None,
    note: str = "",
    status_before_flow: str | None = None,
) -> Conversation:
    """Apply a status event from the table to a contact's conversation.

    Used for the flow events (start, priority start, keyword, mark in progress,
    hand off, close, complete). Give ``conversation`` or ``contact``; when the
    conversation is closed (or the contact has none open) and the rule opens a new
    conversation, the new one is returned. Refusals raise before any change.
    """
    event = Event(event)
    if conversation is None and contact is None:
        raise InvalidInput("A conversation or a contact is needed.")
    if conversation is not None:
        contact_id = (
            conversation.contact_id
            if isinstance(conversation, Conversation)
            else Conversation.objects.values_list("contact_id", flat=True).get(pk=conversation)
        )
    else:
        contact_id = contact.pk if isinstance(contact, Contact) else contact
    locked_contact = lock_contact(contact_id)
    # The event applies to the contact's current (open) conversation; a closed one
    # is history, so with none open the rule decides whether a new one starts.
    target = open_conversation_of(locked_contact)
    move = resolve(
        event,
        target.status if target else None,
        status_before_flow=status_before_flow,
    )
    if move.opens_new:
        return _start_conversation(locked_contact, move, source=source, actor=actor, note=note)
    if move.changes_status:
        _change_status(target, move, source=source, actor=actor, note=note)
    return target


@retrying_atomic
def conversation_close(
    *, conversation: Conversation | int, actor=None, source: str = Source.AGENT, note: str = ""
) -> Conversation:
    """Close (agent, admin, API): history from now on; tags lock; a running flow
    run is cancelled (the flows app listens to ``hooks.status_changed``)."""
    conversation = lock_conversation(conversation)
    move = resolve(Event.CLOSE, conversation.status, conversation.is_archived)
    _change_status(conversation, move, source=source, actor=actor, note=note)
    return conversation


@retrying_atomic
def conversation_archive(
    *, conversation: Conversation | int, actor=None, source: str = Source.AGENT
) -> Conversation:
    conversation = lock_conversation(conversation)
    move = resolve(Event.ARCHIVE, conversation.status, conversation.is_archived)
    conversation.archived_at = timezone.now()
    conversation.save(update_fields=["archived_at", "updated_at"])
    _record(conversation, from_status=Status.CLOSED, move=move, source=source, actor=actor)
    return conversation


@retrying_atomic
def conversation_unarchive(
    *, conversation: Conversation | int, actor=None, source: str = Source.AGENT
) -> Conversation:
    conversation = lock_conversation(conversation)
    move = resolve(Event.UNARCHIVE, conversation.status, conversation.is_archived)
    conversation.archived_at = None
    conversation.save(update_fields=["archived_at", "updated_at"])
    _record(conversation, from_status=Status.CLOSED, move=move, source=source, actor=actor)
    return conversation


@retrying_atomic
def conversation_assign(
    *, conversation: Conversation | int, assignee, actor=None, source: str = Source.AGENT
) -> Conversation:
    """Give the conversation to an agent (or to nobody with ``assignee=None``)."""
    conversation = lock_conversation(conversation)
    if conversation.is_closed:
        raise ConversationClosed(
            "Cannot assign: the conversation is closed, and closed conversations are read-only."
        )
    if assignee is not None and not assignee.is_active:
        raise InvalidInput("Conversations can only be assigned to active agents.")
    if conversation.assignee_id != (assignee.pk if assignee else None):
        conversation.assignee = assignee
        conversation.save(update_fields=["assignee", "updated_at"])
    return conversation


# --- tags -------------------------------------------------------------------------


def tag_get_or_create(*, name: str, colour: str | None = None) -> Tag:
    name = clean_text(name, field="Tag name", max_length=50)
    tag = Tag.objects.filter(name__iexact=name).first()
    if tag is not None:
        return tag
    try:
        with transaction.atomic():
            return Tag.objects.create(name=name, colour=colour or TAG_COLOUR_DEFAULT)
    except IntegrityError:
        return Tag.objects.get(name__iexact=name)


def _locked_open_conversation(conversation: Conversation | int) -> Conversation:
    conversation = lock_conversation(conversation)
    if conversation.is_closed:
        raise TagsLocked(
            "Tags are locked: the conversation is closed, so its tags can no longer change."
        )
    return conversation


@retrying_atomic
def conversation_tag_add(
    *,
    conversation: Conversation | int,
    tag: Tag | str,
    actor=None,
    source: str = Source.AGENT,
) -> Tag:
    """Add a tag (created on first use when given by name) to an open conversation."""
    conversation = _locked_open_conversation(conversation)
    if not isinstance(tag, Tag):
        tag = tag_get_or_create(name=tag)
    _, created = ConversationTag.objects.get_or_create(conversation=conversation, tag=tag)
    if created:
        conversation.save(update_fields=["updated_at"])  # the inbox's change marker
    return tag


@retrying_atomic
def conversation_tag_remove(
    *,
    conversation: Conversation | int,
    tag: Tag | str,
    actor=None,
    source: str = Source.AGENT,
) -> bool:
    """Remove a tag from an open conversation; returns whether it carried it."""
    conversation = _locked_open_conversation(conversation)
    if not isinstance(tag, Tag):
        name = clean_text(tag, field="Tag name", max_length=50)
        tag = Tag.objects.filter(name__iexact=name).first()
        if tag is None:
            return False
    link = ConversationTag.objects.filter(conversation=conversation, tag=tag).first()
    if link is None:
        return False
    link.delete()
    conversation.save(update_fields=["updated_at"])  # the inbox's change marker
    return True
