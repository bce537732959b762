"""conversations.locks: the retry of a whole transaction after a deadlock or a
serialization failure, and the lock order's statement."""

import pytest
from django.db import OperationalError, connection, transaction

from conversations import locks
from conversations.models import Contact
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _fail_with(sqlstate: str) -> None:
    with connection.cursor() as cursor:  # a real error from PostgreSQL, with its code
        cursor.execute(
            f"DO $$ BEGIN RAISE EXCEPTION 'simulated' USING ERRCODE = '{sqlstate}'; END $$"
        )


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_a_deadlock_reruns_the_whole_transaction_and_its_hooks_run_once(sqlstate, monkeypatch):
    monkeypatch.setattr(locks.time, "sleep", lambda seconds: None)
    attempts, sent = [], []

    @locks.retrying_atomic
    def create(n: int) -> Contact:
        contact = Contact.objects.create(channel="sms", external_id=f"retry-{n}")
        transaction.on_commit(lambda: sent.append(contact.pk))
        attempts.append(contact.pk)
        if len(attempts) < 3:
            _fail_with(sqlstate)
        return contact

    contact = create(1)
    assert len(attempts) == 3
    assert list(Contact.objects.values_list("pk", flat=True)) == [contact.pk]  # 2 rolled back
    assert sent == [contact.pk]  # the rolled-back attempts' hooks never ran


def test_the_retry_is_bounded(monkeypatch):
    monkeypatch.setattr(locks.time, "sleep", lambda seconds: None)
    attempts = []

    @locks.retrying_atomic
    def always_deadlocks():
        attempts.append(1)
        _fail_with("40P01")

    with pytest.raises(OperationalError):
        always_deadlocks()
    assert len(attempts) == locks.TRANSACTION_ATTEMPTS


def test_other_errors_and_nested_calls_are_not_retried():
    attempts = []

    @locks.retrying_atomic
    def fails(sqlstate: str):
        attempts.append(sqlstate)
        _fail_with(sqlstate)

    with pytest.raises(OperationalError):
        fails("57014")  # query cancelled: not a conflict
    # Inside a caller's transaction only the caller can re-run the work.
    with pytest.raises(OperationalError), transaction.atomic():
        fails("40P01")
    assert attempts == ["57014", "40P01"]


def test_a_conversation_is_locked_with_its_contact_first(django_assert_num_queries):
    conversation = ContactFactory().conversations.get()
    with transaction.atomic(), django_assert_num_queries(1) as queries:
        locked = locks.lock_conversation(conversation.pk)
        assert locked.contact.pk == conversation.contact_id
    sql = queries.captured_queries[0]["sql"]
    assert sql.endswith(
        'FOR NO KEY UPDATE OF "conversations_contact", "conversations_conversation"'
    )


def test_a_reply_locks_contact_and_conversation_once_and_updates_the_row_once(agent):
    """A second update of a row the transaction wrote re-checks its foreign keys at
    COMMIT (FOR KEY SHARE on the contact): the reply writes its row once."""
    from django.test.utils import CaptureQueriesContext

    from conversations import services
    from tests.factories import conversation_in

    conversation = conversation_in("new")
    with CaptureQueriesContext(connection) as queries:
        services.conversation_reply(conversation=conversation.pk, agent=agent, text="On it!")
    statements = [q["sql"] for q in queries.captured_queries]
    updates = [s for s in statements if s.startswith('UPDATE "conversations_conversation"')]
    assert len(updates) == 1, statements
    assert sum("FOR NO KEY UPDATE" in s for s in statements) == 1
    assert not any("FOR UPDATE" in s.replace("NO KEY UPDATE", "") for s in statements)
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee_id) == ("in_progress", agent.pk)
    assert conversation.last_message_preview == "On it!" and conversation.waiting_since is None
