"""The database's own guards and counters, declared for the models' ``Meta.triggers``.

django-pgtrigger installs them through migrations. The status-edge guard is generated
from ``transitions.ALLOWED_EDGES`` when this module is imported, so a change to the
table changes the trigger and ``makemigrations --check`` fails until a migration
carries it (tests/conversations/test_database_guards.py proves, pair by pair, that the
installed trigger refuses exactly what the table refuses).

What they guard, for every path the model signals cannot see (``QuerySet.update``,
bulk operations, raw SQL):

- a conversation's status changes only along an edge of the table, and every change
  (and every new conversation) has its history line by the time the transaction
  commits (the newest line of the conversation names its status);
- a closed conversation is history: it cannot be deleted (nor, through the cascade,
  its contact), no message can be written into it, and its messages, history lines and
  tag links cannot be changed or deleted;
- history lines are never rewritten (only ``actor``/``note`` may change, so deleting a
  user can still set ``actor`` to NULL);
- the tab counters (``parley_counts``, an append-only table of ±1 rows, migration
  0003) follow every change of a conversation's bucket and every tag link.

Errors carry the same machine codes as the services' refusals (``illegal_transition:
…``, ``tags_locked: …``, ``history_permanent: …``) with SQLSTATE 23514
(check_violation).

Bulk loaders turn them off the declared way: ``pgtrigger.ignore(...)`` or
``pgtrigger.disable(...)`` by URI (``conversations.Conversation:status_edges``), as
bench/seed does.
"""

import pgtrigger

from .transitions import ALLOWED_EDGES, TAGS_LOCKED, Status

# Statuses whose conversation is history (read-only, permanent).
LOCKED_STATUSES: tuple[str, ...] = (str(Status.CLOSED),)


def _sql_list(values) -> str:
    return ", ".join(f"'{value}'" for value in sorted(values))


_LOCKED = _sql_list(LOCKED_STATUSES)
# Closed or resolved: tags lock (a resolved conversation still takes the survey's answer).
_TAGS_LOCKED = _sql_list(TAGS_LOCKED)


def _refuse(code: str, sentence: str, *args: str) -> str:
    placeholders = "".join(f", {arg}" for arg in args)
    return f"RAISE EXCEPTION '{code}: {sentence}'{placeholders} USING ERRCODE = 'check_violation';"


def status_edges() -> pgtrigger.Trigger:
    """Refuses an UPDATE of status along an edge the transition table does not have."""
    edges = _sql_list(f"{source}>{target}" for source, target in ALLOWED_EDGES)
    return pgtrigger.Trigger(
        name="status_edges",
        when=pgtrigger.Before,
        operation=pgtrigger.UpdateOf("status"),
        condition=pgtrigger.Condition("OLD.status IS DISTINCT FROM NEW.status"),
        func=f"""
            IF NOT (OLD.status || '>' || NEW.status) = ANY (ARRAY[{edges}]) THEN
                {
            _refuse(
                "illegal_transition",
                "a conversation cannot go from % to %",
                "OLD.status",
                "NEW.status",
            )
        }
            END IF;
            RETURN NEW;
        """,
    )


def status_recorded() -> pgtrigger.Trigger:
    """At commit, a conversation created or moved in the transaction has a history line
    naming its status (the newest line; archive and unarchive lines name ``closed``)."""
    return pgtrigger.Trigger(
        name="status_recorded",
        when=pgtrigger.After,
        operation=pgtrigger.Insert | pgtrigger.UpdateOf("status"),
        timing=pgtrigger.Deferred,
        func="""
            IF TG_OP = 'UPDATE' AND OLD.status IS NOT DISTINCT FROM NEW.status THEN
                RETURN NULL;
            END IF;
            -- The row as it is now: a later change in the same transaction answers for
            -- itself, and a deleted row has nothing left to record.
            PERFORM 1 FROM conversations_conversation c
                WHERE c.id = NEW.id
                  AND c.status IS DISTINCT FROM (
                      SELECT s.to_status FROM conversations_statuschange s
                      WHERE s.conversation_id = c.id ORDER BY s.id DESC LIMIT 1);
            IF FOUND THEN
                """
        + _refuse(
            "history_missing",
            "every change of status is recorded; conversation % has no history line for %",
            "NEW.id",
            "NEW.status",
        )
        + """
            END IF;
            RETURN NULL;
        """,
    )


def closed_is_permanent() -> pgtrigger.Trigger:
    return pgtrigger.Trigger(
        name="closed_is_permanent",
        when=pgtrigger.Before,
        operation=pgtrigger.Delete,
        condition=pgtrigger.Condition(f"OLD.status IN ({_LOCKED})"),
        func=_refuse(
            "history_permanent",
            "a closed conversation is history and cannot be deleted (conversation %)",
            "OLD.id",
        )
        + " RETURN OLD;",
    )


