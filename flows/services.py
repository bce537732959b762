"""The flow engine and the broadcast runner: the only code that writes flows' runs
and broadcasts' deliveries.

Every status change goes through ``conversations.services.conversation_apply_event``
(the transition table decides; refusals are raised before anything changes). A run
executes its steps synchronously, inside the transaction that started or resumed it,
until an *ask* waits for the contact or the flow ends.
"""

import logging
import re
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from conversations import services as core
from conversations.exceptions import ConversationOngoing, InvalidInput, ParleyError
from conversations.models import (
    Contact,
    Conversation,
    ConversationTag,
    Direction,
    SenderKind,
    Source,
)
from conversations.transitions import ONGOING, STATUS_LABELS, Event, Status, allowed

from .models import (
    Broadcast,
    BroadcastDelivery,
    BroadcastState,
    DeliveryOutcome,
    Flow,
    FlowRun,
    FlowStep,
    RunState,
    Segment,
    StepKind,
    Trigger,
)

logger = logging.getLogger(__name__)

BROADCAST_BATCH_SIZE = 500
ATTRIBUTE_VALUE_MAX_LENGTH = 1000

# The event each ending step applies, and the outcome recorded on the run.
ENDING_EVENTS: dict[str, Event] = {
    StepKind.MARK_IN_PROGRESS: Event.FLOW_MARK_IN_PROGRESS,
    StepKind.HAND_OFF: Event.FLOW_HAND_OFF,
    StepKind.CLOSE: Event.FLOW_CLOSE,
}


class Outcome:
    MARKED_IN_PROGRESS = "mark_in_progress"
    HANDED_OFF = "hand_off"
    CLOSED = "close"
    COMPLETED = "completed"
    TAKEOVER = "takeover"
    CONVERSATION_CLOSED = "conversation_closed"
    REPLACED = "replaced"
    ERROR = "error"


ENDING_OUTCOMES = {
    StepKind.MARK_IN_PROGRESS: Outcome.MARKED_IN_PROGRESS,
    StepKind.HAND_OFF: Outcome.HANDED_OFF,
    StepKind.CLOSE: Outcome.CLOSED,
}


class FlowInactive(InvalidInput):
    code = "flow_inactive"
    http_status = 409
    default_detail = "This flow is inactive and cannot be started."


# --- helpers ----------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_-]{0,49})\}")


def render_text(text: str, contact: Contact) -> str:
    """Fill ``{name}`` and ``{attribute}`` placeholders from the contact; unknown
    ones stay as written. Plain text: templates escape it when shown."""
    values = {**{k: str(v) for k, v in (contact.attributes or {}).items()}}
    values.setdefault("name", contact.display_name)

    def sub(match: re.Match) -> str:
        return values.get(match.group(1), match.group(0))

    return _PLACEHOLDER.sub(sub, text)


def _steps_of(flow: Flow) -> list[FlowStep]:
    steps = getattr(flow, "_ordered_steps", None)
    if steps is None:
        steps = list(flow.steps.select_related("tag").order_by("position", "id"))
        flow._ordered_steps = steps
    return steps


def _log(run: FlowRun, step: FlowStep, detail: str = "") -> None:
    entry = {"position": step.position, "kind": step.kind, "at": timezone.now().isoformat()}
    if detail:
        entry["detail"] = detail[:200]
    run.log = [*run.log, entry]


def _end(run: FlowRun, *, state: str, outcome: str, detail: str = "") -> None:
    run.state = state
    run.outcome = outcome
    run.outcome_detail = detail[:200]
    run.ended_at = timezone.now()


def _save(run: FlowRun) -> FlowRun:
    if run.pk is None:
        run.save()
    else:
        run.save(update_fields=["state", "cursor", "log", "outcome", "outcome_detail", "ended_at"])
    return run


def _cancel_active_runs(conversation_id: int, *, outcome: str, detail: str) -> int:
    now = timezone.now()
    return (
        FlowRun.objects.active()
        .filter(conversation_id=conversation_id)
        .update(
            state=RunState.CANCELLED, outcome=outcome, outcome_detail=detail[:200], ended_at=now
        )
    )


