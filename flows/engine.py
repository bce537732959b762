"""The flow engine: starts a flow for a contact, runs its steps, resumes a run when
the contact answers, and hands inbound messages to the flows (the only code that
writes flow runs, except a broadcast's set path in ``flows.broadcasts``).

Every status change goes through ``conversations.services`` (the transition table
decides; refusals are raised before anything changes). A run executes its steps
synchronously, inside the transaction that started or resumed it, until an *ask*
waits for the contact or the flow ends.
"""

import logging
import re

from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.utils import timezone

from conversations import services as core
from conversations.availability import least_loaded_agent
from conversations.exceptions import ConversationOngoing, InvalidInput
from conversations.locks import lock_conversation, retrying_atomic
from conversations.models import Contact, Conversation, Direction, SenderKind, Source
from conversations.reads import mark_unread
from conversations.transitions import Event, Status, allowed

from . import answers
from .models import Broadcast, Flow, FlowRun, FlowStep, RunState, StepKind, Trigger

logger = logging.getLogger(__name__)

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
    ASSIGNED = "assign"
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


_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_-]{0,49})\}")


def render_text(text: str, conversation: Conversation) -> str:
    """Fill ``{name}`` and ``{attribute}`` placeholders from the contact; unknown
    ones stay as written. Plain text: templates escape it when shown."""
    if "{" not in text:
        return text
    contact = conversation.contact
    values = {k: str(v) for k, v in (contact.attributes or {}).items()}
    values.setdefault("name", contact.display_name)

    def sub(match: re.Match) -> str:
        return values.get(match.group(1), match.group(0))

    return _PLACEHOLDER.sub(sub, text)


def step_template(step: FlowStep, conversation: Conversation) -> dict | None:
    """The channel template a message step names, its parameters filled in."""
    if not step.template:
        return None
    params = [render_text(line.strip(), conversation) for line in step.template_params.splitlines()]
    return {"name": step.template, "params": [p for p in params if p]}


def steps_of(flow: Flow) -> list[FlowStep]:
    steps = getattr(flow, "_ordered_steps", None)
    if steps is None:
        steps = list(flow.steps.select_related("tag").order_by("position", "id"))
        flow._ordered_steps = steps
    return steps


def log_step(run: FlowRun, step: FlowStep, detail: str = "") -> None:
    entry = {"position": step.position, "kind": step.kind, "at": timezone.now().isoformat()}
    if detail:
        entry["detail"] = detail[:200]
    run.log = [*run.log, entry]


def end_run(run: FlowRun, *, state: str, outcome: str, detail: str = "") -> None:
    run.state = state
    run.outcome = outcome
    run.outcome_detail = detail[:200]
    run.ended_at = timezone.now()


def _save(run: FlowRun, new_runs: list | None = None) -> FlowRun:
    """Save the run; a new one goes into ``new_runs`` instead when given (a
    broadcast's contact-by-contact path inserts its new runs in bulk)."""
    if run.pk is not None:
        run.save(update_fields=["state", "cursor", "log", "outcome", "outcome_detail", "ended_at"])
    elif new_runs is not None:
        new_runs.append(run)
    else:
        run.save()
    return run


def flow_cancel_for(*, conversation: Conversation, outcome: str, detail: str) -> int:
    """Cancel the conversation's running flow run (takeover, close, priority restart)."""
    return (
        FlowRun.objects.active()
        .filter(conversation=conversation)
        .update(
            state=RunState.CANCELLED,
            outcome=outcome,
            outcome_detail=detail[:200],
            ended_at=timezone.now(),
        )
    )


def _advance(run: FlowRun, conversation: Conversation, *, new_runs: list | None = None) -> FlowRun:
    """Run steps from ``run.cursor`` until an ask waits or the flow ends; save the run
    (``new_runs``: see :func:`_save`)."""
    steps = steps_of(run.flow)
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
                template=step_template(step, conversation),
            )
            log_step(run, step)
            if step.kind == StepKind.ASK:
                run.state = RunState.WAITING
                return _save(run, new_runs)
        elif step.kind == StepKind.ADD_TAG:
            if step.tag_id is not None:
                core.conversation_tag_add(conversation=conversation, tag=step.tag, source=source)
            log_step(run, step, step.tag.name if step.tag_id else "no tag: skipped")
        elif step.kind in ENDING_EVENTS:
            core.apply_event(
                event=ENDING_EVENTS[step.kind], source=source, conversation=conversation, note=note
            )
            log_step(run, step)
            run.cursor += 1
            end_run(run, state=RunState.FINISHED, outcome=ENDING_OUTCOMES[step.kind])
            return _save(run, new_runs)
        elif step.kind == StepKind.ASSIGN:
            outcome, detail = _assign(step, conversation, source=source, note=note)
            log_step(run, step, detail)
            run.cursor += 1
            end_run(run, state=RunState.FINISHED, outcome=outcome, detail=detail)
            return _save(run, new_runs)
        run.cursor += 1
    core.apply_event(
        event=Event.FLOW_COMPLETE,
        source=source,
        conversation=conversation,
        note=note,
        status_before_flow=run.status_before_flow or None,
    )
    end_run(run, state=RunState.FINISHED, outcome=Outcome.COMPLETED)
    return _save(run, new_runs)


