"""The status machine of PRODUCT.md §3, as data.

One table, pure Python, no ORM. Services decide moves with :func:`resolve`; the
``pre_save`` guard and the PostgreSQL trigger use :data:`ALLOWED_EDGES` and
:data:`INITIAL_STATUSES`; templates ask :func:`allowed` which buttons to show; tests
walk the whole table.

A *state* is a status, plus two pseudo-states that the table needs as sources:
``ARCHIVED`` (closed and archived) and ``NONE`` (the contact has no open
conversation). Rules whose source is closed/none open a **new** conversation; the
closed one stays in history untouched.
"""

from dataclasses import dataclass
from enum import StrEnum

from .exceptions import (
    ConversationClosed,
    ConversationOngoing,
    IllegalTransition,
    NotArchivable,
    NotArchived,
)


class Status(StrEnum):
    NOT_CONTACTED = "not_contacted"
    NEW = "new"
    IN_PROGRESS = "in_progress"
    IN_FLOW = "in_flow"
    CLOSED = "closed"
    RESOLVED = "resolved"

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]


STATUS_LABELS: dict[Status, str] = {
    Status.NOT_CONTACTED: "Not contacted",
    Status.NEW: "New",
    Status.IN_PROGRESS: "In progress",
    Status.IN_FLOW: "In a flow",
    Status.CLOSED: "Closed",
    Status.RESOLVED: "Resolved",
}
STATUS_CHOICES = [(status.value, STATUS_LABELS[status]) for status in Status]

ONGOING = frozenset({Status.NEW, Status.IN_PROGRESS, Status.IN_FLOW})
OPEN = ONGOING | {Status.NOT_CONTACTED}
# A flow needs priority to start here (a broadcast skips the contact otherwise).
ENGAGED = ONGOING | {Status.RESOLVED}
# Tags lock here (signals, services and the database's trigger).
TAGS_LOCKED = frozenset({Status.CLOSED, Status.RESOLVED})

# Pseudo-states used only as sources in the table.
ARCHIVED = "archived"
NONE = "none"
CLOSED_OR_NONE = frozenset({Status.CLOSED, NONE})


class Event(StrEnum):
    CONTACT_CREATED = "contact_created"
    CONTACT_WRITES = "contact_writes"
    KEYWORD = "keyword"
    AGENT_REPLY = "agent_reply"
    FLOW_START = "flow_start"
    FLOW_START_PRIORITY = "flow_start_priority"
    FLOW_MARK_IN_PROGRESS = "flow_mark_in_progress"
    FLOW_HAND_OFF = "flow_hand_off"
    FLOW_ASSIGN = "flow_assign"
    FLOW_CLOSE = "flow_close"
    FLOW_COMPLETE = "flow_complete"
    CLOSE = "close"
    CLOSE_WITH_SURVEY = "close_with_survey"
    SURVEY_ANSWER = "survey_answer"
    SURVEY_EXPIRE = "survey_expire"
    AUTO_CLOSE = "auto_close"
    ARCHIVE = "archive"
    UNARCHIVE = "unarchive"
    # Snooze is not a status: history lines only (conversations.snooze), no rule below.
    SNOOZE = "snooze"
    WAKE = "wake"

    @property
    def label(self) -> str:
        return EVENT_LABELS[self]


EVENT_LABELS: dict[Event, str] = {
    Event.CONTACT_CREATED: "Contact created",
    Event.CONTACT_WRITES: "Contact wrote",
    Event.KEYWORD: "Contact wrote a flow keyword",
    Event.AGENT_REPLY: "Agent replied",
    Event.FLOW_START: "Flow started",
    Event.FLOW_START_PRIORITY: "Flow started with priority",
    Event.FLOW_MARK_IN_PROGRESS: "Flow marked it in progress",
    Event.FLOW_HAND_OFF: "Flow handed off to an agent",
    Event.FLOW_ASSIGN: "Flow assigned it to an agent",
    Event.FLOW_CLOSE: "Flow closed it",
    Event.FLOW_COMPLETE: "Flow completed",
    Event.CLOSE: "Closed",
    Event.CLOSE_WITH_SURVEY: "Resolved, satisfaction survey sent",
    Event.SURVEY_ANSWER: "Contact rated the conversation",
    Event.SURVEY_EXPIRE: "Survey window ended",
    Event.AUTO_CLOSE: "Closed after inactivity",
    Event.ARCHIVE: "Archived",
    Event.UNARCHIVE: "Unarchived",
    Event.SNOOZE: "Snoozed",
    Event.WAKE: "Woke up",
}
EVENT_CHOICES = [(event.value, EVENT_LABELS[event]) for event in Event]

