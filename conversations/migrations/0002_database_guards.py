"""Guards the database enforces by itself, for what model signals cannot see
(``QuerySet.update``, bulk operations, raw SQL):

1. A conversation's status may only change along an edge of the transition table
   (``transitions.ALLOWED_EDGES``, frozen here; ``tests/conversations/
   test_database_guards.py`` checks the two agree, pair by pair).
2. The tag links of a closed conversation cannot be inserted, changed or deleted;
   so a tag that a closed conversation carries cannot be deleted either.

Superseded by the triggers declared on the models (``conversations/triggers.py``,
installed by django-pgtrigger in migration 0006, which drops these).
"""

from django.db import migrations

EDGES = (
    "in_flow>closed",
    "in_flow>in_progress",
    "in_flow>new",
    "in_progress>closed",
    "in_progress>in_flow",
    "new>closed",
    "new>in_flow",
    "new>in_progress",
    "not_contacted>closed",
    "not_contacted>in_flow",
    "not_contacted>in_progress",
    "not_contacted>new",
)
_EDGE_LIST = ", ".join(f"'{edge}'" for edge in EDGES)

POSTGRES_FORWARD = f"""
CREATE OR REPLACE FUNCTION parley_guard_conversation_status() RETURNS trigger AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status
       AND NOT (OLD.status || '>' || NEW.status) = ANY (ARRAY[{_EDGE_LIST}]) THEN
        RAISE EXCEPTION 'illegal_transition: a conversation cannot go from % to %',
            OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER conversation_status_guard
    BEFORE UPDATE OF status ON conversations_conversation
    FOR EACH ROW EXECUTE FUNCTION parley_guard_conversation_status();

CREATE OR REPLACE FUNCTION parley_guard_conversation_tag() RETURNS trigger AS $$
DECLARE
    ids bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        ids := ARRAY[NEW.conversation_id];
    ELSIF TG_OP = 'DELETE' THEN
        ids := ARRAY[OLD.conversation_id];
    ELSE
        ids := ARRAY[OLD.conversation_id, NEW.conversation_id];
    END IF;
    -- FOR SHARE waits for a close in flight, so a link cannot slip in beside it.
    PERFORM 1 FROM conversations_conversation
        WHERE id = ANY (ids) AND status = 'closed' FOR SHARE;
    IF FOUND THEN
        RAISE EXCEPTION 'tags_locked: the tags of a closed conversation are locked'
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER conversationtag_lock
    BEFORE INSERT OR UPDATE OR DELETE ON conversations_conversationtag
    FOR EACH ROW EXECUTE FUNCTION parley_guard_conversation_tag();
"""

POSTGRES_REVERSE = """
DROP TRIGGER IF EXISTS conversationtag_lock ON conversations_conversationtag;
DROP FUNCTION IF EXISTS parley_guard_conversation_tag();
DROP TRIGGER IF EXISTS conversation_status_guard ON conversations_conversation;
DROP FUNCTION IF EXISTS parley_guard_conversation_status();
"""


class Migration(migrations.Migration):
    dependencies = [("conversations", "0001_initial")]

    operations = [
        migrations.RunSQL(POSTGRES_FORWARD, POSTGRES_REVERSE),
    ]
