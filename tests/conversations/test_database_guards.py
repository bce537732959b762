"""The guards the database enforces by itself (conversations/triggers.py), for every
path the model signals cannot see: raw SQL, ``QuerySet.update``, bulk operations.

Every attempt here runs inside a savepoint that is rolled back, so the tests change
nothing they do not mean to.
"""

import pgtrigger
import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from conversations import transitions
from conversations import triggers as guards
from conversations.models import Contact, Conversation, Message, StatusChange
from conversations.transitions import ALLOWED_EDGES, Status
from tests.factories import ContactFactory, UserFactory, conversation_in

pytestmark = pytest.mark.django_db

STATUSES = [str(status) for status in Status]


def _check_deferred() -> None:
    """Run the deferred guards now, as a commit would."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def _raw_move(conversation_id: int, target: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE conversations_conversation SET status = %s, "
            "closed_at = CASE WHEN %s = 'closed' THEN now() END, archived_at = NULL, "
            "resolved_at = coalesce(resolved_at, now()) "
            "WHERE id = %s",
            [target, target, conversation_id],
        )


def _record(conversation_id: int, source: str, target: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO conversations_statuschange "
            "(conversation_id, from_status, to_status, event, source, note, at) "
            "VALUES (%s, %s, %s, 'close', 'admin', '', now())",
            [conversation_id, source, target],
        )


@pytest.fixture
def one_of_each():
    return {status: conversation_in(status) for status in STATUSES}


def test_the_edge_trigger_refuses_exactly_what_the_table_refuses(one_of_each):
    """Every (from, to) pair, tried against the database in raw SQL."""
    refused_by_database = set()
    for source in STATUSES:
        for target in STATUSES:
            if source == target:
                continue
            try:
                with transaction.atomic():
                    _raw_move(one_of_each[source].pk, target)
                    _record(one_of_each[source].pk, source, target)
                    _check_deferred()
                    raise _RolledBack
            except IntegrityError as error:
                assert "illegal_transition" in str(error), (source, target, error)
                refused_by_database.add((source, target))
            except _RolledBack:
                pass
    every_pair = {(a, b) for a in STATUSES for b in STATUSES if a != b}
    assert refused_by_database == every_pair - set(ALLOWED_EDGES)
    ids = [conversation.pk for conversation in one_of_each.values()]
    assert {c.status for c in Conversation.objects.filter(pk__in=ids)} == set(STATUSES)


class _RolledBack(Exception):
    pass


def _migrated_trigger_hash(model_name: str, trigger_name: str) -> str:
    state = MigrationLoader(connection, ignore_no_migrations=True).project_state()
    model_state = state.models[("conversations", model_name)]
    for trigger in model_state.options.get("triggers", []):
        if trigger.name == trigger_name:
            return trigger.sql.hash
    raise AssertionError(f"no migration installs {trigger_name}")


def test_the_migrations_carry_the_trigger_generated_from_the_table():
    declared = guards.status_edges().compile(Conversation).sql.hash
    assert _migrated_trigger_hash("conversation", "status_edges") == declared


def test_a_change_to_the_table_changes_the_trigger(monkeypatch):
    """So ``makemigrations --check`` fails until a migration carries the change."""
    declared = guards.status_edges().compile(Conversation).sql.hash
    fewer = frozenset(ALLOWED_EDGES - {(Status.IN_FLOW.value, Status.NEW.value)})
    monkeypatch.setattr(guards, "ALLOWED_EDGES", fewer)
    changed = guards.status_edges().compile(Conversation).sql.hash
    assert changed != declared
    assert changed != _migrated_trigger_hash("conversation", "status_edges")
    assert fewer != transitions.ALLOWED_EDGES


def test_a_status_change_without_its_history_line_is_refused():
    conversation = conversation_in(Status.NEW)
    with pytest.raises(IntegrityError, match="history_missing"), transaction.atomic():
        Conversation.objects.filter(pk=conversation.pk).update(status=Status.IN_PROGRESS)
        _check_deferred()
    assert Conversation.objects.get(pk=conversation.pk).status == Status.NEW


def test_a_status_change_with_its_history_line_is_accepted():
    conversation = conversation_in(Status.NEW)
    with transaction.atomic():
        Conversation.objects.filter(pk=conversation.pk).update(status=Status.IN_PROGRESS)
        _record(conversation.pk, Status.NEW, Status.IN_PROGRESS)
        _check_deferred()
    assert Conversation.objects.get(pk=conversation.pk).status == Status.IN_PROGRESS


def test_a_conversation_born_without_history_is_refused():
    contact = ContactFactory()
    conversation = contact.conversations.get()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE conversations_conversation SET status = 'closed', closed_at = now() "
                "WHERE id = %s",
                [conversation.pk],
            )
            _record(conversation.pk, Status.NOT_CONTACTED, Status.CLOSED)
        _check_deferred()
    with pytest.raises(IntegrityError, match="history_missing"), transaction.atomic():
        Conversation.objects.bulk_create(
            [Conversation(contact=contact, status=Status.NEW, last_activity_at=timezone.now())]
        )
        _check_deferred()


def test_the_services_always_leave_history():
    """The ordinary paths pass the deferred check (and so every commit does)."""
    for status in STATUSES:
        conversation_in(status, archived=status == Status.CLOSED)
    _check_deferred()


def test_no_message_goes_into_a_closed_conversation():
    closed = conversation_in(Status.CLOSED)
    with pytest.raises(IntegrityError, match="history_permanent"), transaction.atomic():
        Message.objects.create(
            conversation=closed, direction="inbound", sender_kind="contact", text="sneaky"
        )
    with (
        pytest.raises(IntegrityError, match="history_permanent"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO conversations_message "
            "(conversation_id, direction, sender_kind, text, created_at) "
            "VALUES (%s, 'outbound', 'agent', 'raw', now())",
            [closed.pk],
        )
    assert not closed.messages.filter(text__in=["sneaky", "raw"]).exists()


def test_the_messages_of_a_closed_conversation_cannot_be_changed_moved_or_deleted():
    closed = conversation_in(Status.CLOSED)
    open_one = conversation_in(Status.NEW)
    message = closed.messages.first()
    attempts = [
        lambda: Message.objects.filter(pk=message.pk).update(text="rewritten"),
        lambda: Message.objects.filter(pk=message.pk).update(conversation=open_one),
        lambda: Message.objects.filter(pk=message.pk).delete(),
        # and nothing moves into it either
        lambda: open_one.messages.update(conversation=closed),
    ]
    for attempt in attempts:
        with pytest.raises(IntegrityError, match="history_permanent"), transaction.atomic():
            attempt()
    assert Message.objects.get(pk=message.pk).text == message.text


def test_messages_of_open_conversations_stay_writable():
    conversation = conversation_in(Status.NEW)
    Message.objects.filter(conversation=conversation).update(text="edited while open")
    assert conversation.messages.filter(text="edited while open").exists()


def test_a_closed_conversation_and_its_contact_cannot_be_deleted():
    closed = conversation_in(Status.CLOSED)  # no tags: the tag lock alone would not refuse
    assert not closed.tags.exists()
    with pytest.raises(IntegrityError, match="history_permanent"), transaction.atomic():
        Conversation.objects.filter(pk=closed.pk).delete()
    with pytest.raises(IntegrityError, match="history_permanent"), transaction.atomic():
        Contact.objects.filter(pk=closed.contact_id).delete()
    with (
        pytest.raises(IntegrityError, match="history_permanent"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM conversations_conversation WHERE id = %s", [closed.pk])
    assert Conversation.objects.filter(pk=closed.pk).exists()


def test_a_contact_never_written_to_can_still_be_deleted():
    contact = ContactFactory()
    contact.delete()
    assert not Contact.objects.filter(pk=contact.pk).exists()


def test_history_lines_are_never_rewritten():
    conversation = conversation_in(Status.IN_PROGRESS)
    line = conversation.status_changes.last()
    for change in (
        {"to_status": Status.CLOSED},
        {"from_status": Status.NEW},
        {"event": "close"},
        {"at": timezone.now()},
    ):
        with pytest.raises(IntegrityError, match="history_permanent"), transaction.atomic():
            StatusChange.objects.filter(pk=line.pk).update(**change)


def test_a_closed_conversations_history_lines_cannot_be_deleted():
    closed = conversation_in(Status.CLOSED)
    with pytest.raises(IntegrityError, match="history_permanent"), transaction.atomic():
        closed.status_changes.all().delete()


def test_deleting_an_agent_keeps_the_history_with_no_actor():
    agent = UserFactory()
    conversation = conversation_in(Status.CLOSED, agent=agent)
    assert conversation.status_changes.filter(actor=agent).exists()
    agent.delete()
    assert conversation.status_changes.filter(actor__isnull=True).exists()


def test_a_bulk_loader_turns_a_guard_off_the_declared_way():
    conversation = conversation_in(Status.NEW)
    line = conversation.status_changes.last()
    with pgtrigger.ignore("conversations.StatusChange:history_append_only"):
        StatusChange.objects.filter(pk=line.pk).update(at=line.at.replace(year=2020))
    assert StatusChange.objects.get(pk=line.pk).at.year == 2020