def _assign(step: FlowStep, conversation: Conversation, *, source: str, note: str):
    """The *assign* step: to the step's agent, or to the least-loaded available one,
    In progress and unread for them; with nobody available, handed off to the queue
    (New, unassigned), saying why. Returns the run's outcome and detail."""
    agent = step.agent if step.agent_id and step.agent.is_active else least_loaded_agent()
    if agent is None:
        why = "No agent is available (everyone is away): handed off to the queue."
        core.apply_event(
            event=Event.FLOW_HAND_OFF,
            source=source,
            conversation=conversation,
            note=f"{note}. {why}",
        )
        return Outcome.HANDED_OFF, why
    core.apply_event(event=Event.FLOW_ASSIGN, source=source, conversation=conversation, note=note)
    core.conversation_assign(conversation=conversation.pk, assignee=agent)
    mark_unread([conversation.pk], agent_id=agent.pk)
    return Outcome.ASSIGNED, f"Assigned to {agent.get_full_name() or agent.get_username()}"


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
    new_runs: list | None = None,
) -> FlowRun:
    """Start ``flow`` for a conversation's contact (§3 flow rows).

    Ordinary start: Not contacted → In a flow; closed/none → a new conversation In a
    flow; ongoing → ``ConversationOngoing``. With ``has_priority`` an ongoing
    conversation is taken too, its running flow run cancelled. ``keyword`` applies
    the KEYWORD event (the contact asked for it; ``status_before_flow`` then says
    where the conversation was before the contact's message). Returns the run, which
    has already executed its steps up to the first ask (or the end). ``new_runs``:
    see :func:`_save`.
    """
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
    try:
        try:
            applied = core.apply_event(
                event=Event.KEYWORD if keyword else Event.FLOW_START,
                source=source,
                actor=actor,
                note=note,
                **target,
            )
        except ConversationOngoing:
            if not has_priority:
                raise
            applied = core.apply_event(
                event=Event.FLOW_START_PRIORITY, source=source, actor=actor, note=note, **target
            )
    except ObjectDoesNotExist as exc:
        raise InvalidInput("That conversation or contact does not exist.") from exc
    current = applied.conversation
    # The status before the flow: the recorded change's source ("" = a new
    # conversation); no change recorded means In a flow → In a flow (priority restart).
    before = (applied.change.from_status or None) if applied.change else current.status
    if isinstance(contact, Contact):
        current.contact = contact  # already loaded by the caller
    if before == Status.IN_FLOW:
        previous = FlowRun.objects.active().filter(conversation=current).first()
        # Return, at the end, to where the interrupted flow would have returned.
        carried = (previous.status_before_flow or None) if previous else None
        flow_cancel_for(
            conversation=current,
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
    return _advance(run, current, new_runs=new_runs)


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
    steps = steps_of(run.flow)
    if run.cursor < len(steps) and steps[run.cursor].kind == StepKind.ASK:
        step = steps[run.cursor]
        value, ask_again = answers.accept(step, text[:ATTRIBUTE_VALUE_MAX_LENGTH])
        entry = {"position": step.position, "kind": "reply", "at": timezone.now().isoformat()}
        if value is None:
            core.message_send_automated(
                conversation=conversation,
                text=ask_again,
                sender_kind=SenderKind.BROADCAST if run.broadcast_id else SenderKind.FLOW,
            )
            run.log = [*run.log, entry | {"detail": f"not accepted: {text[:120]}"}]
            run.save(update_fields=["log"])
            return run
        contact.attributes = {**(contact.attributes or {}), step.attribute: value}
        contact.save(update_fields=["attributes"])
        run.log = [*run.log, entry | {"detail": f"{step.attribute} = {str(value)[:150]}"}]
    run.cursor += 1
    run.state = RunState.RUNNING
    conversation.contact = contact
    return _advance(run, conversation)


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
    if not allowed(Event.KEYWORD, conversation.status) or not keywords.may_be_keyword(message.text):
        return None
    with transaction.atomic():
        flow = keyword_flow(message.text)
        if flow is None:
            return None
        before = _status_before_message(conversation)
        # §3: only the message that starts a conversation (or the first from Not
        # contacted) starts a flow; a contact already waiting for an agent stays queued.
        if before == Status.NEW:
            return None
        return flow_start(
            flow=flow,
            contact=conversation.contact_id,
            trigger=Trigger.KEYWORD,
            keyword=True,
            status_before_flow=before or "",
        )
