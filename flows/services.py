"""The flow engine and the broadcast runner: the only code that writes flows' runs
and broadcasts' deliveries.

Every status change goes through ``conversations.services.conversation_apply_event``
(the transition table decides; refusals are raised before anything changes). A run
executes its steps synchronously, inside the transaction that started or resumed it,
until an *ask* waits for the contact or the flow ends.
"""

import logging
import re
from contextlib import contextmanager
from contextvars import ContextVar

from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from conversations import bulk
from conversations import services as core
from conversations.exceptions import ConversationOngoing, InvalidInput, ParleyError
from conversations.locks import is_retryable, lock_conversation, retrying_atomic
from conversations.models import (
    Contact,
    Conversation,
    ConversationTag,
    Direction,
    SenderKind,
    Source,
)
from conversations.transitions import STATUS_LABELS, Event, Status, allowed

from .models import (
    Broadcast,
    BroadcastChunk,
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

BROADCAST_CHUNK_SIZE = 1000
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


def render_text(text: str, conversation: Conversation) -> str:
    """Fill ``{name}`` and ``{attribute}`` placeholders from the contact; unknown
    ones stay as written. Plain text: templates escape it when shown."""
    if "{" not in text:
        return text
    contact = conversation.contact
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


_new_runs: ContextVar[list | None] = ContextVar("flows_new_runs", default=None)


def _save(run: FlowRun) -> FlowRun:
    if run.pk is None:
        pending = _new_runs.get()
        if pending is not None:  # a broadcast batch inserts its new runs in bulk
            pending.append(run)
        else:
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


def _advance(run: FlowRun, conversation: Conversation) -> FlowRun:
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
                text=render_text(step.text, conversation),
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


_captured_changes: ContextVar[list | None] = ContextVar("flows_captured_changes", default=None)


@contextmanager
def _capturing_status_changes():
    """Collect the StatusChange rows the core records meanwhile (the receiver of
    ``hooks.status_changed`` calls :func:`note_status_change`): they tell the engine
    the status before the flow without reading and locking the rows a second time."""
    token = _captured_changes.set([])
    try:
        yield _captured_changes.get()
    finally:
        _captured_changes.reset(token)


def note_status_change(change) -> None:
    changes = _captured_changes.get()
    if changes is not None:
        changes.append(change)


@retrying_atomic
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
) -> FlowRun:
    """Start ``flow`` for a conversation's contact (§3 flow rows).

    Ordinary start: Not contacted → In a flow; closed/none → a new conversation In a
    flow; ongoing → ``ConversationOngoing``. With ``has_priority`` an ongoing
    conversation is taken too, its running flow run cancelled. ``keyword`` applies
    the KEYWORD event (the contact asked for it; ``status_before_flow`` then says
    where the conversation was before the contact's message). Returns the run, which
    has already executed its steps up to the first ask (or the end).
    """
    return _flow_start(
        flow=flow,
        conversation=conversation,
        contact=contact,
        has_priority=has_priority,
        trigger=trigger,
        actor=actor,
        broadcast=broadcast,
        keyword=keyword,
        status_before_flow=status_before_flow,
    )


def _flow_start(
    *,
    flow,
    conversation,
    contact,
    has_priority,
    trigger,
    actor,
    broadcast,
    keyword,
    status_before_flow,
) -> FlowRun:
    """:func:`flow_start` without its own savepoint (the caller holds one)."""
    if not isinstance(flow, Flow):
        flow = Flow.objects.filter(pk=flow).first() if str(flow).isdigit() else None
        if flow is None:
            raise InvalidInput("That flow does not exist.")
    if not flow.is_active:
        raise FlowInactive(f"The flow “{flow.name}” is inactive and cannot be started.")
    if conversation is None and contact is None:
        raise InvalidInput("A conversation or a contact is needed.")
    target = {"contact": contact} if contact is not None else {"conversation": conversation}
    source = Source.BROADCAST if broadcast is not None else Source.FLOW
    note = f"Flow “{flow.name}”"
    with _capturing_status_changes() as changes:
        try:
            try:
                current = core.conversation_apply_event(
                    event=Event.KEYWORD if keyword else Event.FLOW_START,
                    source=source,
                    actor=actor,
                    note=note,
                    **target,
                )
            except ConversationOngoing:
                if not has_priority:
                    raise
                current = core.conversation_apply_event(
                    event=Event.FLOW_START_PRIORITY, source=source, actor=actor, note=note, **target
                )
        except ObjectDoesNotExist as exc:
            raise InvalidInput("That conversation or contact does not exist.") from exc
    # The status before the flow: the recorded change's source ("" = a new
    # conversation); no change recorded means In a flow → In a flow (priority restart).
    before = (changes[-1].from_status or None) if changes else current.status
    if isinstance(contact, Contact):
        current.contact = contact  # already loaded by the caller
    if before == Status.IN_FLOW:
        previous = FlowRun.objects.active().filter(conversation=current).first()
        # Return, at the end, to where the interrupted flow would have returned.
        carried = (previous.status_before_flow or None) if previous else None
        _cancel_active_runs(
            current.pk,
            outcome=Outcome.REPLACED,
            detail=f"Replaced by “{flow.name}” started with priority.",
        )
    elif before is not None and status_before_flow is not None:
        carried = status_before_flow or None
    else:
        carried = before
    run = FlowRun(
        flow=flow,
        conversation=current,
        broadcast=broadcast,
        trigger=trigger,
        started_by=actor,
        status_before_flow=carried or "",
    )
    return _advance(run, current)