# For refusal sentences: "<action> is not possible …".
EVENT_ACTIONS: dict[Event, str] = {
    Event.CONTACT_CREATED: "Creating the contact",
    Event.CONTACT_WRITES: "Receiving a message",
    Event.KEYWORD: "Starting a flow by keyword",
    Event.AGENT_REPLY: "Replying",
    Event.FLOW_START: "Starting a flow",
    Event.FLOW_START_PRIORITY: "Starting a flow",
    Event.FLOW_MARK_IN_PROGRESS: "Marking it in progress",
    Event.FLOW_HAND_OFF: "Handing off",
    Event.FLOW_ASSIGN: "Assigning",
    Event.FLOW_CLOSE: "Closing",
    Event.FLOW_COMPLETE: "Completing the flow",
    Event.CLOSE: "Closing",
    Event.CLOSE_WITH_SURVEY: "Closing",
    Event.SURVEY_ANSWER: "Rating",
    Event.SURVEY_EXPIRE: "Ending the survey",
    Event.AUTO_CLOSE: "Closing after inactivity",
    Event.ARCHIVE: "Archiving",
    Event.UNARCHIVE: "Unarchiving",
    Event.SNOOZE: "Snoozing",
    Event.WAKE: "Waking",
}

# The target of FLOW_COMPLETE depends on the status before the flow.
RESTORE = "restore"


@dataclass(frozen=True)
class Rule:
    event: Event
    sources: frozenset[str]
    target: str  # a Status, or RESTORE for FLOW_COMPLETE
    opens_new: bool = False  # the move happens on a new conversation
    cancels_flow: bool = False  # a running flow run is cancelled first
    # The resolved conversation is closed (no rating) before the new one opens.
    closes_resolved: bool = False


def _rule(event, sources, target, **kwargs) -> Rule:
    return Rule(event, frozenset(sources), target, **kwargs)


S = Status
R = {S.RESOLVED}
TABLE: tuple[Rule, ...] = (
    _rule(Event.CONTACT_CREATED, {NONE}, S.NOT_CONTACTED, opens_new=True),
    _rule(Event.CONTACT_WRITES, {S.NOT_CONTACTED, S.NEW}, S.NEW),
    _rule(Event.CONTACT_WRITES, {S.IN_PROGRESS}, S.IN_PROGRESS),
    _rule(Event.CONTACT_WRITES, {S.IN_FLOW}, S.IN_FLOW),
    _rule(Event.CONTACT_WRITES, CLOSED_OR_NONE, S.NEW, opens_new=True),
    _rule(Event.CONTACT_WRITES, R, S.NEW, opens_new=True, closes_resolved=True),
    _rule(Event.KEYWORD, {S.NOT_CONTACTED, S.NEW}, S.IN_FLOW),
    _rule(Event.KEYWORD, CLOSED_OR_NONE, S.IN_FLOW, opens_new=True),
    _rule(Event.KEYWORD, R, S.IN_FLOW, opens_new=True, closes_resolved=True),
    _rule(Event.AGENT_REPLY, {S.NOT_CONTACTED, S.NEW, S.IN_PROGRESS}, S.IN_PROGRESS),
    _rule(Event.AGENT_REPLY, {S.IN_FLOW}, S.IN_PROGRESS, cancels_flow=True),
    _rule(Event.FLOW_START, {S.NOT_CONTACTED}, S.IN_FLOW),
    _rule(Event.FLOW_START, CLOSED_OR_NONE, S.IN_FLOW, opens_new=True),
    _rule(Event.FLOW_START_PRIORITY, OPEN, S.IN_FLOW, cancels_flow=True),
    _rule(Event.FLOW_START_PRIORITY, CLOSED_OR_NONE, S.IN_FLOW, opens_new=True),
    _rule(Event.FLOW_START_PRIORITY, R, S.IN_FLOW, opens_new=True, closes_resolved=True),
    _rule(Event.FLOW_MARK_IN_PROGRESS, {S.IN_FLOW}, S.IN_PROGRESS),
    _rule(Event.FLOW_HAND_OFF, {S.IN_FLOW}, S.NEW),
    _rule(Event.FLOW_ASSIGN, {S.IN_FLOW}, S.IN_PROGRESS),
    _rule(Event.FLOW_CLOSE, {S.IN_FLOW}, S.CLOSED),
    _rule(Event.FLOW_COMPLETE, {S.IN_FLOW}, RESTORE),
    _rule(Event.CLOSE, OPEN, S.CLOSED, cancels_flow=True),
    # With CSAT on and an agent having replied, a close is this one (services decide).
    _rule(Event.CLOSE_WITH_SURVEY, ONGOING, S.RESOLVED, cancels_flow=True),
    _rule(Event.SURVEY_ANSWER, R, S.CLOSED),
    _rule(Event.SURVEY_EXPIRE, R, S.CLOSED),
    _rule(Event.AUTO_CLOSE, {S.IN_PROGRESS}, S.CLOSED),
    _rule(Event.ARCHIVE, {S.CLOSED}, S.CLOSED),
    _rule(Event.UNARCHIVE, {ARCHIVED}, S.CLOSED),
)

