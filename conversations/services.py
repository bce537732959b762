"""The only code that writes conversations (the services callers look for).

Every service is keyword-only, runs inside ``locks.retrying_atomic`` (a transaction
re-run whole after a deadlock), re-reads its rows locked in the one order of
``locks`` (contact, then conversation), asks the transition table
(``transitions.resolve``), saves with ``update_fields``, writes the StatusChange,
and raises a typed refusal (``exceptions``) before changing anything. Results are
return values (``Inbound``, ``Applied``).

Two engines live next door: ``inbound`` (a contact's message in a few hand-written
statements, behind :func:`message_receive`) and ``bulk`` (the same rules for a set
of contacts at once, for broadcasts).
"""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import events, hooks, inbound
from .exceptions import (
    ChangedMeanwhile,
    ContactExists,
    ConversationClosed,
    InvalidInput,
    TagsLocked,
)
from .locks import lock_contact, lock_conversation, open_conversation_of, retrying_atomic
from .models import (
    MESSAGE_MAX_LENGTH,
    Contact,
    Conversation,
    ConversationTag,
    Direction,
    Message,
    SenderKind,
    Source,
    StatusChange,
    Tag,
    clean_tag_name,
)
from .text import clean_channel, clean_text, preview
from .transitions import Event, Move, Status, resolve

TAG_COLOUR_DEFAULT = "#64748b"


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
    return change


def _start_conversation(
    contact: Contact, move: Move, *, source: str, actor, note: str = "", now=None
) -> tuple[Conversation, StatusChange]:
    now = now or timezone.now()
    conversation = Conversation.objects.create(
        contact=contact, status=move.target, last_activity_at=now
    )
    change = _record(conversation, from_status="", move=move, source=source, actor=actor, note=note)
    return conversation, change


def _change_status(
    conversation: Conversation,
    move: Move,
    *,
    source: str,
    actor,
    note: str = "",
    now=None,
    save: bool = True,
) -> tuple[list[str], StatusChange]:
    """Apply ``move`` to a locked conversation and record it: the fields changed and
    the history line. With ``save=False`` the caller saves the fields together with
    its own (one update of the row per transaction, see ``locks``)."""
    before = conversation.status
    fields = ["status", "updated_at"]
    conversation.status = move.target
    if move.target == Status.CLOSED:
        conversation.closed_at = now or timezone.now()
        conversation.closed_by = actor
        conversation.waiting_since = None
        fields += ["closed_at", "closed_by", "waiting_since"]
        if conversation.resolution_seconds is None:
            conversation.resolution_seconds = _seconds(
                conversation.created_at, conversation.closed_at
            )
            fields.append("resolution_seconds")
    if save:
        conversation.save(update_fields=fields)
    change = _record(
        conversation, from_status=before, move=move, source=source, actor=actor, note=note
    )
    return fields, change


def _seconds(start, end) -> int:
    return max(0, round((end - start).total_seconds()))


def _first_response(conversation: Conversation, message: Message) -> list[str]:
    """Stamp the first agent reply; its time counts from when the contact began to
    wait for an agent (none when the agent wrote first)."""
    if conversation.first_response_at is not None:
        return []
    conversation.first_response_at = message.created_at
    conversation.first_response_by = message.author
    if conversation.waiting_since is not None:
        conversation.first_response_seconds = _seconds(
            conversation.waiting_since, message.created_at
        )
    return ["first_response_at", "first_response_by", "first_response_seconds"]


def _touch(
    conversation: Conversation, message: Message, *, waiting: bool | None, save: bool = True
) -> list[str]:
    """Keep the inbox's denormalised columns in step with the newest message (the
    fields are returned, and saved unless ``save=False``)."""
    conversation.last_activity_at = message.created_at
    conversation.last_message_preview = preview(message.text)
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
    contact, created, conversation, message = inbound.receive(
        channel, external_id, name, text, source
    )
    if name and not created and contact.name != name:
        contact.name = name
        contact.save(update_fields=["name"])

    responses = hooks.message_received.send(
        sender=Message, message=message, conversation=conversation
    )
    moved = any(acted for _, acted in responses)
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
        fields += _change_status(conversation, move, source=source, actor=agent, save=False)[0]
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
    fields += _first_response(conversation, message)
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