@retrying_atomic
def flow_resume(*, run: FlowRun, text: str) -> FlowRun:
    """The contact answered the run's waiting *ask*: store the reply on the contact's
    attributes and carry on."""
    # The lock order (conversations.locks): contact and conversation, then the run.
    conversation = lock_conversation(run.conversation_id)
    contact = conversation.contact
    run = FlowRun.objects.select_for_update().select_related("flow").get(pk=run.pk)
    if run.state != RunState.WAITING:
        return run
    steps = _steps_of(run.flow)
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
    conversation.contact = contact
    return _advance(run, conversation)


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
    from . import keywords  # here, not above: this file's imports are not the inbound path's

    words = keywords.normalise(text)
    if not words or len(words) > 50:
        return None
    return Flow.objects.filter(is_active=True, trigger_keyword__iexact=words).order_by("pk").first()


def handle_inbound(*, message, conversation: Conversation) -> FlowRun | None:
    """Called inside ``message_receive``'s transaction: resume a waiting run with the
    reply, or start the flow whose keyword the contact wrote. Returns the run when a
    flow acted (the conversation may have moved on), else None.

    A flow that fails rolls back to its own savepoint, and the contact's message
    stays. A message that is neither for a flow nor possibly a keyword (almost all)
    costs no statement: the keywords are cached per process (``flows.keywords``)."""
    from . import keywords  # here, not above: this file's imports are not the inbound path's

    if conversation.status == Status.IN_FLOW:
        with transaction.atomic():
            run = FlowRun.objects.filter(conversation=conversation, state=RunState.WAITING).first()
            if run is not None:
                return flow_resume(run=run, text=message.text)
        return None
    if not allowed(Event.KEYWORD, conversation.status):
        return None
    if not keywords.may_be_keyword(message.text):
        return None
    with transaction.atomic():
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


@retrying_atomic
def broadcast_create(
    *,
    flow: Flow | int,
    segment: str,
    segment_value: str = "",
    has_priority=False,
    actor=None,
    enqueue: bool = True,
) -> Broadcast:
    """Create a broadcast and queue it for the background worker (after commit);
    ``enqueue=False`` when the caller runs it itself (the demo seed)."""
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
    if enqueue:
        from .tasks import run_broadcast

        transaction.on_commit(lambda: run_broadcast.enqueue(broadcast_id=broadcast.pk))
    return broadcast


def _deliver_one(broadcast: Broadcast, contact: Contact) -> BroadcastDelivery:
    """Start the broadcast's flow for one contact inside its own savepoint, and
    describe the outcome as an (unsaved) delivery row."""
    row = BroadcastDelivery(broadcast=broadcast, contact_id=contact.pk)
    try:
        with transaction.atomic():
            run = _flow_start(
                flow=broadcast.flow,
                conversation=None,
                contact=contact,
                has_priority=broadcast.has_priority,
                trigger=Trigger.BROADCAST,
                actor=broadcast.created_by,
                broadcast=broadcast,
                keyword=False,
                status_before_flow=None,
            )
    except ParleyError as exc:  # e.g. became ongoing since the classification
        _refused(row, exc)
    except Exception as exc:  # one contact's failure must not stop the broadcast
        if is_retryable(exc):  # a deadlock: the whole chunk runs again (retrying_atomic)
            raise
        logger.exception("Broadcast %s failed for contact %s", broadcast.pk, contact.pk)
        row.outcome, row.reason = DeliveryOutcome.FAILED, f"{type(exc).__name__}: {exc}"[:200]
    else:
        row.outcome, row.conversation_id = DeliveryOutcome.STARTED, run.conversation_id
    return row


