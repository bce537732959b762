"""The whole transition table of PRODUCT.md §3, every allowed and every refused
move, through the services, through plain ``save()`` and through bulk SQL.

The expectations are written out here from the product text, independently of
``conversations/transitions.py``, so a wrong table fails these tests.
"""

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from conversations import services
from conversations.exceptions import IllegalTransition
from conversations.models import Contact, Conversation, Message, Source, StatusChange
from conversations.transitions import ALLOWED_EDGES, INITIAL_STATUSES, Event
from tests.factories import ContactFactory, UserFactory, conversation_in

pytestmark = pytest.mark.django_db

NC, NEW, IP, IF, CLOSED, ARCHIVED, RESOLVED = (
    "not_contacted",
    "new",
    "in_progress",
    "in_flow",
    "closed",
    "archived",
    "resolved",
)
STATES = (NC, NEW, IP, IF, CLOSED, ARCHIVED, RESOLVED)


class Fresh:
    """The move opens a new conversation in ``status``; the old one is untouched."""

    def __init__(self, status):
        self.status = status

    def __repr__(self):
        return f"Fresh({self.status})"


class Refused:
    def __init__(self, code):
        self.code = code

    def __repr__(self):
        return f"Refused({self.code})"


ILLEGAL = Refused("illegal_transition")
ONGOING = Refused("conversation_ongoing")
NOT_ARCHIVABLE = Refused("not_archivable")

# event -> {state: expected}; states: status of the contact's current conversation.
EXPECTED = {
    Event.CONTACT_WRITES: {
        NC: NEW,
        NEW: NEW,
        IP: IP,
        IF: IF,
        CLOSED: Fresh(NEW),
        ARCHIVED: Fresh(NEW),
        RESOLVED: Fresh(NEW),
    },
    Event.KEYWORD: {
        NC: IF,
        NEW: IF,
        IP: ILLEGAL,
        IF: ILLEGAL,
        CLOSED: Fresh(IF),
        ARCHIVED: Fresh(IF),
        RESOLVED: Fresh(IF),
    },
    Event.AGENT_REPLY: {
        NC: IP,
        NEW: IP,
        IP: IP,
        IF: IP,
        CLOSED: ILLEGAL,
        ARCHIVED: ILLEGAL,
        RESOLVED: ILLEGAL,
    },
    Event.FLOW_START: {
        NC: IF,
        NEW: ONGOING,
        IP: ONGOING,
        IF: ONGOING,
        CLOSED: Fresh(IF),
        ARCHIVED: Fresh(IF),
        RESOLVED: ONGOING,
    },
    Event.FLOW_START_PRIORITY: {
        NC: IF,
        NEW: IF,
        IP: IF,
        IF: IF,
        CLOSED: Fresh(IF),
        ARCHIVED: Fresh(IF),
        RESOLVED: Fresh(IF),
    },
    Event.FLOW_MARK_IN_PROGRESS: {
        NC: ILLEGAL,
        NEW: ILLEGAL,
        IP: ILLEGAL,
        IF: IP,
        CLOSED: ILLEGAL,
        ARCHIVED: ILLEGAL,
        RESOLVED: ILLEGAL,
    },
    Event.FLOW_HAND_OFF: {
        NC: ILLEGAL,
        NEW: ILLEGAL,
        IP: ILLEGAL,
        IF: NEW,
        CLOSED: ILLEGAL,
        ARCHIVED: ILLEGAL,
        RESOLVED: ILLEGAL,
    },
    Event.FLOW_CLOSE: {
        NC: ILLEGAL,
        NEW: ILLEGAL,
        IP: ILLEGAL,
        IF: CLOSED,
        CLOSED: ILLEGAL,
        ARCHIVED: ILLEGAL,
        RESOLVED: ILLEGAL,
    },
    Event.CLOSE: {
        NC: CLOSED,
        NEW: CLOSED,
        IP: CLOSED,
        IF: CLOSED,
        CLOSED: ILLEGAL,
        ARCHIVED: ILLEGAL,
        RESOLVED: ILLEGAL,
    },
    Event.ARCHIVE: {
        NC: NOT_ARCHIVABLE,
        NEW: NOT_ARCHIVABLE,
        IP: NOT_ARCHIVABLE,
        IF: NOT_ARCHIVABLE,
        CLOSED: ARCHIVED,
        ARCHIVED: NOT_ARCHIVABLE,
        RESOLVED: NOT_ARCHIVABLE,
    },
    Event.UNARCHIVE: {
        NC: ILLEGAL,
        NEW: ILLEGAL,
        IP: ILLEGAL,
        IF: ILLEGAL,
        CLOSED: ILLEGAL,
        ARCHIVED: CLOSED,
        RESOLVED: ILLEGAL,
    },
    # With CSAT on an agent's close is this event (services choose it; see test_csat.py).
    Event.CLOSE_WITH_SURVEY: {
        NC: ILLEGAL,
        NEW: RESOLVED,
        IP: RESOLVED,
        IF: RESOLVED,
        CLOSED: ILLEGAL,
        ARCHIVED: ILLEGAL,
        RESOLVED: ILLEGAL,
    },
    Event.SURVEY_ANSWER: {
        NC: ILLEGAL,
        NEW: ILLEGAL,
        IP: ILLEGAL,
        IF: ILLEGAL,
        CLOSED: ILLEGAL,
        ARCHIVED: ILLEGAL,
        RESOLVED: CLOSED,
    },
    Event.SURVEY_EXPIRE: {
        NC: ILLEGAL,
        NEW: ILLEGAL,
        IP: ILLEGAL,
        IF: ILLEGAL,
        CLOSED: ILLEGAL,
        ARCHIVED: ILLEGAL,
        RESOLVED: CLOSED,
    },
    Event.AUTO_CLOSE: {
        NC: ILLEGAL,
        NEW: ILLEGAL,
        IP: CLOSED,
        IF: ILLEGAL,
        CLOSED: ILLEGAL,
        ARCHIVED: ILLEGAL,
        RESOLVED: ILLEGAL,
    },
}

