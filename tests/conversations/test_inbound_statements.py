"""The inbound message is Parley's most frequent write (issue #6, docs/performance.md):
the number of SQL statements it costs is part of its contract, so a change that adds
one fails here. Counted inside the test's transaction, so ``message_receive``'s own
transaction shows as one SAVEPOINT and its RELEASE."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations import inbound as engine
from conversations import services
from conversations.models import Contact, Conversation, Message, StatusChange
from conversations.transitions import Status
from tests.factories import ContactFactory, conversation_in

pytestmark = pytest.mark.django_db

# Besides its transaction (BEGIN/COMMIT, here SAVEPOINT/RELEASE):
KNOWN_CONTACT_OPEN_CONVERSATION = 2  # lock contact + conversation; message + touch
KNOWN_CONTACT_NONE_OPEN = 3  # miss; lock the contact; conversation + history + message
NEW_CONTACT = 4  # miss; no contact; insert it; conversation + history + message


def _receive(**kwargs) -> tuple[services.Inbound, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        inbound = services.message_receive(**kwargs)
    statements = [q["sql"] for q in queries.captured_queries]
    control = [s for s in statements if s.split()[0] in ("SAVEPOINT", "RELEASE")]
    assert len(control) == 2, statements  # its own transaction, no savepoint inside
    return inbound, [s for s in statements if s not in control]


def test_a_message_into_an_open_conversation_is_two_statements():
    conversation = conversation_in(Status.NEW)
    contact = conversation.contact
    inbound, statements = _receive(
        channel=contact.channel, external_id=contact.external_id, text="any news?"
    )
    assert len(statements) == KNOWN_CONTACT_OPEN_CONVERSATION, statements
    assert (inbound.conversation.pk, inbound.conversation.status) == (conversation.pk, "new")
    stored = Conversation.objects.get(pk=conversation.pk)
    message = Message.objects.get(pk=inbound.message.pk)
    assert (message.conversation_id, message.text, message.direction) == (
        conversation.pk,
        "any news?",
        "inbound",
    )
    assert stored.last_activity_at == message.created_at
    assert stored.last_message_preview == "any news?"
    assert stored.waiting_since is not None


def test_a_message_after_a_closed_conversation_is_three_statements():
    closed = conversation_in(Status.CLOSED)
    contact = closed.contact
    inbound, statements = _receive(
        channel=contact.channel, external_id=contact.external_id, text="me again"
    )
    assert len(statements) == KNOWN_CONTACT_NONE_OPEN, statements
    new = Conversation.objects.get(pk=inbound.conversation.pk)
    assert new.pk != closed.pk and new.status == "new"
    message = Message.objects.get(pk=inbound.message.pk)
    # One INSERT gave the conversation its activity, preview and waiting time.
    assert new.last_activity_at == new.waiting_since == message.created_at
    assert new.last_message_preview == "me again"
    change = StatusChange.objects.get(conversation=new)
    assert (change.from_status, change.to_status, change.event, change.source) == (
        "",
        "new",
        "contact_writes",
        "contact",
    )
    assert change.at == message.created_at
    assert Conversation.objects.get(pk=closed.pk).status == "closed"


def test_a_message_from_a_new_contact_is_four_statements():
    inbound, statements = _receive(channel="web", external_id="first-timer", text="hello")
    assert len(statements) == NEW_CONTACT, statements
    assert inbound.contact_created
    contact = Contact.objects.get(channel="web", external_id="first-timer")
    assert inbound.conversation.contact_id == contact.pk
    assert contact.conversations.get().status == "new"


def test_a_not_contacted_conversation_becomes_new_in_the_same_two_statements():
    contact = ContactFactory()
    conversation = contact.conversations.get()
    inbound, statements = _receive(
        channel=contact.channel, external_id=contact.external_id, text="hi"
    )
    assert len(statements) == KNOWN_CONTACT_OPEN_CONVERSATION, statements
    assert (inbound.conversation.pk, inbound.conversation.status) == (conversation.pk, "new")
    assert Conversation.objects.get(pk=conversation.pk).status == "new"
    changes = list(conversation.status_changes.values_list("from_status", "to_status"))
    assert changes == [("", "not_contacted"), ("not_contacted", "new")]
    message = Message.objects.get(pk=inbound.message.pk)
    change = StatusChange.objects.filter(conversation=conversation).last()
    assert (change.event, change.source) == ("contact_writes", "contact")
    assert change.at == message.created_at


def test_the_name_given_updates_a_known_contact():
    contact = ContactFactory(name="")
    services.message_receive(
        channel=contact.channel, external_id=contact.external_id, text="hi", name="Ann"
    )
    contact.refresh_from_db()
    assert contact.name == "Ann"


def test_the_hand_written_sql_returns_every_column_of_the_models():
    """The inbound statements are SQL written by hand and read back into model
    instances: their columns must be the models' own, in order."""
    conversation = conversation_in(Status.NEW)
    contact = conversation.contact
    columns = {
        model: [f.column for f in model._meta.concrete_fields] for model in (Contact, Conversation)
    }
    with connection.cursor() as cursor:
        cursor.execute(engine.SQL_LOCKED_OPEN, (contact.channel, contact.external_id))
        assert [d.name for d in cursor.description] == columns[Contact] + columns[Conversation]
        cursor.execute(engine.SQL_LOCKED_CONTACT, (contact.channel, contact.external_id))
        assert [d.name for d in cursor.description] == columns[Contact]
    found = engine._locked_contact_and_open_conversation(contact.channel, contact.external_id)
    assert found[0] == contact and found[0].attributes == contact.attributes
    assert found[1] == conversation and found[1].status == "new"


