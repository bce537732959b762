"""How writers lock rows, and what they do when PostgreSQL still breaks a deadlock.

**One lock order, everywhere** (services, the inbound statements, the broadcast sets,
the flow engine): a broadcast chunk's row, then the contact(s) — several in primary
key order —, then the contact's conversation, then the rows under it (flow runs,
tag links), and the broadcast's counters last. A writer that needs a conversation
locks its contact first, in the same statement (:func:`lock_conversation`).

**Both as ``FOR NO KEY UPDATE``**, never ``FOR UPDATE``. Inserting a row that points
at a contact or a conversation (a conversation, a message, a history line, a
delivery) makes PostgreSQL take ``FOR KEY SHARE`` on it for the foreign-key check,
and Django's foreign keys are deferred: that check runs at COMMIT, after every lock
of the transaction was taken, so it is outside any order. ``FOR KEY SHARE`` conflicts
with ``FOR UPDATE`` but not with ``FOR NO KEY UPDATE`` (our updates never change a
key), so a foreign-key check never waits for a writer, and a writer never waits
for a check. That was the deadlock of issue 12.1: a reply locked only the
conversation and updated it twice (the second update of a row this transaction
wrote re-checks its foreign key), so its COMMIT wanted the contact that a flow
start held ``FOR UPDATE`` while waiting for the conversation.

**A bounded retry as the safety net** (:func:`retrying_atomic`): a service entry
point that runs its own transaction re-runs the *whole* transaction, up to
``TRANSACTION_ATTEMPTS`` times, when PostgreSQL reports a deadlock (40P01) or a
serialization failure (40001). Nothing external has happened by then: hooks to the
outside world run on commit (``transaction.on_commit``), and the callbacks of a
rolled-back transaction are dropped. Nested in a caller's transaction, a service
cannot retry on its own (the caller's work is rolled back too): the outermost
``retrying_atomic`` does, and the error goes up to it.
"""

import functools
import logging
import random
import time

from django.db import DatabaseError, connection, transaction

from .models import Contact, Conversation

logger = logging.getLogger(__name__)

TRANSACTION_ATTEMPTS = 4
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock, serialization failure


def lock_contact(contact: Contact | int) -> Contact:
    pk = contact.pk if isinstance(contact, Contact) else contact
    return Contact.objects.select_for_update(no_key=True).get(pk=pk)


def lock_conversation(conversation: Conversation | int) -> Conversation:
    """The conversation and its contact, locked in that order (contact first: the
    ``OF`` list's order is the order PostgreSQL locks a row's tables in), in one
    statement. The contact comes along: hook receivers need its channel."""
    pk = conversation.pk if isinstance(conversation, Conversation) else conversation
    return (
        Conversation.objects.select_related("contact")
        .select_for_update(no_key=True, of=("contact", "self"))
        .get(pk=pk)
    )


def open_conversation_of(contact: Contact) -> Conversation | None:
    """The contact's current conversation (open, or resolved with its survey awaited),
    locked (the contact must be locked first)."""
    return (
        Conversation.objects.select_for_update(no_key=True)
        .filter(contact=contact)
        .current()
        .order_by("-created_at")
        .first()
    )


def is_retryable(error: BaseException) -> bool:
    """A deadlock or a serialization failure: the transaction may simply run again."""
    while error is not None:
        if getattr(error, "sqlstate", None) in RETRYABLE_SQLSTATES:
            return True
        error = error.__cause__
    return False


def retrying_atomic(function):
    """``transaction.atomic`` for a service entry point, re-running the whole
    transaction after a deadlock or a serialization failure (see the module's
    docstring). Inside a caller's transaction it is plain ``atomic``."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if connection.in_atomic_block:
            with transaction.atomic():
                return function(*args, **kwargs)
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            try:
                with transaction.atomic():
                    return function(*args, **kwargs)
            except DatabaseError as error:
                if attempt == TRANSACTION_ATTEMPTS or not is_retryable(error):
                    raise
                logger.warning(
                    "%s: %s; retrying the transaction (attempt %d of %d)",
                    function.__qualname__,
                    str(error).splitlines()[0] if str(error) else type(error).__name__,
                    attempt + 1,
                    TRANSACTION_ATTEMPTS,
                )
                time.sleep(random.uniform(0.005, 0.02 * attempt))  # noqa: S311 - jitter
        raise AssertionError("unreachable")

    return wrapper