@dataclass(frozen=True)
class Applied:
    """What :func:`apply_event` did: the conversation the event applied to (a new
    one when the rule opened one) and the history line it recorded (None when the
    status stayed as it was)."""

    conversation: Conversation
    change: StatusChange | None


@retrying_atomic
def apply_event(
    *,
    event: Event,
    source: str,
    conversation: Conversation | int | None = None,
    contact: Contact | int | None = None,
    actor=None,
    note: str = "",
    status_before_flow: str | None = None,
) -> Applied:
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
        opened, change = _start_conversation(
            locked_contact, move, source=source, actor=actor, note=note
        )
        return Applied(opened, change)
    change = None
    if move.changes_status:
        _, change = _change_status(target, move, source=source, actor=actor, note=note)
    return Applied(target, change)


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
    return _set_archived(conversation, Event.ARCHIVE, actor=actor, source=source)


@retrying_atomic
def conversation_unarchive(
    *, conversation: Conversation | int, actor=None, source: str = Source.AGENT
) -> Conversation:
    return _set_archived(conversation, Event.UNARCHIVE, actor=actor, source=source)


def _set_archived(conversation: Conversation | int, event: Event, *, actor, source) -> Conversation:
    conversation = lock_conversation(conversation)
    move = resolve(event, conversation.status, conversation.is_archived)
    conversation.archived_at = timezone.now() if event == Event.ARCHIVE else None
    conversation.save(update_fields=["archived_at", "updated_at"])
    _record(conversation, from_status=Status.CLOSED, move=move, source=source, actor=actor)
    return conversation


# ``expected_assignee`` when the caller does not check what it was.
ANY = object()


@retrying_atomic
def conversation_assign(
    *, conversation: Conversation | int, assignee, actor=None, expected_assignee=ANY
) -> Conversation:
    """Give the conversation to an agent (or to nobody with ``assignee=None``).

    ``expected_assignee`` (a user id or None) is the assignee the caller's page
    showed: if someone changed it since, nothing is changed and ``ChangedMeanwhile``
    says who (the ``actor`` of the newest named change, see ``events.set_actor``)."""
    conversation = lock_conversation(conversation)
    if actor is not None:
        events.set_actor(actor)
    if expected_assignee is not ANY and conversation.assignee_id != expected_assignee:
        raise ChangedMeanwhile(_changed_by(conversation))
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


def _changed_by(conversation: Conversation) -> str:
    User = get_user_model()
    who = User.objects.filter(pk=events.last_actor_id(conversation.pk)).first()
    name = (who.get_full_name() or who.get_username()) if who else "someone else"
    if conversation.assignee_id is None:
        now = "it is now unassigned"
    else:
        assignee = conversation.assignee
        now = f"it is now assigned to {assignee.get_full_name() or assignee.get_username()}"
    return (
        f"Changed a moment ago by {name}: {now}. Nothing was changed; "
        "choose again if you still want to."
    )


def _tag_name(value) -> str:
    """A tag name as stored (models.clean_tag_name), or InvalidInput with the reason."""
    name = clean_text(value, field="Tag name", max_length=50)
    try:
        name = clean_tag_name(name)
    except ValidationError as error:
        raise InvalidInput(error.messages[0]) from None
    if not name:
        raise InvalidInput("Tag name is required.")
    return name


def tag_get_or_create(*, name: str, colour: str | None = None) -> Tag:
    """The tag of that name up to case, width and Unicode form (models.tag_key),
    created when there is none: a name that only looks different reuses the tag."""
    name = _tag_name(name)
    tag = Tag.objects.named(name).first()
    if tag is not None:
        return tag
    try:
        with transaction.atomic():
            return Tag.objects.create(name=name, colour=colour or TAG_COLOUR_DEFAULT)
    except IntegrityError:  # created by someone else a moment ago
        return Tag.objects.named(name).get()


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
) -> bool:
    """Remove a tag from an open conversation; returns whether it carried it."""
    conversation = _locked_open_conversation(conversation)
    if not isinstance(tag, Tag):
        tag = Tag.objects.named(_tag_name(tag)).first()
        if tag is None:
            return False
    link = ConversationTag.objects.filter(conversation=conversation, tag=tag).first()
    if link is None:
        return False
    link.delete()
    conversation.save(update_fields=["updated_at"])  # the inbox's change marker
    return True