def test_the_inbound_statements_are_prepared_once_per_connection():
    conversation = conversation_in(Status.NEW)
    contact = conversation.contact
    for text in ("one", "two"):
        services.message_receive(
            channel=contact.channel, external_id=contact.external_id, text=text
        )
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE from_sql IS FALSE")
        prepared = [row[0] for row in cursor.fetchall()]
    assert sum("FOR NO KEY UPDATE OF ct, cv" in s for s in prepared) == 1
    assert sum(s.rstrip().endswith("RETURNING (SELECT id FROM m)") for s in prepared) == 1
    # Django's own queries are not prepared.
    assert all("conversations_message" in s or "conversations_contact" in s for s in prepared)


@pytest.mark.parametrize("start", ["new contact", "not_contacted", "new", "in_flow", "closed"])
def test_the_inbound_statements_write_the_rows_of_each_transition(start):
    """From every starting point: the conversation (the same one, or a new one), its
    status, inbox columns and history line."""
    if start == "new contact":
        channel, external_id, before = "web", "someone", None
    else:
        before = conversation_in(start)
        channel, external_id = before.contact.channel, before.contact.external_id
    contact, created, conversation, message = engine.receive(
        channel, external_id, "", "hello there", "contact"
    )
    stored = Conversation.objects.get(pk=conversation.pk)
    assert created == (start == "new contact")
    assert stored.status == conversation.status == ("in_flow" if start == "in_flow" else "new")
    same = before is not None and stored.pk == before.pk
    assert same == (start not in ("new contact", "closed"))
    assert stored.last_message_preview == "hello there"
    assert stored.last_activity_at == Message.objects.get(pk=message.pk).created_at
    assert (stored.waiting_since is None) == (start == "in_flow")
    assert Conversation.objects.filter(contact=contact).open().count() == 1
    history = list(stored.status_changes.values_list("from_status", "to_status"))
    assert (
        history[-1]
        == {
            "new contact": ("", "new"),
            "closed": ("", "new"),
            "not_contacted": ("not_contacted", "new"),
            "new": ("not_contacted", "new"),
            "in_flow": ("not_contacted", "in_flow"),
        }[start]
    )


def test_a_conversation_opened_since_the_snapshot_is_a_conflict_not_an_error(monkeypatch):
    """As if another request opened a conversation after this one looked: the INSERT
    meets the one-open-per-contact index (ON CONFLICT DO NOTHING) and the message goes
    into that conversation."""
    conversation = conversation_in(Status.NEW)
    contact = conversation.contact
    monkeypatch.setattr(engine, "_locked_contact_and_open_conversation", lambda *a: None)
    inbound = services.message_receive(
        channel=contact.channel, external_id=contact.external_id, text="raced"
    )
    assert inbound.conversation.pk == conversation.pk
    assert Conversation.objects.filter(contact=contact).count() == 1
    assert Message.objects.get(pk=inbound.message.pk).conversation_id == conversation.pk


def test_a_conflicting_conversation_closed_meanwhile_opens_a_new_one(monkeypatch):
    closed = conversation_in(Status.CLOSED)
    contact = closed.contact
    real = engine._open_with_message
    calls = []

    def conflict_once(*args, **kwargs):  # as if one was opened, then closed, meanwhile
        calls.append(1)
        return None if len(calls) == 1 else real(*args, **kwargs)

    monkeypatch.setattr(engine, "_open_with_message", conflict_once)
    inbound = services.message_receive(
        channel=contact.channel, external_id=contact.external_id, text="hello again"
    )
    assert len(calls) == 2
    assert inbound.conversation.pk != closed.pk and inbound.conversation.status == "new"