# --- the engine -------------------------------------------------------------------


def _advance(run: FlowRun, contact: Contact, conversation: Conversation) -> FlowRun:
    """Run steps from ``run.cursor`` until an ask waits or the flow ends; save the run."""
    steps = _steps_of(run.flow)
    sender_kind = SenderKind.BROADCAST if run.broadcast_id else SenderKind.FLOW
    source = Source.BROADCAST if run.broadcast_id else Source.FLOW
    note = f"Flow “{run.flow.name}”"
    while run.cursor < len(steps):
        step = steps[run.cursor]
        if step.kind in (StepKind.SEND_MESSAGE, StepKind.ASK):
            core.message_send_automated(
                conversation=conversation,
                text=render_text(step.text, contact),
                sender_kind=sender_kind,
            )
            _log(run, step)
            if step.kind == StepKind.ASK:
                run.state = RunState.WAITING
                return _save(run)
        elif step.kind == StepKind.ADD_TAG:
            if step.tag_id is not None:
                core.conversation_tag_add(conversation=conversation, tag=step.tag, source=source)
            _log(run, step, step.tag.name if step.tag_id else "no tag: skipped")
        elif step.kind in ENDING_EVENTS:
            core.conversation_apply_event(
                event=ENDING_EVENTS[step.kind], source=source, conversation=conversation, note=note
            )
            _log(run, step)
            run.cursor += 1
            _end(run, state=RunState.FINISHED, outcome=ENDING_OUTCOMES[step.kind])
            return _save(run)
        run.cursor += 1
    core.conversation_apply_event(
        event=Event.FLOW_COMPLETE,
        source=source,
        conversation=conversation,
        note=note,
        status_before_flow=run.status_before_flow or None,
    )
    _end(run, state=RunState.FINISHED, outcome=Outcome.COMPLETED)
    return _save(run)


@transaction.atomic
def flow_start(
    *,
    flow: Flow | int,
    conversation: Conversation | int | None = None,
    contact: Contact | int | None = None,
    has_priority: bool = False,
    trigger: str = Trigger.AGENT,
    actor=None,
    broadcast: Broadcast | None = None,
    keyword: bool = False,
    status_before_flow: str | None = None,
    _ongoing_checked: bool = False,
) -> FlowRun:
    """Start ``flow`` for a conversation's contact (§3 flow rows).

    Ordinary start: Not contacted → In a flow; closed/none → a new conversation In a
    flow; ongoing → ``ConversationOngoing``. With ``has_priority`` an ongoing
    conversation is taken too, its running flow run cancelled first. ``keyword``
    applies the KEYWORD event (the contact asked for it). Returns the run, which has
    already executed its steps up to the first ask (or the end).
    """
    if not isinstance(flow, Flow):
        flow = Flow.objects.filter(pk=flow).first()
        if flow is None:
            raise InvalidInput("That flow does not exist.")
    if not flow.is_active:
        raise FlowInactive(f"The flow “{flow.name}” is inactive and cannot be started.")
    if conversation is None and contact is None:
        raise InvalidInput("A conversation or a contact is needed.")
    if contact is None:
        conv_pk = conversation.pk if isinstance(conversation, Conversation) else conversation
        contact_id = Conversation.objects.filter(pk=conv_pk).values_list("contact_id", flat=True)
        contact_id = contact_id.first()
        if contact_id is None:
            raise InvalidInput("That conversation does not exist.")
    else:
        contact_id = contact.pk if isinstance(contact, Contact) else contact
    # Lock the contact (the core locks contact before conversation: same order).
    locked_contact = Contact.objects.select_for_update().get(pk=contact_id)
    current = (
        Conversation.objects.select_for_update()
        .filter(contact=locked_contact)
        .open()
        .order_by("-created_at")
        .first()
    )
    before = current.status if current else None

    if keyword:
        event = Event.KEYWORD
    elif has_priority and before in ONGOING:
        event = Event.FLOW_START_PRIORITY
    else:
        event = Event.FLOW_START
    if before is None:
        carried_before = None
    elif status_before_flow is not None:
        carried_before = status_before_flow or None
    else:
        carried_before = before
    if event == Event.FLOW_START_PRIORITY and before == Status.IN_FLOW:
        previous = FlowRun.objects.active().filter(conversation=current).first()
        # A priority start on a conversation already in a flow returns, at the end,
        # to where the interrupted flow would have returned.
        carried_before = (previous.status_before_flow or None) if previous else None
        _cancel_active_runs(
            current.pk,
            outcome=Outcome.REPLACED,
            detail=f"Replaced by “{flow.name}” started with priority.",
        )
    source = Source.BROADCAST if broadcast is not None else Source.FLOW
    conversation = core.conversation_apply_event(
        event=event,
        source=source,
        contact=locked_contact,
        actor=actor,
        note=f"Flow “{flow.name}”",
    )
    run = FlowRun(
        flow=flow,
        conversation=conversation,
        broadcast=broadcast,
        trigger=trigger,
        started_by=actor,
        status_before_flow=carried_before or "",
    )
    return _advance(run, locked_contact, conversation)


