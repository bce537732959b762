"""What the inbox needs to stay fast at a million conversations (docs/performance.md).

An index for the exact external-id search (``UPPER(external_id)``) and the two
indexes behind the inbox's change fingerprint (the newest ``updated_at`` of a
conversation, the newest ``added_at`` of a tag link), and:

1. Trigram indexes (``pg_trgm``) for the inbox's text search, declared on the models.
   Django's ``icontains`` is ``UPPER(col) LIKE UPPER('%term%')``, so the indexes are
   on ``UPPER(col)``: message text and contact name.
2. Exact counters for the tab badges, kept by triggers (declared on the models since
   migration 0006; the table and its two functions stay here), so counting never scans
   the archive. ``parley_counts`` is append-only: each change of a conversation's
   bucket (its status, or ``archived``) inserts a -1 and a +1 row, each tag link
   added or removed a ±1 ``links`` row; nobody updates a shared counter row, so
   writers never wait on each other. Now and then (about one change in 500) a
   writer folds the rows into one per bucket (``parley_counts_compact()``, which
   skips when another transaction is already folding). Readers sum per bucket: a
   few hundred tiny rows. ``TRUNCATE`` of the conversations (test flushes) empties
   the counters with it; ``parley_counts_rebuild()`` recounts from the rows (the
   bench seeder loads with triggers off and calls it).
"""

import django.contrib.postgres.indexes
import django.db.models.functions.text
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models

POSTGRES_FORWARD = r"""
CREATE TABLE parley_counts (
    bucket varchar(20) NOT NULL,
    n bigint NOT NULL
);

CREATE OR REPLACE FUNCTION parley_counts_compact() RETURNS void AS $$
BEGIN
    -- One folder at a time; the others skip (their rows are folded next time).
    IF pg_try_advisory_xact_lock(hashtext('parley_counts_compact')) THEN
        WITH folded AS (DELETE FROM parley_counts RETURNING bucket, n)
        INSERT INTO parley_counts (bucket, n)
            SELECT bucket, sum(n) FROM folded GROUP BY bucket HAVING sum(n) <> 0;
    END IF;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION parley_counts_rebuild() RETURNS void AS $$
BEGIN
    LOCK TABLE parley_counts IN EXCLUSIVE MODE;
    DELETE FROM parley_counts;
    INSERT INTO parley_counts (bucket, n)
        SELECT CASE WHEN archived_at IS NULL THEN status ELSE 'archived' END, count(*)
        FROM conversations_conversation GROUP BY 1;
    INSERT INTO parley_counts (bucket, n)
        SELECT 'links', count(*) FROM conversations_conversationtag;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION parley_counts_conversation() RETURNS trigger AS $$
DECLARE
    before text;
    after text;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        before := CASE WHEN OLD.archived_at IS NULL THEN OLD.status ELSE 'archived' END;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        after := CASE WHEN NEW.archived_at IS NULL THEN NEW.status ELSE 'archived' END;
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
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER parley_counts_conversation
    AFTER INSERT OR DELETE OR UPDATE OF status, archived_at ON conversations_conversation
    FOR EACH ROW EXECUTE FUNCTION parley_counts_conversation();

CREATE OR REPLACE FUNCTION parley_counts_link() RETURNS trigger AS $$
BEGIN
    INSERT INTO parley_counts (bucket, n)
        VALUES ('links', CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER parley_counts_link
    AFTER INSERT OR DELETE ON conversations_conversationtag
    FOR EACH ROW EXECUTE FUNCTION parley_counts_link();

CREATE OR REPLACE FUNCTION parley_counts_truncated() RETURNS trigger AS $$
BEGIN
    IF TG_TABLE_NAME = 'conversations_conversation' THEN
        DELETE FROM parley_counts;
    ELSE
        DELETE FROM parley_counts WHERE bucket = 'links';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER parley_counts_truncated
    AFTER TRUNCATE ON conversations_conversation
    FOR EACH STATEMENT EXECUTE FUNCTION parley_counts_truncated();
CREATE TRIGGER parley_counts_links_truncated
    AFTER TRUNCATE ON conversations_conversationtag
    FOR EACH STATEMENT EXECUTE FUNCTION parley_counts_truncated();

SELECT parley_counts_rebuild();
"""

POSTGRES_REVERSE = r"""
DROP TRIGGER IF EXISTS parley_counts_links_truncated ON conversations_conversationtag;
DROP TRIGGER IF EXISTS parley_counts_truncated ON conversations_conversation;
DROP FUNCTION IF EXISTS parley_counts_truncated();
DROP TRIGGER IF EXISTS parley_counts_link ON conversations_conversationtag;
DROP FUNCTION IF EXISTS parley_counts_link();
DROP TRIGGER IF EXISTS parley_counts_conversation ON conversations_conversation;
DROP FUNCTION IF EXISTS parley_counts_conversation();
DROP FUNCTION IF EXISTS parley_counts_rebuild();
DROP FUNCTION IF EXISTS parley_counts_compact();
DROP TABLE IF EXISTS parley_counts;
"""


class Migration(migrations.Migration):
    dependencies = [("conversations", "0002_database_guards")]

    operations = [
        TrigramExtension(),
        migrations.AddIndex(
            model_name="contact",
            index=django.contrib.postgres.indexes.GinIndex(
                django.contrib.postgres.indexes.OpClass(
                    django.db.models.functions.text.Upper("name"), name="gin_trgm_ops"
                ),
                name="contact_name_trgm",
            ),
        ),
        migrations.AddIndex(
            model_name="message",
            index=django.contrib.postgres.indexes.GinIndex(
                django.contrib.postgres.indexes.OpClass(
                    django.db.models.functions.text.Upper("text"), name="gin_trgm_ops"
                ),
                name="message_text_trgm",
            ),
        ),
        migrations.AddIndex(
            model_name="contact",
            index=models.Index(
                django.db.models.functions.text.Upper("external_id"),
                name="contact_external_id_upper",
            ),
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(fields=["updated_at"], name="conv_updated_at"),
        ),
        migrations.AddIndex(
            model_name="conversationtag",
            index=models.Index(fields=["added_at"], name="conversationtag_added"),
        ),
        migrations.RunSQL(POSTGRES_FORWARD, POSTGRES_REVERSE),
    ]
