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

    opened = [(t, m) for t, m in applied if m.opens_new]
    if opened:
        created = Conversation.objects.bulk_create(
            Conversation(contact=t.contact, status=m.target, last_activity_at=now)
            for t, m in opened
        )
        for (target, _), conversation in zip(opened, created, strict=True):
            conversation.contact = target.contact
            conversation._loaded_status = conversation.status
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
    changes = StatusChange.objects.bulk_create(
        StatusChange(
            conversation=t.conversation,
            from_status=t.from_status,
            to_status=m.target,
            event=m.rule.event,
            source=source,
            actor=actor,
            note=note[:200],
        )
        for t, m in recorded
    )
    for (target, move), change in zip(recorded, changes, strict=True):
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
    messages = Message.objects.bulk_create(
        Message(
            conversation=conversation,
            direction=Direction.OUTBOUND,
            sender_kind=sender_kind,
            author=author,
            text=text,
        )
        for conversation, text in zip(conversations, texts, strict=True)
    )
    now = timezone.now()
    # The inbox's denormalised columns, as ``services._touch(waiting=None)`` keeps them.
    by_preview: dict[str, list[Conversation]] = defaultdict(list)
    for conversation, message in zip(conversations, messages, strict=True):
        conversation.last_activity_at = message.created_at
        conversation.last_message_preview = _preview(message.text)
        conversation.updated_at = now
        by_preview[conversation.last_message_preview].append(conversation)
    if len(by_preview) == 1:  # one text for all (the usual broadcast): a plain UPDATE
        # The batch's instant (its messages' times differ by microseconds).
        at = max(m.created_at for m in messages)
        Conversation.objects.filter(pk__in=[c.pk for c in conversations]).update(
            last_activity_at=at, last_message_preview=next(iter(by_preview)), updated_at=now
        )
        for conversation in conversations:
            conversation.last_activity_at = at
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
    ConversationTag.objects.bulk_create(
        (ConversationTag(conversation=c, tag=tag) for c in conversations),
        ignore_conflicts=True,
    )
    now = timezone.now()
    Conversation.objects.filter(pk__in=[c.pk for c in conversations]).update(updated_at=now)
    for conversation in conversations:
        conversation.updated_at = now