def _refused(row: BroadcastDelivery, refusal: ParleyError) -> None:
    """The delivery row of a refused start: skipped when the conversation is ongoing
    (no priority), failed with the refusal's code otherwise."""
    if isinstance(refusal, ConversationOngoing):
        row.outcome, row.reason = DeliveryOutcome.SKIPPED, refusal.detail[:200]
    else:
        row.outcome = DeliveryOutcome.FAILED
        row.reason = f"{refusal.code}: {refusal.detail}"[:200]


def _deliver_many(broadcast: Broadcast, contact_ids: list[int]) -> list[BroadcastDelivery]:
    """Start the broadcast's flow for a chunk's contacts, set-based (a few statements
    per step for the whole chunk); if that fails, roll it back and deliver contact
    by contact, so one contact's failure is recorded on its own row and the others
    still get the broadcast."""
    try:
        with transaction.atomic():
            return _deliver_set(broadcast, contact_ids)
    except Exception as exc:
        if is_retryable(exc):  # a deadlock: the whole chunk runs again (retrying_atomic)
            raise
        logger.warning(
            "Broadcast %s: the set-based delivery of %d contacts failed; delivering one by one",
            broadcast.pk,
            len(contact_ids),
            exc_info=True,
        )
    contacts = Contact.objects.in_bulk(contact_ids)
    token = _new_runs.set([])
    try:
        rows = [_deliver_one(broadcast, contacts[pk]) for pk in contact_ids if pk in contacts]
        FlowRun.objects.bulk_create(_new_runs.get(), batch_size=1000)
    finally:
        _new_runs.reset(token)
    return rows


class _SetAborted(Exception):
    """A step was refused for part of a set after the flow had started for it."""


def _deliver_set(broadcast: Broadcast, contact_ids: list[int]) -> list[BroadcastDelivery]:
    """:func:`_deliver_one` for many contacts at once, through ``conversations.bulk``:
    the same table decisions and records, a handful of statements per step."""
    flow = broadcast.flow
    actor = broadcast.created_by
    # Deferred: each conversation row is written once per status change, together
    # with the messages that follow it (bulk.flush), not once per step.
    common = {"source": Source.BROADCAST, "actor": actor, "note": f"Flow “{flow.name}”"}
    common["defer"] = True
    targets = bulk.lock_targets(contact_ids)
    # Decided again under the locks: a conversation that became ongoing since the
    # chunk was classified is skipped (or taken, with priority).
    started = bulk.apply_event(targets, event=Event.FLOW_START, **common)
    if broadcast.has_priority:
        ongoing = [t for t in targets if isinstance(t.refusal, ConversationOngoing)]
        for target in ongoing:
            target.refusal = None
        started += bulk.apply_event(ongoing, event=Event.FLOW_START_PRIORITY, **common)

    rows = []
    for target in targets:
        row = BroadcastDelivery(broadcast=broadcast, contact_id=target.contact.pk)
        if target.refusal is not None:
            _refused(row, target.refusal)
        else:
            row.outcome, row.conversation = DeliveryOutcome.STARTED, target.conversation
        rows.append(row)
    if not started:
        return rows

    # The status before the flow, as _flow_start decides it: "" = a new conversation;
    # no change recorded = In a flow already (a priority restart), whose interrupted
    # run's return status is carried over.
    carried = {t: (t.from_status or None) for t in started if t.from_status is not None}
    restarted = [t.conversation.pk for t in started if t not in carried]
    if restarted:
        previous = dict(
            FlowRun.objects.active()
            .filter(conversation_id__in=restarted)
            .values_list("conversation_id", "status_before_flow")
        )
        for target in started:
            if target not in carried:
                carried[target] = previous.get(target.conversation.pk) or None
        FlowRun.objects.active().filter(conversation_id__in=restarted).update(
            state=RunState.CANCELLED,
            outcome=Outcome.REPLACED,
            outcome_detail=f"Replaced by “{flow.name}” started with priority."[:200],
            ended_at=timezone.now(),
        )
    # The runs walk the steps in lockstep: one template describes them all, and
    # only their conversation and return status differ.
    template = FlowRun(flow=flow, broadcast=broadcast, trigger=Trigger.BROADCAST, started_by=actor)
    _advance_set(template, started, note=common["note"], carried=[carried[t] for t in started])
    shared = {
        f.attname: getattr(template, f.attname)
        for f in FlowRun._meta.concrete_fields
        if not f.primary_key and f.attname not in ("conversation_id", "status_before_flow")
    }
    bulk.insert_rows(
        FlowRun,
        count=len(started),
        same=shared | {"started_at": timezone.now()},
        each={
            "conversation_id": [t.conversation.pk for t in started],
            "status_before_flow": [carried[t] or "" for t in started],
        },
    )
    return rows