CASES = [
    (event, state, expected) for event, row in EXPECTED.items() for state, expected in row.items()
]


def _setup(state: str) -> Conversation:
    if state == ARCHIVED:
        return conversation_in(CLOSED, archived=True)
    return conversation_in(state)


def _apply(event: Event, conversation: Conversation, agent):
    """Drive ``event`` through the service a real caller would use."""
    contact = conversation.contact
    if event == Event.CONTACT_WRITES:
        return services.message_receive(
            channel=contact.channel, external_id=contact.external_id, text="Hello again"
        ).conversation
    if event == Event.AGENT_REPLY:
        services.conversation_reply(conversation=conversation, agent=agent, text="On it")
        return conversation
    if event == Event.CLOSE:
        return services.conversation_close(conversation=conversation, actor=agent)
    if event == Event.ARCHIVE:
        return services.conversation_archive(conversation=conversation, actor=agent)
    if event == Event.UNARCHIVE:
        return services.conversation_unarchive(conversation=conversation, actor=agent)
    return services.apply_event(
        conversation=conversation, event=event, source=Source.FLOW, status_before_flow=NEW
    ).conversation


def _snapshot():
    return (
        list(
            Conversation.objects.order_by("pk").values_list(
                "pk", "status", "archived_at", "closed_at", "assignee_id"
            )
        ),
        StatusChange.objects.count(),
        Message.objects.count(),
    )


@pytest.mark.parametrize(
    ("event", "state", "expected"), CASES, ids=[f"{e.value}-from-{s}" for e, s, _ in CASES]
)
def test_transition_through_services(event, state, expected):
    agent = UserFactory()
    conversation = _setup(state)
    before_changes = conversation.status_changes.count()

    if isinstance(expected, Refused):
        before = _snapshot()
        with pytest.raises(IllegalTransition) as refusal:
            _apply(event, conversation, agent)
        assert refusal.value.code == expected.code
        assert refusal.value.detail  # a sentence for the human
        assert _snapshot() == before, "a refusal must change nothing"
        return

    result = _apply(event, conversation, agent)
    conversation.refresh_from_db()
    if isinstance(expected, Fresh):
        assert result.pk != conversation.pk
        assert result.status == expected.status
        assert result.contact_id == conversation.contact_id
        # The closed one stays in history untouched; a resolved one is closed first,
        # without a rating, its line naming the event.
        assert conversation.status == CLOSED
        if state == RESOLVED:
            assert conversation.rating is None
            line = conversation.status_changes.order_by("-id").first()
            assert (line.from_status, line.to_status, line.event) == (RESOLVED, CLOSED, event)
            before_changes += 1
        assert conversation.status_changes.count() == before_changes
        assert result.status_changes.get().to_status == expected.status
        assert Conversation.objects.filter(contact=conversation.contact).open().count() == 1
        return

    if expected == ARCHIVED:
        assert conversation.status == CLOSED and conversation.archived_at is not None
    else:
        assert conversation.status == expected
    if expected == CLOSED and state != ARCHIVED:
        assert conversation.closed_at is not None
    if expected == CLOSED and state == ARCHIVED:
        assert conversation.archived_at is None
    last = conversation.status_changes.order_by("-at", "-id").first()
    if expected != state:
        assert last.event == event
        assert last.to_status == (CLOSED if expected == ARCHIVED else expected)
    else:
        assert conversation.status_changes.count() == before_changes


@pytest.mark.parametrize(
    ("before_flow", "expected"),
    [(None, CLOSED), (NC, CLOSED), (NEW, NEW), (IP, IP)],
)
def test_flow_completion_returns_to_status_before_flow(before_flow, expected):
    conversation = conversation_in(IF)
    result = services.apply_event(
        conversation=conversation,
        event=Event.FLOW_COMPLETE,
        source=Source.FLOW,
        status_before_flow=before_flow,
    ).conversation
    assert result.pk == conversation.pk
    assert result.status == expected


