"""The SQL behind the rollups: the facts as one view, the triggers that append each
fact's rows to ``reports_delta``, the fold into ``reports_rollup`` and the rebuild.

A fact is a row of a table the services write anyway: a StatusChange (opened,
closed, the status at the end of each day, flow runs), a Message (inbound for the
busiest hours, agent replies) and the response times stored on the Conversation
(first response, resolution; counted into histogram buckets) and the contact's
rating (CSAT: its sum and count, under the agent who resolved). ``FACTS`` is the one
definition; the triggers apply it to the fact just written (or deleted: ``-1``) and
the rebuild to every fact, so the two agree by construction
(tests/reports/test_rollup.py compares them).
"""

from django.db import connection, transaction

from conversations.transitions import Status

# Histogram buckets of the response times: bucket i holds [EDGES[i-1], EDGES[i]).
EDGES = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800)
HOURLY = ("opened", "closed", "inbound")
LOCK = 1_604_816  # pg_advisory lock of the fold and the rebuild
FLOW_STARTS = ("flow_start", "flow_start_priority", "keyword")
# The agent's work on a conversation ends when it becomes one of these (counted once).
ENDED = (str(Status.RESOLVED), str(Status.CLOSED))

FACTS = f"""
CREATE OR REPLACE VIEW reports_facts AS
SELECT sc.conversation_id, 's'::text AS kind, sc.id AS fact_id, sc.at, f.metric,
       f.agent_id, f.n
FROM conversations_statuschange sc
CROSS JOIN LATERAL (VALUES
    ('opened', 0, CASE WHEN sc.from_status = '' THEN 1 END),
    ('closed', coalesce(sc.actor_id, 0),
        CASE WHEN sc.to_status IN {ENDED} AND sc.from_status NOT IN {ENDED} THEN 1 END),
    ('status:' || sc.to_status, 0, CASE WHEN sc.to_status <> sc.from_status THEN 1 END),
    ('status:' || sc.from_status, 0,
        CASE WHEN sc.from_status NOT IN ('', sc.to_status) THEN -1 END),
    ('flow:started', 0, CASE WHEN sc.event IN {FLOW_STARTS} THEN 1 END),
    ('flow:handed_off', 0, CASE WHEN sc.event = 'flow_hand_off' THEN 1 END),
    ('flow:closed', 0, CASE WHEN sc.event = 'flow_close' THEN 1 END),
    ('flow:completed', 0, CASE WHEN sc.event = 'flow_complete' THEN 1 END),
    ('flow:abandoned', 0, CASE WHEN sc.from_status = '{Status.IN_FLOW}'
        AND sc.event NOT LIKE 'flow%%' AND sc.to_status <> '{Status.IN_FLOW}' THEN 1 END)
) f (metric, agent_id, n)
WHERE f.n IS NOT NULL
UNION ALL
SELECT m.conversation_id, 'm', m.id, m.created_at,
       CASE WHEN m.direction = 'inbound' THEN 'inbound' ELSE 'replies' END,
       coalesce(m.author_id, 0), 1
FROM conversations_message m
WHERE m.direction = 'inbound' OR m.sender_kind = 'agent'
UNION ALL
SELECT c.id, 'f', c.id, c.first_response_at, 'frt:' || reports_bucket(c.first_response_seconds),
       coalesce(c.first_response_by_id, 0), 1
FROM conversations_conversation c WHERE c.first_response_seconds IS NOT NULL
UNION ALL
SELECT c.id, 'r', c.id, c.created_at + c.resolution_seconds * interval '1 second',
       'res:' || reports_bucket(c.resolution_seconds), coalesce(c.closed_by_id, 0), 1
FROM conversations_conversation c WHERE c.resolution_seconds IS NOT NULL
UNION ALL
SELECT c.id, 'c', c.id, coalesce(c.resolved_at, c.closed_at), r.metric, coalesce(c.closed_by_id, 0),
       r.n
FROM conversations_conversation c
CROSS JOIN LATERAL (VALUES ('csat:sum', c.rating::integer), ('csat:n', 1)) r (metric, n)
WHERE c.rating IS NOT NULL
"""

# Every key a fact counts under: its channel and all channels, any tag and each tag
# the conversation carries (or only ``p_tag``), all agents and (any tag only) its
# agent. Hours are kept for all agents only: the per-agent figures are per day.
ROWS = """
SELECT (f.at AT TIME ZONE tz)::date AS day,
       CASE WHEN f.metric IN {hourly} AND ag.agent_id = -1
            THEN extract(hour FROM f.at AT TIME ZONE tz)::int ELSE 0 END AS hour,
       ch.channel, ag.agent_id, tg.tag_id, f.metric, {sign} * f.n AS n
FROM reports_facts f
JOIN conversations_conversation cv ON cv.id = f.conversation_id
JOIN conversations_contact ct ON ct.id = cv.contact_id
CROSS JOIN LATERAL (VALUES (ct.channel), ('*')) ch (channel)
CROSS JOIN LATERAL (
    SELECT {tag}
    UNION ALL SELECT l.tag_id FROM conversations_conversationtag l
    WHERE {links} AND l.conversation_id = f.conversation_id
) tg (tag_id)
CROSS JOIN LATERAL (
    SELECT -1 UNION ALL SELECT f.agent_id WHERE f.agent_id > 0 AND tg.tag_id = 0
) ag (agent_id)
"""