@transaction.atomic
def flow_resume(*, run: FlowRun, text: str) -> FlowRun:
    """The contact answered the run's waiting *ask*: store the reply on the contact's
    attributes and carry on."""
    run = FlowRun.objects.select_for_update().select_related("flow").get(pk=run.pk)
    if run.state != RunState.WAITING:
        return run
    steps = _steps_of(run.flow)
    conversation = run.conversation
    contact = Contact.objects.select_for_update().get(pk=conversation.contact_id)
    if run.cursor < len(steps) and steps[run.cursor].kind == StepKind.ASK:
        step = steps[run.cursor]
        contact.attributes = {
            **(contact.attributes or {}),
            step.attribute: text[:ATTRIBUTE_VALUE_MAX_LENGTH],
        }
        contact.save(update_fields=["attributes"])
        run.log = [
            *run.log,
            {
                "position": step.position,
                "kind": "reply",
                "at": timezone.now().isoformat(),
                "detail": f"{step.attribute} = {text[:150]}",
            },
        ]
    run.cursor += 1
    run.state = RunState.RUNNING
    return _advance(run, contact, conversation)


def flow_cancel_for(*, conversation: Conversation, outcome: str, detail: str) -> int:
    """Cancel the conversation's running flow run (takeover, close)."""
    return _cancel_active_runs(conversation.pk, outcome=outcome, detail=detail)


# --- the inbound hook -------------------------------------------------------------


def _status_before_message(conversation: Conversation) -> str | None:
    """The status the conversation had before the contact's message just stored:
    ``None`` when that message opened it, Not contacted when it was the first inbound
    message of a not-contacted conversation, otherwise its status now."""
    if conversation.messages.filter(direction=Direction.INBOUND).count() > 1:
        return conversation.status
    last = conversation.status_changes.order_by("-at", "-id").values("event", "from_status").first()
    if last and last["event"] == Event.CONTACT_WRITES:
        return last["from_status"] or None
    return conversation.status


def keyword_flow(text: str) -> Flow | None:
    words = " ".join(text.split()).lower()
    if not words or len(words) > 50:
        return None
    return Flow.objects.filter(is_active=True, trigger_keyword__iexact=words).order_by("pk").first()


def handle_inbound(*, message, conversation: Conversation) -> FlowRun | None:
    """Called inside ``message_receive``'s transaction: resume a waiting run with the
    reply, or start the flow whose keyword the contact wrote."""
    if conversation.status == Status.IN_FLOW:
        run = FlowRun.objects.filter(conversation=conversation, state=RunState.WAITING).first()
        if run is not None:
            return flow_resume(run=run, text=message.text)
        return None
    if not allowed(Event.KEYWORD, conversation.status):
        return None
    flow = keyword_flow(message.text)
    if flow is None:
        return None
    return flow_start(
        flow=flow,
        contact=conversation.contact_id,
        trigger=Trigger.KEYWORD,
        keyword=True,
        status_before_flow=_status_before_message(conversation) or "",
    )


# --- broadcasts -------------------------------------------------------------------


