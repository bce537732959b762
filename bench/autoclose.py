"""Benchmark: issue #14's periodic closes, set-based, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/parley_autoclose_bench \
        .venv/bin/python bench/autoclose.py [--due 100000] [--others 0] [--archive]

Recreates the database named in DATABASE_URL (its name must end in _bench; never
point it at real data), migrates it and seeds, in SQL: ``--due`` In progress
conversations idle for two days, ``--due`` Resolved ones whose survey was sent two
days ago, and ``--others`` closed conversations around them (a bigger table). Then
it times ``housekeeping.auto_close`` and ``housekeeping.expire_surveys`` (what the
periodic task runs) with a 24 h period and window, checks that every due row was
closed once with its history line, and prints the numbers. ``--archive`` turns
archive on close on (one more history line a row).
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/parley_autoclose_bench")
os.environ.setdefault("LOG_LEVEL", "WARNING")

SEED = """
    INSERT INTO conversations_contact (channel, external_id, name, attributes, created_at)
    SELECT 'web', 'ac-' || g, 'Contact ' || g, '{{}}', now() FROM generate_series(1, {n}) g;

    INSERT INTO conversations_conversation (contact_id, status, created_at, updated_at,
        last_activity_at, last_message_preview, resolved_at, closed_at)
    SELECT id,
        CASE WHEN mod(id, 2) = 0 THEN 'in_progress' ELSE 'resolved' END,
        now() - interval '3 days', now() - interval '2 days', now() - interval '2 days', '',
        CASE WHEN mod(id, 2) = 1 THEN now() - interval '2 days' END, NULL
    FROM conversations_contact;

    INSERT INTO conversations_conversation (contact_id, status, created_at, updated_at,
        last_activity_at, last_message_preview, closed_at)
    SELECT 1 + mod(g, {n}), 'closed', now() - interval '9 days', now() - interval '9 days',
        now() - interval '9 days', '', now() - interval '8 days'
    FROM generate_series(1, {others}) g;

    INSERT INTO conversations_statuschange (conversation_id, from_status, to_status, event,
        source, note, at)
    SELECT id, '', status, 'contact_writes', 'contact', '', created_at
    FROM conversations_conversation;
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--due", type=int, default=100_000, help="due rows of each kind")
    parser.add_argument("--others", type=int, default=0, help="closed rows around them")
    parser.add_argument("--archive", action="store_true", help="archive on close")
    args = parser.parse_args()

    from broadcast import recreate_database  # bench/broadcast.py, beside this script

    recreate_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    import pgtrigger
    from django.core.management import call_command
    from django.db import connection, transaction

    from conversations import housekeeping
    from conversations.inbox_settings import InboxSettings
    from conversations.models import Conversation, StatusChange

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    # The tab counters and change events off while loading (as bench/seed does), then
    # the counters recounted: their per-row compaction is quadratic in one transaction.
    loading = pgtrigger.ignore(
        "conversations.Conversation:counts",
        "conversations.Conversation:events_insert",
        "conversations.Conversation:status_recorded",
    )
    with loading, transaction.atomic(), connection.cursor() as cursor:
        for statement in SEED.split(";")[:-1]:
            cursor.execute(statement.format(n=2 * args.due, others=args.others))
        cursor.execute("SELECT parley_counts_rebuild()")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    total = Conversation.objects.count()
    print(f"seeded {total:,} conversations in {time.perf_counter() - started:.1f} s")
    InboxSettings(
        pk=1,
        csat_enabled=True,
        csat_window_hours=24,
        auto_close_after_hours=24,
        archive_on_close=args.archive,
    ).save()
    lines = StatusChange.objects.count()

    for name, run, event in (
        ("auto-close", housekeeping.auto_close, "auto_close"),
        ("survey-window expiry", housekeeping.expire_surveys, "survey_expire"),
    ):
        started = time.perf_counter()
        closed = run()
        seconds = time.perf_counter() - started
        again = run()
        recorded = StatusChange.objects.filter(event=event).count()
        assert closed == recorded == args.due and again == 0, (closed, recorded, again)
        print(
            f"{name}: {closed:,} closed in {seconds:.2f} s "
            f"({closed / seconds:,.0f}/s, batches of {housekeeping.BATCH:,}); "
            f"a second run closes {again}"
        )
    added = StatusChange.objects.count() - lines
    archived = Conversation.objects.filter(archived_at__isnull=False).count()
    print(f"history lines added: {added:,}; archived: {archived:,}; table: {total:,} rows")


if __name__ == "__main__":
    main()