COLUMNS = "day, hour, channel, agent_id, tag_id, metric, n"
KEY = "channel, tag_id, agent_id, day, metric, hour"

FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION reports_bucket(seconds integer) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT count(*)::integer FROM unnest(ARRAY{list(EDGES)}) e WHERE e <= seconds
$$;

CREATE OR REPLACE FUNCTION reports_tz() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT time_zone FROM reports_setting ORDER BY id LIMIT 1), 'UTC')
$$;

{FACTS};

CREATE OR REPLACE FUNCTION reports_compact() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock({LOCK}) THEN
        RETURN;
    END IF;
    WITH moved AS (DELETE FROM reports_delta RETURNING {COLUMNS})
    INSERT INTO reports_rollup ({COLUMNS})
    SELECT day, hour, channel, agent_id, tag_id, metric, sum(n) FROM moved
    GROUP BY day, hour, channel, agent_id, tag_id, metric
    ORDER BY {KEY}
    ON CONFLICT ({KEY}) DO UPDATE SET n = reports_rollup.n + EXCLUDED.n;
END $$;

CREATE OR REPLACE FUNCTION reports_fact(p_kind text, p_conv bigint, p_fact bigint,
                                        p_sign integer, p_tag integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    tz text := reports_tz();
BEGIN
    INSERT INTO reports_delta ({COLUMNS})
    {ROWS.format(hourly=HOURLY, sign="p_sign", tag="coalesce(p_tag, 0)", links="p_tag IS NULL")}
    WHERE f.conversation_id = p_conv
      AND (p_kind IS NULL OR (f.kind = p_kind AND f.fact_id = p_fact));
    IF random() < 0.01 THEN
        PERFORM reports_compact();
    END IF;
END $$;
"""

# (table, name, timing and event, WHEN, call)
TRIGGERS = [
    (
        "conversations_statuschange",
        "reports_sc_in",
        "AFTER INSERT",
        "",
        "'s', NEW.conversation_id, NEW.id, 1, NULL",
    ),
    (
        "conversations_statuschange",
        "reports_sc_out",
        "BEFORE DELETE",
        "",
        "'s', OLD.conversation_id, OLD.id, -1, NULL",
    ),
    (
        "conversations_message",
        "reports_message_in",
        "AFTER INSERT",
        "",
        "'m', NEW.conversation_id, NEW.id, 1, NULL",
    ),
    (
        "conversations_message",
        "reports_message_out",
        "BEFORE DELETE",
        "",
        "'m', OLD.conversation_id, OLD.id, -1, NULL",
    ),
    (
        "conversations_conversation",
        "reports_first_response",
        "AFTER UPDATE OF first_response_seconds",
        "OLD.first_response_seconds IS NULL AND NEW.first_response_seconds IS NOT NULL",
        "'f', NEW.id, NEW.id, 1, NULL",
    ),
    (
        "conversations_conversation",
        "reports_resolution",
        "AFTER UPDATE OF resolution_seconds",
        "OLD.resolution_seconds IS NULL AND NEW.resolution_seconds IS NOT NULL",
        "'r', NEW.id, NEW.id, 1, NULL",
    ),
    (
        "conversations_conversation",
        "reports_rating",
        "AFTER UPDATE OF rating",
        "OLD.rating IS NULL AND NEW.rating IS NOT NULL",
        "'c', NEW.id, NEW.id, 1, NULL",
    ),
    (
        "conversations_conversation",
        "reports_times_out",
        "BEFORE DELETE",
        "",
        "'f', OLD.id, OLD.id, -1, NULL); PERFORM reports_fact('r', OLD.id, OLD.id, -1, NULL);"
        " PERFORM reports_fact('c', OLD.id, OLD.id, -1, NULL",
    ),
    (
        "conversations_conversationtag",
        "reports_tag_in",
        "AFTER INSERT",
        "",
        "NULL, NEW.conversation_id, NULL, 1, NEW.tag_id::integer",
    ),
    (
        "conversations_conversationtag",
        "reports_tag_out",
        "BEFORE DELETE",
        "",
        "NULL, OLD.conversation_id, NULL, -1, OLD.tag_id::integer",
    ),
]


def _trigger_sql(table, name, event, when, call) -> str:
    ret = "OLD" if "DELETE" in event else "NULL"
    condition = f"WHEN ({when})" if when else ""
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM reports_fact({call});
    RETURN {ret};
END $$;
DROP TRIGGER IF EXISTS {name} ON {table};
CREATE TRIGGER {name} {event} ON {table} FOR EACH ROW {condition} EXECUTE FUNCTION {name}();
"""


INSTALL = FUNCTIONS + "".join(_trigger_sql(*t) for t in TRIGGERS)
UNINSTALL = "".join(
    f"DROP TRIGGER IF EXISTS {name} ON {table}; DROP FUNCTION IF EXISTS {name}();"
    for table, name, *_ in TRIGGERS
) + (
    "DROP FUNCTION IF EXISTS reports_fact(text, bigint, bigint, integer, integer);"
    "DROP FUNCTION IF EXISTS reports_compact(); DROP VIEW IF EXISTS reports_facts;"
    "DROP FUNCTION IF EXISTS reports_tz(); DROP FUNCTION IF EXISTS reports_bucket(integer);"
)
TRIGGER_NAMES = [(table, name) for table, name, *_ in TRIGGERS]


# The rebuild's form of ``ROWS``: each fact under its own channel, agent and tags
# only, summed; the "all channels" and "all agents" keys are then grouping sets of
# those sums instead of copies of every fact, the per-agent ones of "any tag" only.
REBUILD = f"""
WITH base AS (
    SELECT (f.at AT TIME ZONE %(tz)s)::date AS day,
           CASE WHEN f.metric IN {HOURLY} THEN extract(hour FROM f.at AT TIME ZONE %(tz)s)::int
                ELSE 0 END AS hour,
           ct.channel, f.agent_id, tg.tag_id, f.metric, sum(f.n) AS n
    FROM reports_facts f
    JOIN conversations_conversation cv ON cv.id = f.conversation_id
    JOIN conversations_contact ct ON ct.id = cv.contact_id
    CROSS JOIN LATERAL (
        SELECT 0 UNION ALL SELECT l.tag_id FROM conversations_conversationtag l
        WHERE l.conversation_id = f.conversation_id
    ) tg (tag_id)
    GROUP BY 1, 2, 3, 4, 5, 6
), sets AS (
    SELECT day, hour, coalesce(channel, '*') AS channel, -1 AS agent_id, tag_id, metric,
           sum(n) AS n
    FROM base
    GROUP BY GROUPING SETS ((day, hour, channel, tag_id, metric), (day, hour, tag_id, metric))
    UNION ALL
    SELECT day, 0, coalesce(channel, '*'), agent_id, 0, metric, sum(n)
    FROM base WHERE tag_id = 0 AND agent_id > 0
    GROUP BY GROUPING SETS ((day, channel, agent_id, metric), (day, agent_id, metric))
)
INSERT INTO reports_rollup_next ({COLUMNS})
SELECT {COLUMNS} FROM sets WHERE n <> 0
"""

# The rollup table's indexes and the constraints they back, to build on the new table.
INDEXES = """
SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), c.conname, c.contype
FROM pg_index i
LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
WHERE i.indrelid = 'reports_rollup'::regclass
"""


def rebuild(time_zone: str) -> int:
    """Recompute every rollup from the facts in ``time_zone``; returns the rows
    written. One snapshot (repeatable read): the rollups are rebuilt from the facts
    it sees into a new table (indexed once filled), the deltas it sees are dropped,
    so the deltas of facts written meanwhile stay on top and nothing is counted
    twice or lost. Writers never wait (they only append deltas; the fold is skipped
    while the lock is held); readers see the old rollups until the swap at the end
    (a drop and renames: the only moment they wait)."""
    from .models import Setting

    outermost = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        if outermost:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK])
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        cursor.execute("DELETE FROM reports_delta")
        Setting.objects.update_or_create(pk=1, defaults={"time_zone": time_zone})
        cursor.execute(
            "CREATE TABLE reports_rollup_next"
            " (LIKE reports_rollup INCLUDING DEFAULTS INCLUDING IDENTITY)"
        )
        cursor.execute(REBUILD, {"tz": time_zone})
        rows = cursor.rowcount
        cursor.execute(INDEXES)
        indexes = cursor.fetchall()
        for name, definition, _, _ in indexes:
            cursor.execute(
                definition.replace(f"INDEX {name} ON ", f"INDEX {name}_next ON ").replace(
                    ".reports_rollup ", ".reports_rollup_next "
                )
            )
        cursor.execute("DROP TABLE reports_rollup")
        cursor.execute("ALTER TABLE reports_rollup_next RENAME TO reports_rollup")
        cursor.execute(
            "ALTER SEQUENCE IF EXISTS reports_rollup_next_id_seq RENAME TO reports_rollup_id_seq"
        )
        for name, _, constraint, kind in indexes:
            if constraint:
                what = "PRIMARY KEY" if kind == "p" else "UNIQUE"
                cursor.execute(
                    f"ALTER TABLE reports_rollup ADD CONSTRAINT {constraint}"
                    f" {what} USING INDEX {name}_next"
                )
            else:
                cursor.execute(f"ALTER INDEX {name}_next RENAME TO {name}")
    if outermost:  # statistics, and the visibility map for index-only reads
        with connection.cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE) reports_rollup")
    return rows


def compact() -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT reports_compact()")