def _advance_set(run: FlowRun, targets: list, *, note: str, carried: list) -> None:
    """:func:`_advance` for a set of conversations that all start ``run``'s flow at
    its first step (a broadcast's): they walk the steps in lockstep, so ``run``
    (unsaved) records the steps, state and outcome of all of them; ``carried``
    holds each one's status before the flow."""
    steps = _steps_of(run.flow)
    common = {"source": Source.BROADCAST, "note": note, "defer": True}
    _walk_steps(run, steps, targets, common=common, carried=carried)
    bulk.flush(targets)  # (after an error the caller rolls the whole set back)


def _walk_steps(run, steps, targets, *, common: dict, carried: list) -> None:
    for cursor, step in enumerate(steps):
        run.cursor = cursor
        if step.kind in (StepKind.SEND_MESSAGE, StepKind.ASK):
            bulk.send_automated(
                targets,
                [render_text(step.text, t.conversation) for t in targets],
                sender_kind=SenderKind.BROADCAST,
                defer=True,
            )
            _log(run, step)
            if step.kind == StepKind.ASK:
                run.state = RunState.WAITING
                return
        elif step.kind == StepKind.ADD_TAG:
            if step.tag_id is not None:
                bulk.tag_add(targets, tag=step.tag, defer=True)
            _log(run, step, step.tag.name if step.tag_id else "no tag: skipped")
        elif step.kind in ENDING_EVENTS:
            done = bulk.apply_event(targets, event=ENDING_EVENTS[step.kind], **common)
            if len(done) < len(targets):
                raise _SetAborted(f"{step.kind} was refused for part of the set")
            _log(run, step)
            run.cursor = cursor + 1
            _end(run, state=RunState.FINISHED, outcome=ENDING_OUTCOMES[step.kind])
            return
    done = bulk.apply_event(
        targets, event=Event.FLOW_COMPLETE, status_before_flow=carried, **common
    )
    if len(done) < len(targets):
        raise _SetAborted("completing the flow was refused for part of the set")
    run.cursor = len(steps)
    _end(run, state=RunState.FINISHED, outcome=Outcome.COMPLETED)