def segment_contacts(*, segment: str, value: str = ""):
    """The contacts of a segment (a queryset of Contact)."""
    contacts = Contact.objects.all()
    if segment == Segment.ALL:
        return contacts
    if segment == Segment.CHANNEL:
        return contacts.filter(channel=value.strip().lower())
    if segment == Segment.TAG:
        # Tags live on conversations; a contact is in the segment when any of its
        # conversations carries the tag (closed ones keep their tags as history).
        return contacts.filter(
            Exists(
                ConversationTag.objects.filter(
                    conversation__contact=OuterRef("pk"), tag__name__iexact=value.strip()
                )
            )
        )
    if segment == Segment.STATUS:
        open_convs = Conversation.objects.open().filter(contact=OuterRef("pk"))
        if value == Status.CLOSED:  # no open conversation
            return contacts.filter(~Exists(open_convs))
        return contacts.filter(Exists(open_convs.filter(status=value)))
    raise InvalidInput("Unknown segment.")


def clean_segment(segment: str, value: str) -> tuple[str, str]:
    value = (value or "").strip()
    if segment not in Segment.values:
        raise InvalidInput("Choose a segment: all contacts, by tag, by channel or by status.")
    if segment == Segment.ALL:
        return segment, ""
    if not value:
        raise InvalidInput(f"{Segment(segment).label} needs a value.")
    if segment == Segment.STATUS and value not in STATUS_LABELS:
        raise InvalidInput(
            "Status must be one of: " + ", ".join(str(s) for s in STATUS_LABELS) + "."
        )
    if segment == Segment.CHANNEL:
        value = core.clean_channel(value)
    if segment == Segment.TAG:
        value = core.clean_text(value, field="Tag", max_length=50)
    return segment, value


@transaction.atomic
def broadcast_create(
    *, flow: Flow | int, segment: str, segment_value: str = "", has_priority=False, actor=None
) -> Broadcast:
    """Create a broadcast and queue it for the background worker (after commit)."""
    if not isinstance(flow, Flow):
        flow = Flow.objects.filter(pk=flow).first()
        if flow is None:
            raise InvalidInput("Choose a flow to broadcast.")
    if not flow.is_active:
        raise FlowInactive(f"The flow “{flow.name}” is inactive and cannot be broadcast.")
    segment, segment_value = clean_segment(segment, segment_value)
    broadcast = Broadcast.objects.create(
        flow=flow,
        segment=segment,
        segment_value=segment_value,
        has_priority=bool(has_priority),
        created_by=actor,
    )
    broadcast.total = segment_contacts(segment=segment, value=segment_value).count()
    broadcast.save(update_fields=["total"])
    from .tasks import run_broadcast

    transaction.on_commit(lambda: run_broadcast.enqueue(broadcast_id=broadcast.pk))
    return broadcast


@dataclass
class BatchResult:
    sent: int = 0
    skipped: int = 0
    failed: int = 0

    @property
    def processed(self) -> int:
        return self.sent + self.skipped + self.failed


def _deliver_one(broadcast: Broadcast, contact_id: int) -> BroadcastDelivery:
    try:
        with transaction.atomic():
            run = flow_start(
                flow=broadcast.flow,
                contact=contact_id,
                has_priority=broadcast.has_priority,
                trigger=Trigger.BROADCAST,
                actor=broadcast.created_by,
                broadcast=broadcast,
            )
    except ConversationOngoing as exc:  # became ongoing since the classification
        return BroadcastDelivery(
            broadcast=broadcast,
            contact_id=contact_id,
            outcome=DeliveryOutcome.SKIPPED,
            reason=exc.detail[:200],
        )
    except ParleyError as exc:
        return BroadcastDelivery(
            broadcast=broadcast,
            contact_id=contact_id,
            outcome=DeliveryOutcome.FAILED,
            reason=f"{exc.code}: {exc.detail}"[:200],
        )
    except Exception as exc:  # one contact's failure must not stop the broadcast
        logger.exception("Broadcast %s failed for contact %s", broadcast.pk, contact_id)
        return BroadcastDelivery(
            broadcast=broadcast,
            contact_id=contact_id,
            outcome=DeliveryOutcome.FAILED,
            reason=f"{type(exc).__name__}: {exc}"[:200],
        )
    return BroadcastDelivery(
        broadcast=broadcast,
        contact_id=contact_id,
        outcome=DeliveryOutcome.STARTED,
        conversation_id=run.conversation_id,
    )