# Events that the flow engine itself causes (they never cancel its own run).
FLOW_EVENTS = frozenset({Event.KEYWORD, *(e for e in Event if e.startswith("flow_"))})


def state_of(status: str | None, archived: bool = False) -> str:
    """The table's source key for a conversation (or for no open conversation)."""
    if status is None:
        return NONE
    if status == Status.CLOSED and archived:
        return ARCHIVED
    return Status(status)


def find_rule(event: Event, state: str) -> Rule | None:
    for rule in TABLE:
        if rule.event == event and state in rule.sources:
            return rule
    return None


def allowed(event: Event, status: str | None, archived: bool = False) -> bool:
    return find_rule(Event(event), state_of(status, archived)) is not None


def flow_completion_target(status_before_flow: str | None) -> Status:
    """§3: a flow that ends with no status step returns the conversation to the
    status it had before the flow; closed if that was not contacted or none."""
    if status_before_flow in (Status.NEW, Status.IN_PROGRESS):
        return Status(status_before_flow)
    return Status.CLOSED


@dataclass(frozen=True)
class Move:
    rule: Rule
    source: str
    target: Status

    @property
    def opens_new(self) -> bool:
        return self.rule.opens_new

    @property
    def changes_status(self) -> bool:
        return self.opens_new or self.source != self.target


def resolve(
    event: Event,
    status: str | None,
    archived: bool = False,
    *,
    status_before_flow: str | None = None,
) -> Move:
    """Decide the move for ``event`` from a conversation's state, or raise the
    refusal that explains why it is not allowed."""
    event = Event(event)
    state = state_of(status, archived)
    rule = find_rule(event, state)
    if rule is None:
        raise refusal(event, state)
    if rule.target == RESTORE:
        target = flow_completion_target(status_before_flow)
    else:
        target = Status(rule.target)
    return Move(rule=rule, source=state, target=target)


def refusal(event: Event, state: str) -> IllegalTransition:
    """The clear refusal for ``event`` from ``state``."""
    label = STATUS_LABELS.get(state, "archived" if state == ARCHIVED else "not open").lower()
    if event == Event.FLOW_START and state == Status.RESOLVED:
        return ConversationOngoing(
            "The conversation is resolved and its satisfaction survey awaited: a flow can "
            "only interrupt it when started with priority."
        )
    if event == Event.FLOW_START and state in ONGOING:
        return ConversationOngoing(
            f"The conversation is {label}: a flow can only interrupt an ongoing "
            "conversation when started with priority."
        )
    if event == Event.ARCHIVE:
        if state == ARCHIVED:
            return NotArchivable("The conversation is already archived.")
        return NotArchivable(f"Only closed conversations can be archived; this one is {label}.")
    if event == Event.UNARCHIVE:
        return NotArchived("The conversation is not archived.")
    if state in (Status.CLOSED, ARCHIVED, Status.RESOLVED):
        return ConversationClosed(
            f"{EVENT_ACTIONS[event]} is not possible: the conversation is {label}, "
            f"and {label} conversations are read-only."
        )
    return IllegalTransition(
        f"{EVENT_ACTIONS[event]} is not possible while the conversation is {label}."
    )


def _edges() -> frozenset[tuple[str, str]]:
    edges: set[tuple[str, str]] = set()
    for rule in TABLE:
        if rule.closes_resolved:
            edges.add((str(Status.RESOLVED), str(Status.CLOSED)))
        if rule.opens_new:
            continue
        targets = (
            {flow_completion_target(s) for s in (None, *Status)}
            if rule.target == RESTORE
            else {rule.target}
        )
        for source in rule.sources:
            source_status = Status.CLOSED if source == ARCHIVED else source
            for target in targets:
                if source_status != target:
                    edges.add((str(source_status), str(target)))
    return frozenset(edges)


# Every status change an existing conversation may make, whatever the event.
ALLOWED_EDGES: frozenset[tuple[str, str]] = _edges()
# The statuses a conversation may be born with.
INITIAL_STATUSES: frozenset[str] = frozenset(str(rule.target) for rule in TABLE if rule.opens_new)