def broadcast_plan(*, broadcast_id: int, chunk_size: int | None = None) -> list[int]:
    """Split the broadcast's segment into chunks (once) and return the ids of the
    chunks still to run. Safe to call again: a resumed broadcast re-plans nothing."""
    chunk_size = chunk_size or BROADCAST_CHUNK_SIZE
    with transaction.atomic():
        broadcast = Broadcast.objects.select_for_update(no_key=True).get(pk=broadcast_id)
        if broadcast.state in (BroadcastState.DONE, BroadcastState.FAILED):
            return []
        if not broadcast.chunks.exists():
            ids = list(
                segment_contacts(segment=broadcast.segment, value=broadcast.segment_value)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            BroadcastChunk.objects.bulk_create(
                BroadcastChunk(
                    broadcast=broadcast,
                    index=n,
                    first_contact_id=ids[i],
                    last_contact_id=ids[min(i + chunk_size, len(ids)) - 1],
                )
                for n, i in enumerate(range(0, len(ids), chunk_size))
            )
            broadcast.total = len(ids)
        if broadcast.state == BroadcastState.QUEUED:
            broadcast.state = BroadcastState.RUNNING
            broadcast.started_at = timezone.now()
        broadcast.save(update_fields=["total", "state", "started_at"])
        pending = list(
            broadcast.chunks.filter(done_at__isnull=True)
            .order_by("index")
            .values_list("pk", flat=True)
        )
        if not pending:
            _finish(broadcast)
    return pending


def _finish(broadcast: Broadcast) -> None:
    broadcast.state = BroadcastState.DONE
    broadcast.finished_at = timezone.now()
    broadcast.total = max(broadcast.total, broadcast.processed)
    broadcast.save(update_fields=["state", "finished_at", "total"])


@retrying_atomic
def broadcast_run_chunk(*, chunk_id: int) -> int:
    """Deliver the broadcast to the contacts of one chunk that have no delivery row
    yet; returns how many were processed.

    One transaction, holding the chunk's row lock: the flow starts and their delivery
    rows commit together or not at all, so a worker that dies half-way leaves no
    contact started without its row, and two workers never run the same chunk. The
    last chunk to finish marks the broadcast done.
    """
    chunk = BroadcastChunk.objects.select_for_update().filter(pk=chunk_id).first()
    if chunk is None or chunk.done_at is not None:
        return 0
    broadcast = Broadcast.objects.select_related("flow", "created_by").get(pk=chunk.broadcast_id)
    if broadcast.state in (BroadcastState.DONE, BroadcastState.FAILED):
        return 0
    delivered = BroadcastDelivery.objects.filter(broadcast=broadcast, contact=OuterRef("pk"))
    batch = list(
        segment_contacts(segment=broadcast.segment, value=broadcast.segment_value)
        .filter(pk__gte=chunk.first_contact_id, pk__lte=chunk.last_contact_id)
        .filter(~Exists(delivered))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    rows: list[BroadcastDelivery] = []
    ongoing: set[int] = set()
    if batch and not broadcast.has_priority:
        # Classify the whole chunk in one query: ongoing contacts are skipped.
        ongoing = set(
            Conversation.objects.ongoing()
            .filter(contact_id__in=batch)
            .values_list("contact_id", flat=True)
        )
        rows = [
            BroadcastDelivery(
                broadcast=broadcast,
                contact_id=contact_id,
                outcome=DeliveryOutcome.SKIPPED,
                reason="The conversation is ongoing.",
            )
            for contact_id in sorted(ongoing)
        ]
    to_start = [pk for pk in batch if pk not in ongoing]
    if to_start:
        _steps_of(broadcast.flow)  # load the steps once for the whole chunk
        rows += _deliver_many(broadcast, to_start)
    # No ignore_conflicts: under the chunk lock a conflict cannot happen, and if it
    # ever did, the IntegrityError rolls the whole chunk back instead of sending twice.
    bulk.insert_rows(
        BroadcastDelivery,
        count=len(rows),
        same={"broadcast_id": broadcast.pk},
        each={
            "contact_id": [row.contact_id for row in rows],
            "outcome": [row.outcome for row in rows],
            "reason": [row.reason for row in rows],
            "conversation_id": [row.conversation_id for row in rows],
        },
    )
    counts = dict.fromkeys(DeliveryOutcome.values, 0)
    for row in rows:
        counts[row.outcome] += 1
    # The counters: the UPDATE holds the broadcast's row until commit, so the chunks'
    # last steps run one at a time and the last one sees every other chunk done.
    Broadcast.objects.filter(pk=broadcast.pk).update(
        sent=F("sent") + counts[DeliveryOutcome.STARTED],
        skipped=F("skipped") + counts[DeliveryOutcome.SKIPPED],
        failed=F("failed") + counts[DeliveryOutcome.FAILED],
    )
    chunk.done_at = timezone.now()
    chunk.save(update_fields=["done_at"])
    if not broadcast.chunks.filter(done_at__isnull=True).exists():
        _finish(Broadcast.objects.get(pk=broadcast.pk))
    return len(rows)


def broadcast_execute(*, broadcast_id: int, chunk_size: int | None = None) -> Broadcast:
    """Run a whole broadcast here, chunk after chunk (the seed command, tests); safe
    to call again after a crash: it carries on with the chunks not done."""
    for chunk_id in broadcast_plan(broadcast_id=broadcast_id, chunk_size=chunk_size):
        broadcast_run_chunk(chunk_id=chunk_id)
    return Broadcast.objects.get(pk=broadcast_id)


def broadcast_resume(*, broadcast_id: int) -> bool:
    """Queue a broadcast again after its worker died: the planner re-queues only the
    chunks not done, and a chunk only reaches contacts without a delivery row.
    Returns False when the broadcast is already done."""
    state = Broadcast.objects.filter(pk=broadcast_id).values_list("state", flat=True).first()
    if state is None or state in (BroadcastState.DONE, BroadcastState.FAILED):
        return False
    from .tasks import run_broadcast

    transaction.on_commit(lambda: run_broadcast.enqueue(broadcast_id=broadcast_id))
    return True