@transaction.atomic
def broadcast_run_batch(*, broadcast_id: int, batch_size: int = BROADCAST_BATCH_SIZE) -> int:
    """Deliver the broadcast to the next ``batch_size`` contacts that have no delivery
    row yet; returns how many were processed (0 when the broadcast is done).

    One transaction per batch, holding the broadcast's row lock: the flow starts and
    their delivery rows commit together or not at all, so a worker that dies half-way
    leaves no contact started without its row, and two workers never overlap.
    """
    broadcast = Broadcast.objects.select_for_update().select_related("flow").get(pk=broadcast_id)
    if broadcast.state in (BroadcastState.DONE, BroadcastState.FAILED):
        return 0
    delivered = BroadcastDelivery.objects.filter(broadcast=broadcast, contact=OuterRef("pk"))
    batch = list(
        segment_contacts(segment=broadcast.segment, value=broadcast.segment_value)
        .filter(~Exists(delivered))
        .order_by("pk")
        .values_list("pk", flat=True)[:batch_size]
    )
    if not batch:
        return 0
    result = BatchResult()
    rows: list[BroadcastDelivery] = []
    ongoing: set[int] = set()
    if not broadcast.has_priority:
        # Classify the whole batch in one query: ongoing contacts are skipped.
        ongoing = set(
            Conversation.objects.ongoing()
            .filter(contact_id__in=batch)
            .values_list("contact_id", flat=True)
        )
        for contact_id in ongoing:
            rows.append(
                BroadcastDelivery(
                    broadcast=broadcast,
                    contact_id=contact_id,
                    outcome=DeliveryOutcome.SKIPPED,
                    reason="The conversation is ongoing.",
                )
            )
    _steps_of(broadcast.flow)  # load the steps once for the whole batch
    for contact_id in batch:
        if contact_id in ongoing:
            continue
        rows.append(_deliver_one(broadcast, contact_id))
    # No ignore_conflicts: under the row lock a conflict cannot happen, and if it
    # ever did, the IntegrityError rolls the whole batch back instead of sending twice.
    BroadcastDelivery.objects.bulk_create(rows, batch_size=1000)
    result.sent = sum(1 for r in rows if r.outcome == DeliveryOutcome.STARTED)
    result.skipped = sum(1 for r in rows if r.outcome == DeliveryOutcome.SKIPPED)
    result.failed = sum(1 for r in rows if r.outcome == DeliveryOutcome.FAILED)
    broadcast.sent += result.sent
    broadcast.skipped += result.skipped
    broadcast.failed += result.failed
    broadcast.save(update_fields=["sent", "skipped", "failed"])
    return result.processed


def broadcast_execute(*, broadcast_id: int, batch_size: int = BROADCAST_BATCH_SIZE) -> Broadcast:
    """Run a broadcast to the end, batch after batch; safe to call again after a
    crash (it carries on where the committed batches stopped)."""
    with transaction.atomic():
        broadcast = Broadcast.objects.select_for_update().get(pk=broadcast_id)
        if broadcast.state in (BroadcastState.DONE, BroadcastState.FAILED):
            return broadcast
        if broadcast.state == BroadcastState.QUEUED:
            broadcast.state = BroadcastState.RUNNING
            broadcast.started_at = timezone.now()
            broadcast.save(update_fields=["state", "started_at"])
    while broadcast_run_batch(broadcast_id=broadcast_id, batch_size=batch_size):
        pass
    with transaction.atomic():
        broadcast = Broadcast.objects.select_for_update().get(pk=broadcast_id)
        broadcast.state = BroadcastState.DONE
        broadcast.finished_at = timezone.now()
        broadcast.total = max(broadcast.total, broadcast.processed)
        broadcast.save(update_fields=["state", "finished_at", "total"])
    return broadcast