@pytest.mark.parametrize("state", [NC, NEW, IP, CLOSED])
def test_flow_completion_refused_outside_a_flow(state):
    conversation = conversation_in(state)
    with pytest.raises(IllegalTransition):
        services.apply_event(
            conversation=conversation, event=Event.FLOW_COMPLETE, source=Source.FLOW
        )


def test_contact_created_starts_not_contacted():
    contact = services.contact_create(channel="web", external_id="v-1", name="Ann")
    conversation = contact.conversations.get()
    assert conversation.status == NC
    change = conversation.status_changes.get()
    assert (change.from_status, change.to_status, change.event) == ("", NC, "contact_created")


def test_unknown_contact_writing_gets_a_new_conversation():
    result = services.message_receive(channel="web", external_id="stranger", text="Hi there")
    assert result.contact_created
    assert result.conversation.status == NEW
    assert Contact.objects.get(external_id="stranger").conversations.count() == 1


# --- plain save() and bulk SQL: every ordered pair of statuses ---------------------

STATUSES = (NC, NEW, IP, IF, CLOSED, RESOLVED)
# From §3: every status change an existing conversation may make.
EXPECTED_EDGES = {
    (NEW, RESOLVED),
    (IP, RESOLVED),
    (IF, RESOLVED),
    (RESOLVED, CLOSED),
    (NC, NEW),
    (NC, IP),
    (NC, IF),
    (NC, CLOSED),
    (NEW, IP),
    (NEW, IF),
    (NEW, CLOSED),
    (IP, IF),
    (IP, CLOSED),
    (IF, IP),
    (IF, NEW),
    (IF, CLOSED),
}
PAIRS = [(a, b) for a in STATUSES for b in STATUSES if a != b]


def test_the_table_module_has_exactly_the_product_edges():
    assert set(ALLOWED_EDGES) == EXPECTED_EDGES
    assert set(INITIAL_STATUSES) == {NC, NEW, IF}


def _force_fields(conversation, target):
    """Side fields the database requires for ``target`` (so only the status
    edge itself decides)."""
    return {
        "closed_at": timezone.now() if target == CLOSED else None,
        "resolved_at": conversation.resolved_at or timezone.now(),
    }


def _record_and_commit_check(conversation, source, target):
    """A legal edge still needs its history line by commit time (the database's
    deferred guard, run here as a commit would)."""
    StatusChange.objects.create(
        conversation=conversation,
        from_status=source,
        to_status=target,
        event=Event.CLOSE,
        source=Source.ADMIN,
    )
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_plain_save_refuses_edges_outside_the_table(source, target):
    conversation = conversation_in(source)
    conversation.status = target
    for field, value in _force_fields(conversation, target).items():
        setattr(conversation, field, value)
    if (source, target) in EXPECTED_EDGES:
        conversation.save()
        _record_and_commit_check(conversation, source, target)
        assert Conversation.objects.get(pk=conversation.pk).status == target
    else:
        with pytest.raises(IllegalTransition):
            conversation.save()
        assert Conversation.objects.get(pk=conversation.pk).status == source


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_bulk_update_refused_by_the_database(source, target):
    conversation = conversation_in(source)
    queryset = Conversation.objects.filter(pk=conversation.pk)
    fields = _force_fields(conversation, target)
    if (source, target) in EXPECTED_EDGES:
        queryset.update(status=target, **fields)
        _record_and_commit_check(conversation, source, target)
        assert queryset.get().status == target
    else:
        with pytest.raises(IntegrityError, match="illegal_transition"), transaction.atomic():
            queryset.update(status=target, **fields)
        assert queryset.get().status == source


@pytest.mark.parametrize("status", [IP, CLOSED])
def test_a_conversation_cannot_be_born_in_a_later_status(status):
    contact = ContactFactory()
    services.conversation_close(conversation=contact.conversations.get())
    with pytest.raises(IllegalTransition):
        Conversation.objects.create(
            contact=contact,
            status=status,
            last_activity_at=timezone.now(),
            closed_at=timezone.now() if status == CLOSED else None,
        )


def test_database_refuses_two_open_conversations_for_one_contact():
    conversation = conversation_in(NEW)
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.bulk_create(
            [
                Conversation(
                    contact=conversation.contact, status=NEW, last_activity_at=timezone.now()
                )
            ]
        )


def test_database_refuses_archiving_an_open_conversation():
    conversation = conversation_in(IP)
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.filter(pk=conversation.pk).update(archived_at=timezone.now())


def test_database_requires_closed_at_exactly_when_closed():
    conversation = conversation_in(NEW)
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.filter(pk=conversation.pk).update(status=CLOSED)
    closed = conversation_in(CLOSED)
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.filter(pk=closed.pk).update(closed_at=None)


def test_database_refuses_an_unknown_status():
    conversation = conversation_in(NEW)
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversation.objects.filter(pk=conversation.pk).update(status="pending")