def conversation_counts() -> list[pgtrigger.Trigger]:
    return [
        pgtrigger.Trigger(
            name="counts",
            when=pgtrigger.After,
            operation=pgtrigger.Insert
            | pgtrigger.Delete
            | pgtrigger.UpdateOf("status", "archived_at", "snoozed_until"),
            declare=[("before", "text"), ("after", "text")],
            func="""
                IF TG_OP <> 'INSERT' THEN
                    before := CASE WHEN OLD.archived_at IS NOT NULL THEN 'archived'
                        WHEN OLD.snoozed_until IS NOT NULL THEN 'snoozed' ELSE OLD.status END;
                END IF;
                IF TG_OP <> 'DELETE' THEN
                    after := CASE WHEN NEW.archived_at IS NOT NULL THEN 'archived'
                        WHEN NEW.snoozed_until IS NOT NULL THEN 'snoozed' ELSE NEW.status END;
                END IF;
                IF before IS NOT DISTINCT FROM after THEN
                    RETURN NULL;
                END IF;
                IF before IS NOT NULL THEN
                    INSERT INTO parley_counts (bucket, n) VALUES (before, -1);
                END IF;
                IF after IS NOT NULL THEN
                    INSERT INTO parley_counts (bucket, n) VALUES (after, 1);
                END IF;
                IF random() < 0.002 THEN
                    PERFORM parley_counts_compact();
                END IF;
                RETURN NULL;
            """,
        ),
        pgtrigger.Trigger(
            name="counts_truncated",
            level=pgtrigger.Statement,
            when=pgtrigger.After,
            operation=pgtrigger.Truncate,
            func="DELETE FROM parley_counts; RETURN NULL;",
        ),
    ]


def snooze_ends_on_close() -> pgtrigger.Trigger:
    """A conversation that stops being open is no longer snoozed, whatever closes it
    (services, bulk statements, raw SQL): only open conversations wait in Snoozed."""
    return pgtrigger.Trigger(
        name="snooze_ends_on_close",
        when=pgtrigger.Before,
        operation=pgtrigger.UpdateOf("status"),
        condition=pgtrigger.Condition(
            f"NEW.status IN ({_LOCKED}) AND NEW.snoozed_until IS NOT NULL"
        ),
        func="NEW.snoozed_until := NULL; RETURN NEW;",
    )


def tags_locked() -> pgtrigger.Trigger:
    """The tag links of a closed or resolved conversation cannot be inserted, moved or
    deleted; so a tag that such a conversation carries cannot be deleted either."""
    return _closed_guard(
        "tags_locked",
        operation=pgtrigger.Insert | pgtrigger.Update | pgtrigger.Delete,
        refusal=_refuse("tags_locked", "the tags of a closed or resolved conversation are locked"),
        statuses=_TAGS_LOCKED,
        lock=" FOR SHARE",
        note="\n            -- FOR SHARE waits for a close in flight, so a link cannot slip in"
        " beside it.",
    )


def link_counts() -> list[pgtrigger.Trigger]:
    return [
        pgtrigger.Trigger(
            name="counts",
            when=pgtrigger.After,
            operation=pgtrigger.Insert | pgtrigger.Delete,
            func="""
                INSERT INTO parley_counts (bucket, n)
                    VALUES ('links', CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END);
                RETURN NULL;
            """,
        ),
        pgtrigger.Trigger(
            name="counts_truncated",
            level=pgtrigger.Statement,
            when=pgtrigger.After,
            operation=pgtrigger.Truncate,
            func="DELETE FROM parley_counts WHERE bucket = 'links'; RETURN NULL;",
        ),
    ]


def _history_of_closed(name: str, *, operation, what: str) -> pgtrigger.Trigger:
    """Rows of a closed conversation's history (messages, status lines) stay as they
    are: no insert into it, no change, no delete."""
    refusal = _refuse("history_permanent", f"the {what} of a closed conversation are history")
    return _closed_guard(name, operation=operation, refusal=refusal)


def _closed_guard(
    name: str, *, operation, refusal: str, statuses=_LOCKED, lock="", note=""
) -> pgtrigger.Trigger:
    """Refuses ``operation`` on a row (old or new) of a closed conversation."""
    return pgtrigger.Trigger(
        name=name,
        when=pgtrigger.Before,
        operation=operation,
        declare=[("ids", "bigint[]")],
        func=f"""
            IF TG_OP = 'INSERT' THEN
                ids := ARRAY[NEW.conversation_id];
            ELSIF TG_OP = 'DELETE' THEN
                ids := ARRAY[OLD.conversation_id];
            ELSE
                ids := ARRAY[OLD.conversation_id, NEW.conversation_id];
            END IF;{note}
            PERFORM 1 FROM conversations_conversation
                WHERE id = ANY (ids) AND status IN ({statuses}){lock};
            IF FOUND THEN
                {refusal}
            END IF;
            IF TG_OP = 'DELETE' THEN
                RETURN OLD;
            END IF;
            RETURN NEW;
        """,
    )


def message_guards() -> list[pgtrigger.Trigger]:
    return [
        _history_of_closed(
            "closed_history",
            operation=(
                pgtrigger.Insert
                | pgtrigger.Delete
                | pgtrigger.UpdateOf("conversation_id", "direction", "sender_kind", "text")
            ),
            what="messages",
        )
    ]


def status_change_guards() -> list[pgtrigger.Trigger]:
    return [
        pgtrigger.Trigger(
            name="history_append_only",
            when=pgtrigger.Before,
            operation=pgtrigger.UpdateOf(
                "conversation_id", "from_status", "to_status", "event", "source", "at"
            ),
            func=_refuse("history_permanent", "a history line is never rewritten") + " RETURN NEW;",
        ),
        _history_of_closed("closed_history", operation=pgtrigger.Delete, what="history lines"),
    ]
