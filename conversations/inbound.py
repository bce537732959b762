"""The inbound engine: a contact's message stored in a handful of hand-written
statements (docs/performance.md, "Inbound throughput").

A contact's message is the most frequent write, so it is a handful of statements
written by hand rather than ORM calls: the contact and its open conversation
locked in one SELECT; when it has none, the conversation, its first history line
and the message in one INSERT; otherwise the message and the conversation's
denormalised columns in one statement. Instances handed to the hooks are built
from the rows (``Model.from_db``), so receivers see ordinary model instances.

The public service is ``services.message_receive`` (cleaning, the transaction and
its retry, the hooks); :func:`receive` is the part that writes. Locks follow
``locks``: contact, then conversation, both ``FOR NO KEY UPDATE``.
"""

import psycopg
from django.db import DEFAULT_DB_ALIAS, connection
from django.utils import timezone

from . import hooks
from .locks import open_conversation_of
from .models import Contact, Conversation, Direction, Message, SenderKind, StatusChange
from .text import preview
from .transitions import Event, Move, Status, resolve


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
           cv.closed_by_id, cv.archived_at, cv.first_response_at, cv.first_response_by_id,
           cv.first_response_seconds, cv.resolution_seconds, cv.resolved_at, cv.rating,
           cv.snoozed_until
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
            archived_at, first_response_at, first_response_by_id, first_response_seconds,
            resolution_seconds, resolved_at, rating, snoozed_until
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
            "preview": preview(text),
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
    shown = preview(text)
    params = {
        "conversation": conversation.pk,
        "direction": str(Direction.INBOUND),
        "sender_kind": str(SenderKind.CONTACT),
        "text": text,
        "now": now,
        "preview": shown,
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
    conversation.last_message_preview = shown
    conversation.waiting_since = waiting
    if move.changes_status:
        _announce_inbound_change(conversation, move, change_id, before, source=source, now=now)
    return _inbound_message(conversation, message_id, text, now)


def receive(
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
    if move.rule.closes_resolved:  # its survey awaited: an answer, or it closes
        from .services import survey_reply  # services imports this module

        message = survey_reply(conversation, text=text, source=source)
        if message is not None:
            return contact, created, conversation, message
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
