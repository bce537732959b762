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
from dataclasses import dataclass, field

from django.db import connection
from django.db.models.expressions import RawSQL
from django.utils import timezone

from . import hooks
from .exceptions import ConversationClosed, InvalidInput, ParleyError, TagsLocked
from .inbox_settings import inbox_settings
from .models import (
    MESSAGE_MAX_LENGTH,
    Activity,
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
from .text import clean_text, preview
from .transitions import Event, Move, Status, resolve


def _resolution_seconds(now):
    """services._seconds(created_at, now) for a set of rows, once."""
    return RawSQL(
        "coalesce(resolution_seconds,"
        " greatest(0, round(extract(epoch FROM %s - created_at)))::integer)",
        [now],
    )


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
    their default (``auto_now``/``auto_now_add`` ones: now). The shared values are
    sent once and the lists as arrays through ``unnest()`` — a broadcast's rows are
    mostly alike, and dumping the same value a thousand times is what makes
    ``bulk_create`` slow.
    Nothing goes around the database's own checks: constraints and triggers see
    every row. ``ignore_conflicts`` skips rows a unique constraint refuses (their
    ids are then not returned)."""
    same, each = dict(same or {}), dict(each or {})
    if count == 0:
        return []
    now = timezone.now()
    meta = model._meta
    for model_field in meta.concrete_fields:
        name = model_field.attname
        if model_field.primary_key or name in same or name in each:
            continue
        if getattr(model_field, "auto_now", False) or getattr(model_field, "auto_now_add", False):
            same[name] = now
        else:
            same[name] = model_field.get_default()
    fields = {f.attname: f for f in meta.concrete_fields}
    for name, values in list(each.items()):  # a column alike in every row is sent once
        if len(values) == count and all(v == values[0] for v in values):
            same[name] = values[0]
            del each[name]
    columns, selects, arrays, params = [], [], [], []
    qn = connection.ops.quote_name
    for n, (name, values) in enumerate(each.items()):
        model_field = fields[name]
        if len(values) != count:
            raise ValueError(f"{name}: {len(values)} values for {count} rows")
        columns.append(qn(model_field.column))
        selects.append(f"u.c{n}")
        arrays.append(f"%s::{model_field.db_type(connection)}[]")
        params.append([model_field.get_db_prep_save(v, connection) for v in values])
    shared = []
    for name, value in same.items():
        model_field = fields[name]
        columns.append(qn(model_field.column))
        selects.append(f"%s::{model_field.db_type(connection)}")
        shared.append(model_field.get_db_prep_save(value, connection))
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
    # Write-behind (``defer=True``): the conversation's columns not yet written, the
    # status its row has meanwhile, and the hooks to send once it is written.
    pending: dict = field(default_factory=dict)
    pending_from: str | None = None
    pending_hooks: list = field(default_factory=list)


def lock_targets(contact_ids: Iterable[int]) -> list[Target]:
    """Lock the contacts (in primary-key order) and then their open conversations:
    two queries for the whole set. Unknown ids are left out."""
    ids = sorted(set(contact_ids))
    contacts = list(
        Contact.objects.select_for_update(no_key=True).filter(pk__in=ids).order_by("pk")
    )
    open_by_contact = {
        conversation.contact_id: conversation
        for conversation in Conversation.objects.select_for_update(no_key=True)
        .filter(contact_id__in=ids)
        .current()
        .order_by("pk")
    }
    targets = []
    for contact in contacts:
        conversation = open_by_contact.get(contact.pk)
        if conversation is not None:
            conversation.contact = contact
        targets.append(Target(contact=contact, conversation=conversation))
    return targets


def flush(targets: Sequence[Target]) -> None:
    """Write the conversation columns the deferred calls left pending — one UPDATE
    per set of equal values (the database's edge trigger checks each row's status
    change) — then send their hooks, in order."""
    groups: dict[tuple, list[Target]] = defaultdict(list)
    for target in targets:
        if target.pending:
            key = (target.pending_from, *sorted(target.pending.items(), key=lambda kv: kv[0]))
            groups[key].append(target)
    if len(groups) == 1:  # the usual broadcast: every row gets the same values
        for key, group in groups.items():
            before, values = key[0], dict(key[1:])
            rows = Conversation.objects.filter(pk__in=[t.conversation.pk for t in group])
            if before is not None:
                rows = rows.filter(status=before)
            if rows.update(**values) != len(group):  # not locked as the caller promised
                raise RuntimeError("conversations changed under the set")
    elif groups:  # personalised or mixed values: one UPDATE with a CASE per column
        fields = sorted({name for t in targets for name in t.pending})
        Conversation.objects.bulk_update([t.conversation for t in targets if t.pending], fields)
    for target in targets:
        target.pending, target.pending_from = {}, None
        if target.conversation is not None:
            target.conversation._loaded_status = target.conversation.status
        hooks_to_send, target.pending_hooks = target.pending_hooks, []
        for signal, kwargs in hooks_to_send:
            signal.send(**kwargs)


def _hook(target: Target, defer: bool, signal, **kwargs) -> None:
    if defer:
        target.pending_hooks.append((signal, kwargs))
    else:
        signal.send(**kwargs)


def apply_event(
    targets: Sequence[Target],
    *,
    event: Event,
    source: str,
    actor=None,
    note: str = "",
    status_before_flow: Sequence[str | None] | None = None,
    defer: bool = False,
) -> list[Target]:
    """``services.apply_event`` for each target: the event applies to
    its open conversation, or opens a new one where the rule says so. Returns the
    targets it applied to; the refused ones get ``refusal`` and keep their state.

    With ``defer`` the changes of existing conversation rows are written (and the
    hooks sent) by :func:`flush`, together with what later deferred calls change, so
    that a status change and the message that follows it cost one row version, not
    two. A new conversation's row is inserted at once."""
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
    # A row gets one pending status change at a time, so the trigger sees each edge,
    # and what is pending is written (and its hooks sent) before its status changes.
    flush([t for t, m in applied if m.changes_status and (t.pending or t.pending_hooks)])
    archive = inbox_settings().archive_on_close
    ending = [t for t, m in applied if m.rule.closes_resolved]
    if ending:  # their survey was awaited: closed without a rating first
        _close_resolved(ending, event, source=source, actor=actor, note=note, archive=archive)

    opened: dict[str, list[Target]] = defaultdict(list)
    for target, move in applied:
        if move.opens_new:
            opened[move.target].append(target)
    for status, group in opened.items():
        # Written now, deferred or not: its history lines and messages follow it (the
        # reports' triggers count a line under its conversation's channel and tags).
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

    # Status changes of existing rows: one UPDATE per (source, target) pair, now or
    # at flush(); the database guard checks every row's edge again.
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
            fields |= {"closed_at": now, "closed_by_id": actor.pk if actor else None}
            if archive:
                fields["archived_at"] = now
        # As services._waiting_after: nobody waits in a flow; a flow handing it to
        # the agents (New) starts the wait.
        if after in (Status.CLOSED, Status.RESOLVED, Status.IN_FLOW) or before == Status.IN_FLOW:
            fields["waiting_since"] = now if after == Status.NEW else None
        if after in (Status.CLOSED, Status.RESOLVED):
            fields["resolution_seconds"] = _resolution_seconds(now)
        for target in group:
            target.pending.update(fields)
            target.pending_from = before
            for name, value in fields.items():
                setattr(target.conversation, name, value)
            target.from_status = before
        if not defer:
            flush(group)

    recorded = [(t, m) for t, m in applied if m.changes_status]
    _record(recorded, event, source=source, actor=actor, note=note, now=now, defer=defer)
    if archive:
        closes = [(t, m) for t, m in recorded if not m.opens_new and m.target == Status.CLOSED]
        _record_archived(closes, source=source, actor=actor, now=now, defer=defer)
    return [t for t, _ in applied]


def _record(recorded, event, *, source, actor, note, now, defer, from_status=None) -> None:
    """The history lines of ``recorded`` (target, move) pairs, in one INSERT, and their
    hooks (now, or at :func:`flush` with ``defer``)."""
    same = {"event": event, "source": source, "actor_id": actor.pk if actor else None}
    same |= {"note": note[:200], "at": now}
    froms = [from_status or t.from_status for t, _ in recorded]
    each = {
        "conversation_id": [t.conversation.pk for t, _ in recorded],
        "from_status": froms,
        "to_status": [m.target for _, m in recorded],
    }
    ids = insert_rows(StatusChange, count=len(recorded), same=same, each=each)
    for (target, move), pk, before in zip(recorded, ids, froms, strict=True):
        change = StatusChange(
            pk=pk,
            conversation=target.conversation,
            from_status=before,
            to_status=move.target,
            **same,
        )
        _hook(
            target,
            defer,
            hooks.status_changed,
            sender=Conversation,
            conversation=target.conversation,
            change=change,
            rule=move.rule,
        )


def _record_archived(closes, *, source, actor, now, defer) -> None:
    """Archive on close (the settings): the archive lines of conversations just closed."""
    if closes:
        move = resolve(Event.ARCHIVE, Status.CLOSED)
        lines = [(t, move) for t, _ in closes]
        _record(
            lines,
            Event.ARCHIVE,
            source=source,
            actor=actor,
            note="",
            now=now,
            defer=defer,
            from_status=Status.CLOSED,
        )


def _close_resolved(targets, event, *, source, actor, note, archive: bool) -> None:
    """Close the targets' resolved conversations (no rating), before the rule opens
    new ones: one UPDATE, their lines in one INSERT."""
    now = timezone.now()
    values = {"status": Status.CLOSED, "closed_at": now, "updated_at": now}
    values |= {"waiting_since": None, "archived_at": now if archive else None}
    rows = Conversation.objects.filter(
        pk__in=[t.conversation.pk for t in targets], status=Status.RESOLVED
    )
    if rows.update(**values) != len(targets):  # not locked as the caller promised
        raise RuntimeError("conversations changed under the set")
    ending = []
    for target in targets:
        for name, value in values.items():
            setattr(target.conversation, name, value)
        target.conversation._loaded_status = Status.CLOSED
        rule = resolve(event, Status.RESOLVED).rule
        ending.append((target, Move(rule=rule, source=Status.RESOLVED, target=Status.CLOSED)))
    _record(
        ending,
        event,
        source=source,
        actor=actor,
        note=note,
        now=now,
        defer=False,
        from_status=Status.RESOLVED,
    )
    if archive:
        _record_archived(ending, source=source, actor=actor, now=now, defer=False)


def send_automated(
    targets: Sequence[Target],
    texts: Sequence[str],
    *,
    sender_kind: str = SenderKind.FLOW,
    author=None,
    defer: bool = False,
    templates: Sequence[dict | None] | None = None,
) -> list[Message]:
    """``services.message_send_automated`` for each target's conversation (one text
    per target). Refused, as a whole, when one of them is closed: the caller asked
    for something its own checks should have prevented. ``defer``: see
    :func:`apply_event`."""
    if sender_kind not in (SenderKind.FLOW, SenderKind.BROADCAST):
        raise InvalidInput("Automated messages are sent by a flow or a broadcast.")
    texts = [clean_text(t, field="Message", max_length=MESSAGE_MAX_LENGTH) for t in texts]
    conversations = [t.conversation for t in targets]
    if any(c is None or c.is_closed for c in conversations):
        raise ConversationClosed()
    templates = templates or [None] * len(targets)
    texts = [
        hooks.outbound_text(conversation=c, text=text, sender_kind=sender_kind, template=t)
        for c, text, t in zip(conversations, texts, templates, strict=True)
    ]
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
    messages = []
    for target, pk, text, template in zip(targets, ids, texts, templates, strict=True):
        conversation = target.conversation
        message = Message(pk=pk, conversation=conversation, text=text, **shared)
        messages.append(message)
        # The inbox's denormalised columns, as ``services._touch(waiting=None)``.
        touch = {
            "last_activity_at": now,
            "last_message_preview": preview(text),
            "updated_at": now,
        }
        target.pending.update(touch)
        for name, value in touch.items():
            setattr(conversation, name, value)
        _hook(
            target,
            True,
            hooks.message_sent,
            sender=Message,
            message=message,
            conversation=conversation,
            template=template,
        )
    if not defer:
        flush(targets)
    return messages


def tag_add(
    targets: Sequence[Target],
    *,
    tag: Tag,
    defer: bool = False,
    actor=None,
    source: str = Source.BROADCAST,
) -> None:
    """``services.conversation_tag_add`` for each target's conversation; the
    timeline lines of the links added, in one more statement."""
    conversations = [t.conversation for t in targets]
    if any(c is None or c.is_closed for c in conversations):
        raise TagsLocked(
            "Tags are locked: the conversation is closed, so its tags can no longer change."
        )
    now = timezone.now()
    links = insert_rows(
        ConversationTag,
        count=len(conversations),
        same={"tag_id": tag.pk, "added_at": now},
        each={"conversation_id": [c.pk for c in conversations]},
        ignore_conflicts=True,
    )
    tagged = set(links) and set(
        ConversationTag.objects.filter(pk__in=links).values_list("conversation_id", flat=True)
    )
    tagged_ids = [c.pk for c in conversations if c.pk in tagged]
    insert_rows(
        Activity,
        count=len(tagged_ids),
        same={
            "kind": Activity.Kind.TAG_ADDED,
            "actor_id": getattr(actor, "pk", None),
            "source": source,
            "data": {"tag": tag.name},
            "created_at": now,
        },
        each={"conversation_id": tagged_ids},
    )
    for target in targets:
        target.pending["updated_at"] = now
        target.conversation.updated_at = now
    if not defer:
        flush(targets)
