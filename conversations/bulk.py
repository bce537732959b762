"""The services' set-based twins, for work on many contacts at once (a broadcast's
chunk of contacts).

The rules are those of ``services``: the transition table decides every status
change (``transitions.resolve``); rows are locked contact before conversation; every
change is recorded in the history and announced by the same hooks, one per row; a
refusal is decided before anything changes for that contact. Only the shape
differs: one statement per step for the whole set instead of a dozen per row.

Callers hold a transaction (``transaction.atomic``) and pass the targets that
:func:`lock_targets` locked in it. A refused target is marked (``refusal``) and left
untouched; the others carry on. Any other error propagates: the caller rolls the
whole set back.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from . import hooks
from .exceptions import ConversationClosed, InvalidInput, ParleyError, TagsLocked
from .models import (
    MESSAGE_MAX_LENGTH,
    Contact,
    Conversation,
    ConversationTag,
    Direction,
    Message,
    SenderKind,
    StatusChange,
    Tag,
)
from .services import _preview, clean_text
from .transitions import Event, Move, Status, resolve


def insert_rows(
    model,
    *,
    count: int,
    same: dict | None = None,
    each: dict[str, Sequence] | None = None,
    ignore_conflicts: bool = False,
) -> list[int]:
    """Insert ``count`` rows of ``model`` in one statement and return their ids.

    ``same`` holds the values every row shares, ``each`` one list per column (field
    attnames; values as you would give the model). Fields given in neither get
    their default (``auto_now``/``auto_now_add`` ones: now). On PostgreSQL the
    shared values are sent once and the lists as arrays through ``unnest()`` —
    a broadcast's rows are mostly alike, and dumping the same value a thousand
    times is what makes ``bulk_create`` slow; elsewhere this is ``bulk_create``.
    Nothing goes around the database's own checks: constraints and triggers see
    every row. ``ignore_conflicts`` skips rows a unique constraint refuses (their
    ids are then not returned)."""
    same, each = dict(same or {}), dict(each or {})
    if count == 0:
        return []
    now = timezone.now()
    meta = model._meta
    for field in meta.concrete_fields:
        if field.primary_key or field.attname in same or field.attname in each:
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            same[field.attname] = now
        else:
            same[field.attname] = field.get_default()
    if connection.vendor != "postgresql":
        objects = [
            model(**same, **{name: values[i] for name, values in each.items()})
            for i in range(count)
        ]
        model.objects.bulk_create(objects, ignore_conflicts=ignore_conflicts)
        return [o.pk for o in objects if o.pk is not None]
    fields = {f.attname: f for f in meta.concrete_fields}
    columns, selects, arrays, params = [], [], [], []
    qn = connection.ops.quote_name
    for n, (name, values) in enumerate(each.items()):
        field = fields[name]
        if len(values) != count:
            raise ValueError(f"{name}: {len(values)} values for {count} rows")
        columns.append(qn(field.column))
        selects.append(f"u.c{n}")
        arrays.append(f"%s::{field.db_type(connection)}[]")
        params.append([field.get_db_prep_save(v, connection) for v in values])
    shared = []
    for name, value in same.items():
        field = fields[name]
        columns.append(qn(field.column))
        selects.append(f"%s::{field.db_type(connection)}")
        shared.append(field.get_db_prep_save(value, connection))
    if arrays:
        source = (
            f"unnest({', '.join(arrays)}) AS u({', '.join(f'c{n}' for n in range(len(arrays)))})"
        )
    else:
        source = "generate_series(1, %s)"
        params.append(count)
    # Identifiers come from the model's metadata; every value is a parameter.
    conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    sql = "INSERT INTO {} ({}) SELECT {} FROM {}{} RETURNING {}".format(  # noqa: S608
        qn(meta.db_table),
        ", ".join(columns),
        ", ".join(selects),
        source,
        conflict,
        qn(meta.pk.column),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, shared + params)
        return [row[0] for row in cursor.fetchall()]


@dataclass(eq=False)
class Target:
    """A locked contact and its open conversation (``None`` when it has none)."""

    contact: Contact
    conversation: Conversation | None
    refusal: ParleyError | None = None
    # The last applied event's source status ("" when it opened the conversation),
    # ``None`` while nothing was applied or when the event kept the status.
    from_status: str | None = None


def lock_targets(contact_ids: Iterable[int]) -> list[Target]:
    """Lock the contacts (in primary-key order) and then their open conversations:
    two queries for the whole set. Unknown ids are left out."""
    ids = sorted(set(contact_ids))
    contacts = list(Contact.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
    open_by_contact = {
        conversation.contact_id: conversation
        for conversation in Conversation.objects.select_for_update()
        .filter(contact_id__in=ids)
        .open()
        .order_by("pk")
    }
    targets = []
    for contact in contacts:
        conversation = open_by_contact.get(contact.pk)
        if conversation is not None:
            conversation.contact = contact
        targets.append(Target(contact=contact, conversation=conversation))
    return targets


def apply_event(
    targets: Sequence[Target],
    *,
    event: Event,
    source: str,
    actor=None,
    note: str = "",
    status_before_flow: Sequence[str | None] | None = None,
) -> list[Target]:
    """``services.conversation_apply_event`` for each target: the event applies to
    its open conversation, or opens a new one where the rule says so. Returns the
    targets it applied to; the refused ones get ``refusal`` and keep their state."""
    event = Event(event)
    now = timezone.now()
    applied: list[tuple[Target, Move]] = []
    for i, target in enumerate(targets):
        conversation = target.conversation
        try:
            move = resolve(
                event,
                conversation.status if conversation else None,
                status_before_flow=status_before_flow[i] if status_before_flow else None,
            )
        except ParleyError as exc:
            target.refusal = exc
            continue
        applied.append((target, move))

    opened: dict[str, list[Target]] = defaultdict(list)
    for target, move in applied:
        if move.opens_new:
            opened[move.target].append(target)
    for status, group in opened.items():
        values = {"status": status, "last_activity_at": now, "created_at": now, "updated_at": now}
        ids = insert_rows(
            Conversation,
            count=len(group),
            same=values,
            each={"contact_id": [t.contact.pk for t in group]},
        )
        for target, pk in zip(group, ids, strict=True):
            conversation = Conversation(pk=pk, contact=target.contact, **values)
            conversation._loaded_status = status
            target.conversation = conversation
            target.from_status = ""

    # Status changes: one UPDATE per (source, target) pair; the database guard
    # checks every row's edge again.
    moving: dict[tuple[str, str], list[Target]] = defaultdict(list)
    for target, move in applied:
        if move.opens_new:
            continue
        if move.changes_status:
            moving[(target.conversation.status, move.target)].append(target)
        else:
            target.from_status = None
    for (before, after), group in moving.items():
        fields = {"status": after, "updated_at": now}
        if after == Status.CLOSED:
            fields |= {"closed_at": now, "closed_by": actor, "waiting_since": None}
        updated = Conversation.objects.filter(
            pk__in=[t.conversation.pk for t in group], status=before
        ).update(**fields)
        if updated != len(group):  # the rows were not locked as the caller promised
            raise RuntimeError(f"{len(group) - updated} conversations changed under the set")
        for target in group:
            for name, value in fields.items():
                setattr(target.conversation, name, value)
            target.conversation._loaded_status = after
            target.from_status = before

    recorded = [(t, m) for t, m in applied if m.changes_status]
    same = {"event": event, "source": source, "actor_id": actor.pk if actor else None}
    same |= {"note": note[:200], "at": now}
    each = {
        "conversation_id": [t.conversation.pk for t, _ in recorded],
        "from_status": [t.from_status for t, _ in recorded],
        "to_status": [m.target for _, m in recorded],
    }
    ids = insert_rows(StatusChange, count=len(recorded), same=same, each=each)
    for (target, move), pk in zip(recorded, ids, strict=True):
        change = StatusChange(
            pk=pk,
            conversation=target.conversation,
            from_status=target.from_status,
            to_status=move.target,
            **same,
        )
        hooks.status_changed.send(
            sender=Conversation, conversation=target.conversation, change=change, rule=move.rule
        )
    return [t for t, _ in applied]


def send_automated(
    targets: Sequence[Target],
    texts: Sequence[str],
    *,
    sender_kind: str = SenderKind.FLOW,
    author=None,
) -> list[Message]:
    """``services.message_send_automated`` for each target's conversation (one text
    per target). Refused, as a whole, when one of them is closed: the caller asked
    for something its own checks should have prevented."""
    if sender_kind not in (SenderKind.FLOW, SenderKind.BROADCAST):
        raise InvalidInput("Automated messages are sent by a flow or a broadcast.")
    texts = [clean_text(t, field="Message", max_length=MESSAGE_MAX_LENGTH) for t in texts]
    conversations = [t.conversation for t in targets]
    if any(c is None or c.is_closed for c in conversations):
        raise ConversationClosed()
    now = timezone.now()
    same = {"direction": Direction.OUTBOUND, "sender_kind": sender_kind, "created_at": now}
    same["author_id"] = author.pk if author else None
    each = {"conversation_id": [c.pk for c in conversations]}
    if len(set(texts)) == 1:  # one text for all (the usual broadcast)
        same["text"] = texts[0]
    else:
        each["text"] = texts
    ids = insert_rows(Message, count=len(conversations), same=same, each=each)
    shared = {k: v for k, v in same.items() if k != "text"}
    messages = [
        Message(pk=pk, conversation=conversation, text=text, **shared)
        for pk, conversation, text in zip(ids, conversations, texts, strict=True)
    ]
    # The inbox's denormalised columns, as ``services._touch(waiting=None)`` keeps them.
    for conversation, text in zip(conversations, texts, strict=True):
        conversation.last_activity_at = now
        conversation.last_message_preview = _preview(text)
        conversation.updated_at = now
    previews = {c.last_message_preview for c in conversations}
    if len(previews) == 1:  # one text for all: a plain UPDATE
        Conversation.objects.filter(pk__in=[c.pk for c in conversations]).update(
            last_activity_at=now, last_message_preview=previews.pop(), updated_at=now
        )
    else:  # personalised texts
        Conversation.objects.bulk_update(
            conversations, ["last_activity_at", "last_message_preview", "updated_at"]
        )
    for conversation, message in zip(conversations, messages, strict=True):
        hooks.message_sent.send(sender=Message, message=message, conversation=conversation)
    return messages


def tag_add(targets: Sequence[Target], *, tag: Tag) -> None:
    """``services.conversation_tag_add`` for each target's conversation."""
    conversations = [t.conversation for t in targets]
    if any(c is None or c.is_closed for c in conversations):
        raise TagsLocked(
            "Tags are locked: the conversation is closed, so its tags can no longer change."
        )
    now = timezone.now()
    insert_rows(
        ConversationTag,
        count=len(conversations),
        same={"tag_id": tag.pk, "added_at": now},
        each={"conversation_id": [c.pk for c in conversations]},
        ignore_conflicts=True,
    )
    Conversation.objects.filter(pk__in=[c.pk for c in conversations]).update(updated_at=now)
    for conversation in conversations:
        conversation.updated_at = now
