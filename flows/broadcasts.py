"""Broadcasts: one flow started for every contact of a segment, in the background,
chunk by chunk (``flows.tasks``), each contact reached at most once.

A chunk's contacts are started set-based (``conversations.bulk``: a few statements
per step for the whole chunk); when that fails the chunk falls back to the engine,
contact by contact (``flows.engine``), so that one contact's failure is recorded on
its own delivery row and the others still get the broadcast.
"""

import logging
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef
from django.dispatch import Signal
from django.utils import timezone

from config.tasks import queue_after_commit
from conversations import bulk
from conversations import services as core
from conversations.exceptions import ConversationOngoing, InvalidInput, ParleyError
from conversations.locks import is_retryable, retrying_atomic
from conversations.models import (
    Contact,
    Conversation,
    ConversationTag,
    SenderKind,
    Source,
    tag_key,
)
from conversations.transitions import ENGAGED, STATUS_LABELS, Event, Status

from .engine import (
    ENDING_EVENTS,
    ENDING_OUTCOMES,
    FlowInactive,
    Outcome,
    end_run,
    flow_start,
    log_step,
    render_text,
    step_template,
    steps_of,
)
from .models import (
    Broadcast,
    BroadcastChunk,
    BroadcastDelivery,
    BroadcastState,
    DeliveryOutcome,
    Flow,
    FlowRun,
    RunState,
    Segment,
    StepKind,
    Trigger,
)

logger = logging.getLogger(__name__)

BROADCAST_PERMISSION = "flows.start_broadcast"


class BroadcastNotPermitted(ParleyError):
    code = "broadcast_not_permitted"
    http_status = 403
    default_detail = (
        "Broadcasting needs the “Can start a broadcast to a segment” permission; "
        "an admin can grant it to you."
    )


def may_broadcast(user) -> bool:
    """Staff may broadcast; another user needs the permission (granted in the admin,
    to them or to one of their groups)."""
    return bool(user and user.is_active and (user.is_staff or user.has_perm(BROADCAST_PERMISSION)))


def check_may_broadcast(user) -> None:
    if not may_broadcast(user):
        raise BroadcastNotPermitted()


def skipped_conversations():
    """The conversations whose contact a broadcast without priority skips: ongoing,
    or resolved (its satisfaction survey is awaited)."""
    return Conversation.objects.filter(status__in=ENGAGED)


def broadcast_preview(*, segment: str, value: str = "", has_priority=False) -> tuple[int, int]:
    """How many contacts the segment reaches, and how many of them would be skipped
    (ongoing, or a survey awaited; none with priority): one aggregate query."""
    segment, value = clean_segment(segment, value)
    skipped = Exists(skipped_conversations().filter(contact=OuterRef("pk")))
    counts = segment_contacts(segment=segment, value=value).aggregate(
        total=Count("pk"), skipped=Count("pk", filter=skipped)
    )
    return counts["total"], 0 if has_priority else counts["skipped"]


# Sent before a broadcast is created, so a channel can refuse it up front (WhatsApp:
# contacts outside the 24-hour window need a template). kwargs: flow,
# first_message_step (a FlowStep or None), contacts (the segment, a queryset).
# A receiver refuses by raising a ParleyError.
broadcast_requested = Signal()


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
                    conversation__contact=OuterRef("pk"), tag__key=tag_key(value)
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
        raise InvalidInput(
            {Segment.TAG: "Choose a tag.", Segment.CHANNEL: "Choose a channel."}.get(
                segment, "Choose a status."
            )
        )
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
    first = next((step for step in steps_of(flow) if step.sends_message), None)
    broadcast_requested.send(
        sender=Broadcast,
        flow=flow,
        first_message_step=first,
        contacts=segment_contacts(segment=segment, value=segment_value),
    )
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
        _enqueue(broadcast.pk)
    return broadcast


def _enqueue(broadcast_id: int) -> None:
    from .tasks import run_broadcast, schedule_watch

    queue_after_commit(lambda: run_broadcast.enqueue(broadcast_id=broadcast_id))
    queue_after_commit(lambda: schedule_watch(broadcast_id))


