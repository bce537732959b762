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

from . import events, hooks, inbound, snooze
from .activity import mentioned_agents, record_activity, record_assignment
from .exceptions import (
    ChangedMeanwhile,
    ContactExists,
    ConversationClosed,
    InvalidInput,
    TagsLocked,
)
from .inbox_settings import inbox_settings
from .locks import lock_contact, lock_conversation, open_conversation_of, retrying_atomic
from .models import (
    MESSAGE_MAX_LENGTH,
    Activity,
    Contact,
    Conversation,
    ConversationTag,
    Direction,
    Mention,
    Message,
    SenderKind,
    Source,
    StatusChange,
    Tag,
    clean_tag_name,
)
from .text import clean_channel, clean_text, preview
from .transitions import ONGOING, Event, Move, Status, resolve

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
    its own (one update of the row per transaction, see ``locks``).

    A close also archives the conversation when the settings say so (recorded as
    its own line, as an archive is)."""
    now = now or timezone.now()
    before = conversation.status
    fields = ["status", "updated_at", "waiting_since"]
    conversation.status = move.target
    archived = False
    if move.target in (Status.CLOSED, Status.RESOLVED):
        conversation.snoozed_until = None  # as the database's trigger does
        if before != Status.RESOLVED:  # the agent who resolved it keeps the rating
            conversation.closed_by = actor
            fields.append("closed_by")
    if move.target == Status.RESOLVED:
        conversation.resolved_at = now
        fields.append("resolved_at")
    if move.target == Status.CLOSED:
        conversation.closed_at = now
        fields.append("closed_at")
        if inbox_settings().archive_on_close:
            conversation.archived_at = now
            fields.append("archived_at")
            archived = True
    if move.target in (Status.CLOSED, Status.RESOLVED) and conversation.resolution_seconds is None:
        conversation.resolution_seconds = _seconds(conversation.created_at, now)
        fields.append("resolution_seconds")
    conversation.waiting_since = _waiting_after(conversation, before, move.target, now)
    if save:
        conversation.save(update_fields=fields)
    change = _record(
        conversation, from_status=before, move=move, source=source, actor=actor, note=note
    )
    if archived:
        archive = resolve(Event.ARCHIVE, Status.CLOSED)
        _record(conversation, from_status=Status.CLOSED, move=archive, source=source, actor=actor)
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


def _close_resolved(conversation: Conversation, move: Move, *, source: str, actor, note="") -> None:
    """A rule that opens a new conversation for a contact whose survey is awaited
    closes the resolved one first, without a rating (recorded under the rule's event)."""
    ending = Move(rule=move.rule, source=Status.RESOLVED, target=Status.CLOSED)
    _change_status(conversation, ending, source=source, actor=actor, note=note)


def _waiting_after(conversation: Conversation, before: str, target: str, now):
    """Nobody waits for an agent in a flow, nor once it closes; a flow handing the
    conversation to the agents (New) starts the wait."""
    if target in (Status.IN_FLOW, Status.CLOSED, Status.RESOLVED):
        return None
    if before == Status.IN_FLOW:
        return (now or timezone.now()) if target == Status.NEW else None
    return conversation.waiting_since


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
    if conversation.is_snoozed:
        snooze.wake(conversation=conversation, source=Source.CONTACT, note="the contact wrote")
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
    *,
    conversation: Conversation | int,
    agent,
    text: str,
    source: str = Source.AGENT,
    template: dict | None = None,
) -> Message:
    """An agent answers. Takes over from a running flow; assigns the conversation
    to the agent when nobody has it; refused on a closed conversation, and by the
    contact's channel (``hooks.message_sending``: e.g. WhatsApp's 24-hour window).
    ``template``: a channel's message template to send instead of free text."""
    if template and not (text or "").strip():
        text = str(template.get("name", ""))
    text = clean_text(text, field="Reply", max_length=MESSAGE_MAX_LENGTH)
    conversation = lock_conversation(conversation)
    move = resolve(Event.AGENT_REPLY, conversation.status, conversation.is_archived)
    text = hooks.outbound_text(
        conversation=conversation, text=text, sender_kind=SenderKind.AGENT, template=template
    )
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
        record_assignment(conversation, None, actor=agent, source=source)
    fields += _first_response(conversation, message)
    fields += _touch(conversation, message, waiting=False, save=False)
    # One update of the row (status, assignee and inbox columns together).
    conversation.save(update_fields=list(dict.fromkeys(fields)))
    hooks.message_sent.send(
        sender=Message, message=message, conversation=conversation, template=template
    )
    return message