def _deliver_one(
    broadcast: Broadcast, contact: Contact, *, new_runs: list[FlowRun]
) -> BroadcastDelivery:
    """Start the broadcast's flow for one contact inside its own savepoint, and
    describe the outcome as an (unsaved) delivery row."""
    row = BroadcastDelivery(broadcast=broadcast, contact_id=contact.pk)
    try:  # in its own savepoint (retrying_atomic, nested)
        run = flow_start(
            flow=broadcast.flow,
            contact=contact,
            has_priority=broadcast.has_priority,
            trigger=Trigger.BROADCAST,
            actor=broadcast.created_by,
            broadcast=broadcast,
            new_runs=new_runs,
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
    # An assign step picks an agent per conversation (the least-loaded one changes
    # as it goes): contact by contact.
    if not any(step.kind == StepKind.ASSIGN for step in steps_of(broadcast.flow)):
        try:
            with transaction.atomic():
                return _deliver_set(broadcast, contact_ids)
        except Exception as exc:
            if is_retryable(exc):  # a deadlock: the whole chunk runs again
                raise
            logger.warning(
                "Broadcast %s: the set-based delivery of %d contacts failed; delivering one by one",
                broadcast.pk,
                len(contact_ids),
                exc_info=True,
            )
    contacts = Contact.objects.in_bulk(contact_ids)
    new_runs: list[FlowRun] = []  # inserted in bulk at the end
    rows = [
        _deliver_one(broadcast, contacts[pk], new_runs=new_runs)
        for pk in contact_ids
        if pk in contacts
    ]
    FlowRun.objects.bulk_create(new_runs, batch_size=1000)
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

    # The status before the flow, as engine.flow_start decides it: "" = a new conversation;
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
    _walk_steps(
        template, started, common=common | {"actor": None}, carried=[carried[t] for t in started]
    )
    bulk.flush(started)  # (after an error the caller rolls the whole set back)
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


def _walk_steps(run: FlowRun, targets: list, *, common: dict, carried: list) -> None:
    """The engine's ``_advance`` for a set of conversations that all start ``run``'s
    flow at its first step (a broadcast's): they walk the steps in lockstep, so
    ``run`` (unsaved) records the steps, state and outcome of all of them; ``carried``
    holds each one's status before the flow."""
    steps = steps_of(run.flow)
    for cursor, step in enumerate(steps):
        run.cursor = cursor
        if step.kind in (StepKind.SEND_MESSAGE, StepKind.ASK):
            bulk.send_automated(
                targets,
                [render_text(step.text, t.conversation) for t in targets],
                sender_kind=SenderKind.BROADCAST,
                defer=True,
                templates=[step_template(step, t.conversation) for t in targets],
            )
            log_step(run, step)
            if step.kind == StepKind.ASK:
                run.state = RunState.WAITING
                return
        elif step.kind == StepKind.ADD_TAG:
            if step.tag_id is not None:
                bulk.tag_add(targets, tag=step.tag, defer=True)
            log_step(run, step, step.tag.name if step.tag_id else "no tag: skipped")
        elif step.kind in ENDING_EVENTS:
            done = bulk.apply_event(targets, event=ENDING_EVENTS[step.kind], **common)
            if len(done) < len(targets):
                raise _SetAborted(f"{step.kind} was refused for part of the set")
            log_step(run, step)
            run.cursor = cursor + 1
            end_run(run, state=RunState.FINISHED, outcome=ENDING_OUTCOMES[step.kind])
            return
    done = bulk.apply_event(
        targets, event=Event.FLOW_COMPLETE, status_before_flow=carried, **common
    )
    if len(done) < len(targets):
        raise _SetAborted("completing the flow was refused for part of the set")
    run.cursor = len(steps)
    end_run(run, state=RunState.FINISHED, outcome=Outcome.COMPLETED)


def broadcast_plan(*, broadcast_id: int, chunk_size: int | None = None) -> list[int]:
    """Split the broadcast's segment into chunks (once) and return the ids of the
    chunks still to run. Safe to call again: a resumed broadcast re-plans nothing."""
    chunk_size = chunk_size or settings.BROADCAST_CHUNK_SIZE
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
        # Handed to the queue now: leased again. SKIP LOCKED: a chunk a worker runs
        # is not waited for (it locks the broadcast's row last, which this holds).
        handed = BroadcastChunk.objects.filter(pk__in=pending).select_for_update(skip_locked=True)
        BroadcastChunk.objects.filter(pk__in=list(handed.values_list("pk", flat=True))).update(
            lease_expires_at=timezone.now()
            + timedelta(seconds=settings.BROADCAST_CHUNK_LEASE_SECONDS)
        )
    return pending


def broadcast_sweep(*, broadcast_id: int) -> int:
    """Run here the broadcast's stalled chunks: not done, past their lease, and not
    locked by a worker running them (a dead worker's transaction rolled back and let
    go of its lock). Returns how many chunks it ran. Exactly once per contact still
    holds: a chunk runs under its row lock and skips contacts with a delivery row."""
    with transaction.atomic():
        stalled = list(
            BroadcastChunk.objects.filter(broadcast_id=broadcast_id)
            .stalled()
            .select_for_update(skip_locked=True)
            .order_by("index")
            .values_list("pk", flat=True)
        )
    for chunk_id in stalled:
        logger.warning("Broadcast %s: chunk %s stalled; running it again", broadcast_id, chunk_id)
        broadcast_run_chunk(chunk_id=chunk_id)
    return len(stalled)


def broadcast_is_over(broadcast_id: int) -> bool:
    state = Broadcast.objects.filter(pk=broadcast_id).values_list("state", flat=True).first()
    return state is None or state in (BroadcastState.DONE, BroadcastState.FAILED)


def broadcast_plan_is_overdue(broadcast_id: int) -> bool:
    """Queued for longer than a lease and still not split into chunks: the task that
    plans it was lost with its worker."""
    deadline = timezone.now() - timedelta(seconds=settings.BROADCAST_CHUNK_LEASE_SECONDS)
    return Broadcast.objects.filter(
        pk=broadcast_id, state=BroadcastState.QUEUED, created_at__lt=deadline, chunks=None
    ).exists()


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
        # Classify the whole chunk in one query: ongoing contacts are skipped, and so
        # are those whose satisfaction survey is awaited.
        engaged = dict(
            skipped_conversations().filter(contact_id__in=batch).values_list("contact_id", "status")
        )
        ongoing = set(engaged)
        rows = [
            BroadcastDelivery(
                broadcast=broadcast,
                contact_id=contact_id,
                outcome=DeliveryOutcome.SKIPPED,
                reason="Its satisfaction survey is awaited."
                if engaged[contact_id] == Status.RESOLVED
                else "The conversation is ongoing.",
            )
            for contact_id in sorted(ongoing)
        ]
    to_start = [pk for pk in batch if pk not in ongoing]
    if to_start:
        steps_of(broadcast.flow)  # load the steps once for the whole chunk
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
    counts = Counter(row.outcome for row in rows)
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
    if broadcast_is_over(broadcast_id):
        return False
    _enqueue(broadcast_id)
    return True