@retrying_atomic
def message_send_automated(
    *,
    conversation: Conversation | int,
    text: str,
    sender_kind: str = SenderKind.FLOW,
    author=None,
    template: dict | None = None,
) -> Message:
    """A flow or a broadcast sends a message. No status change; refused when the
    conversation is closed, or by its channel (as :func:`conversation_reply`)."""
    if sender_kind not in (SenderKind.FLOW, SenderKind.BROADCAST):
        raise InvalidInput("Automated messages are sent by a flow or a broadcast.")
    text = clean_text(text, field="Message", max_length=MESSAGE_MAX_LENGTH)
    conversation = lock_conversation(conversation)
    if conversation.tags_locked:  # closed, or resolved (only its survey goes out)
        raise ConversationClosed()
    text = hooks.outbound_text(
        conversation=conversation, text=text, sender_kind=sender_kind, template=template
    )
    return _send(conversation, text, sender_kind=sender_kind, author=author, template=template)


def _send(
    conversation: Conversation, text: str, *, sender_kind: str, author=None, template=None
) -> Message:
    message = Message.objects.create(
        conversation=conversation,
        direction=Direction.OUTBOUND,
        sender_kind=sender_kind,
        author=author,
        text=text,
    )
    _touch(conversation, message, waiting=None)
    hooks.message_sent.send(
        sender=Message, message=message, conversation=conversation, template=template
    )
    return message


@retrying_atomic
def note_add(
    *, conversation: Conversation | int, author, text: str, source: str = Source.AGENT
) -> Activity:
    """A private note: agents only, never sent to the contact; no status, waiting or
    ordering change; allowed on closed conversations too (history may be annotated).
    Each agent it mentions (``@name``, not the author) gets an unread Mention."""
    text = clean_text(text, field="Note", max_length=MESSAGE_MAX_LENGTH)
    conversation = lock_conversation(conversation)
    events.set_actor(author)
    mentioned = [pk for pk in mentioned_agents(text) if pk != author.pk]
    note = record_activity(
        conversation, Activity.Kind.NOTE, actor=author, source=source, text=text, mentions=mentioned
    )
    Mention.objects.bulk_create(
        Mention(note=note, conversation=conversation, agent_id=pk) for pk in mentioned
    )
    conversation.save(update_fields=["updated_at"])  # the change bus: open panes refresh
    return note


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
    if move.rule.closes_resolved:
        _close_resolved(target, move, source=source, actor=actor, note=note)
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
    run is cancelled (the flows app listens to ``hooks.status_changed``).

    With CSAT on and an agent having replied, it becomes Resolved instead and the
    survey is sent through the conversation's channel (``hooks.message_sent``)."""
    conversation = lock_conversation(conversation)
    event = Event.CLOSE
    if (
        conversation.status in ONGOING
        and inbox_settings().csat_enabled
        and conversation.messages.filter(sender_kind=SenderKind.AGENT).exists()
    ):
        event = Event.CLOSE_WITH_SURVEY
    move = resolve(event, conversation.status, conversation.is_archived)
    _change_status(conversation, move, source=source, actor=actor, note=note)
    if move.target == Status.RESOLVED:
        _send(conversation, inbox_settings().csat_question, sender_kind=SenderKind.SURVEY)
    return conversation


def survey_rating(text: str) -> int | None:
    """The rating a survey answer gives: a lone digit from 1 to 5 (a button's value,
    or typed), else None."""
    text = text.strip().rstrip(".!⭐ ")
    return int(text) if len(text) == 1 and text in "12345" else None


def survey_reply(conversation: Conversation, *, text: str, source: str) -> Message | None:
    """A contact's message to its resolved (locked) conversation: a rating is stored
    in it and closes it (returned); anything else closes it without a rating (None:
    the caller opens a new conversation for the message)."""
    rating = survey_rating(text)
    if rating is None:
        move = resolve(Event.CONTACT_WRITES, Status.RESOLVED)
        _close_resolved(conversation, move, source=source, actor=None)
        return None
    message = Message.objects.create(
        conversation=conversation,
        direction=Direction.INBOUND,
        sender_kind=SenderKind.CONTACT,
        text=text,
    )
    conversation.rating = rating
    fields = ["rating", *_touch(conversation, message, waiting=None, save=False)]
    move = resolve(Event.SURVEY_ANSWER, Status.RESOLVED)
    fields += _change_status(conversation, move, source=source, actor=None, save=False)[0]
    conversation.save(update_fields=list(dict.fromkeys(fields)))
    return message


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
    *,
    conversation: Conversation | int,
    assignee,
    actor=None,
    expected_assignee=ANY,
    source: str = Source.AGENT,
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
    if conversation.tags_locked:
        raise ConversationClosed(
            f"Cannot assign: the conversation is {conversation.get_status_display().lower()}, "
            "and such conversations are read-only."
        )
    if assignee is not None and not assignee.is_active:
        raise InvalidInput("Conversations can only be assigned to active agents.")
    if conversation.assignee_id != (assignee.pk if assignee else None):
        before = conversation.assignee_id
        conversation.assignee = assignee
        conversation.save(update_fields=["assignee", "updated_at"])
        record_assignment(conversation, before, actor=actor, source=source)
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
    if conversation.tags_locked:
        raise TagsLocked(
            f"Tags are locked: the conversation is {conversation.get_status_display().lower()}, "
            "so its tags can no longer change."
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
        record_activity(
            conversation, Activity.Kind.TAG_ADDED, actor=actor, source=source, tag=tag.name
        )
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
        tag = Tag.objects.named(_tag_name(tag)).first()
        if tag is None:
            return False
    link = ConversationTag.objects.filter(conversation=conversation, tag=tag).first()
    if link is None:
        return False
    link.delete()
    conversation.save(update_fields=["updated_at"])  # the inbox's change marker
    record_activity(
        conversation, Activity.Kind.TAG_REMOVED, actor=actor, source=source, tag=tag.name
    )
    return True


ATTRIBUTES_MAX = 50
ATTRIBUTE_KEY_MAX = 50
ATTRIBUTE_VALUE_MAX = 500


def attribute_text(value) -> str | None:
    """An attribute's value as the contact form shows it (a flow may store a number)."""
    return value if value is None or isinstance(value, str) else str(value)


def _merged_edit(contact: Contact, seen: dict, name: str, attributes: dict) -> tuple[str, dict]:
    """The editor's changes (``name``, ``attributes`` against ``seen``) applied to the
    contact as it is now (locked); see ``contact_update``."""
    seen_name, seen_attributes = seen.get("name", ""), seen.get("attributes", {})
    conflicts = []
    if name == seen_name:
        name = contact.name
    elif contact.name not in (seen_name, name):
        conflicts.append(f"the name is now “{contact.name}”")
    merged = dict(contact.attributes)
    for key in sorted({*seen_attributes, *attributes}):
        mine, before = attributes.get(key), seen_attributes.get(key)
        now = attribute_text(contact.attributes.get(key))
        if mine == before:
            continue  # not the editor's change: whatever it is now stays
        if now not in (before, mine):
            conflicts.append(f"“{key}” was removed" if now is None else f"“{key}” is now “{now}”")
        elif mine is None:
            merged.pop(key, None)
        else:
            merged[key] = mine
    if conflicts:
        raise ChangedMeanwhile(
            f"Changed a moment ago: {'; '.join(conflicts)}. Nothing was saved; "
            "save again to keep your values."
        )
    return name, merged


@retrying_atomic
def contact_update(
    *, contact: Contact | int, name: str, attributes: dict, seen: dict | None = None
) -> Contact:
    """Rename a contact and replace its attributes (text keys and values). Its open
    conversation is touched, so the inboxes showing it refresh.

    ``seen``: the name and attributes the editor was shown (``{"name", "attributes"}``,
    values as text). Then only what the editor changed is applied, and what changed
    meanwhile elsewhere stays (another agent's edit, an answer a flow stored); the
    same field changed both ways is refused (``ChangedMeanwhile``, naming each field
    and its value now), nothing saved. Without it the contact is replaced."""
    name = clean_text(name, field="Name", max_length=200, required=False)
    if not isinstance(attributes, dict) or len(attributes) > ATTRIBUTES_MAX:
        raise InvalidInput(f"Attributes must be at most {ATTRIBUTES_MAX} keys and values.")
    cleaned = {}
    for key, value in attributes.items():
        key = clean_text(key, field="An attribute's name", max_length=ATTRIBUTE_KEY_MAX)
        cleaned[key] = clean_text(
            value, field=f"“{key}”", max_length=ATTRIBUTE_VALUE_MAX, required=False
        )
    contact = lock_contact(contact)
    if seen is not None:
        name, cleaned = _merged_edit(contact, seen, name, cleaned)
        if len(cleaned) > ATTRIBUTES_MAX:
            raise InvalidInput(f"Attributes must be at most {ATTRIBUTES_MAX} keys and values.")
    contact.name, contact.attributes = name, cleaned
    contact.save(update_fields=["name", "attributes"])
    Conversation.objects.filter(contact=contact).open().update(updated_at=timezone.now())
    return contact
