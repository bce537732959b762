"""Benchmark: a broadcast on PostgreSQL, end to end (#4: 10,000 contacts < 60 s;
#6: 100,000 contacts <= 60 s at a million conversations).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/parley_flows_bench \
        .venv/bin/python bench/broadcast.py [--contacts 10000] [--workers 2] [--messages 1]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/parley_copy_bench \
        .venv/bin/python bench/broadcast.py --copy-of parley_bench --segment status:closed

Recreates the database named in DATABASE_URL (never point it at real data): either
seeds ``--contacts`` contacts in bulk (8 in 10 not contacted, 1 in 10 New (ongoing:
skipped), 1 in 10 closed), or, with ``--copy-of``, copies ``bench/seed``'s database
(1M conversations, 200k contacts; ``--segment status:closed`` picks the ~96k
contacts without an open conversation, each of whom gets a new one). Then it starts
``--workers`` ``db_worker`` processes and times from ``broadcast_create`` (enqueue)
through the workers (one task per chunk of 1,000 contacts) to the broadcast being
done. The flow is a campaign: one *ask* message (``--messages 2`` adds a greeting
first). Every status change goes through the transition table
(``conversations.bulk``, set-based per chunk); only the seeding uses raw SQL.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/parley_flows_bench")
os.environ.setdefault("LOG_LEVEL", "WARNING")


def recreate_database(url: str, template: str | None = None) -> None:
    """Drop and create the database named in ``url`` (its name must end in _bench),
    empty or, with ``template``, as a copy of that database (``bench/seed``'s 1M
    conversations: the broadcast then runs at full size without changing the
    original; nobody may be connected to it)."""
    import psycopg
    from psycopg import sql
    from seed import maintenance_connection  # bench/seed.py, beside this script

    conn, name = maintenance_connection(url)
    if not name.endswith("_bench"):
        sys.exit(f"Refusing to recreate {name!r}: the benchmark database name must end in _bench.")
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        try:
            conn.execute(create)
        except psycopg.errors.ObjectInUse:
            sys.exit(f"Cannot copy {template!r}: another session is connected to it; retry later.")


def seed(n: int, prefix: str = "bench") -> None:
    from django.db import transaction
    from django.utils import timezone

    from conversations.models import Contact, Conversation, Source, StatusChange
    from conversations.transitions import Event, Status

    now = timezone.now()
    with transaction.atomic():
        contacts = Contact.objects.bulk_create(
            Contact(channel="web", external_id=f"{prefix}-{i}", name=f"Contact {i}")
            for i in range(n)
        )
        statuses = [
            Status.NEW if i % 10 == 1 else Status.NOT_CONTACTED for i in range(len(contacts))
        ]
        conversations = Conversation.objects.bulk_create(
            Conversation(contact=c, status=s, last_activity_at=now)
            for c, s in zip(contacts, statuses, strict=True)
        )
        StatusChange.objects.bulk_create(
            StatusChange(
                conversation=conv,
                from_status="",
                to_status=conv.status,
                event=Event.CONTACT_CREATED,
                source=Source.SYSTEM,
            )
            for conv in conversations
        )
        # 1 in 10 closed: New -> Closed is an edge the database guard allows.
        to_close = [conv.pk for i, conv in enumerate(conversations) if i % 10 == 2]
        Conversation.objects.filter(pk__in=to_close).update(status=Status.NEW)
        Conversation.objects.filter(pk__in=to_close).update(status=Status.CLOSED, closed_at=now)
        # Their history as the database guard asks (the newest line names the status).
        StatusChange.objects.bulk_create(
            StatusChange(
                conversation_id=pk,
                from_status=before,
                to_status=after,
                event=event,
                source=Source.SYSTEM,
            )
            for pk in to_close
            for before, after, event in (
                (Status.NOT_CONTACTED, Status.NEW, Event.CONTACT_WRITES),
                (Status.NEW, Status.CLOSED, Event.CLOSE),
            )
        )


def wait_for_connections(count: int) -> None:
    from django.db import connection

    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] >= count:
                return
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--messages", type=int, choices=(1, 2), default=1, help="messages the flow sends"
    )
    parser.add_argument(
        "--copy-of",
        metavar="DATABASE",
        help="copy this database (bench/seed's 1M conversations) instead of seeding; "
        "the broadcast goes to --segment",
    )
    parser.add_argument(
        "--segment",
        default="",
        help="segment:value, e.g. status:closed (contacts with no open conversation); "
        "default: all contacts",
    )
    args = parser.parse_args()

    if args.copy_of:
        t0 = time.perf_counter()
        recreate_database(os.environ["DATABASE_URL"], template=args.copy_of)
        print(f"copied {args.copy_of} in {time.perf_counter() - t0:.1f} s")
    else:
        recreate_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from conversations.models import Conversation, Message, SenderKind
    from conversations.transitions import Status
    from flows import broadcasts
    from flows.models import Broadcast, Flow, FlowStep, Segment, StepKind

    call_command("migrate", verbosity=0)
    if not args.copy_of:
        t0 = time.perf_counter()
        seed(args.contacts)
        with connection.cursor() as cursor:  # fresh tables: give the planner its statistics
            cursor.execute("ANALYZE")
        print(f"seeded {args.contacts} contacts in {time.perf_counter() - t0:.1f} s")
    segment, _, segment_value = (args.segment or Segment.ALL).partition(":")

    flow = Flow.objects.create(name="Spring campaign")
    if args.messages == 2:
        FlowStep.objects.create(
            flow=flow, position=1, kind=StepKind.SEND_MESSAGE, text="Hi {name}!"
        )
    FlowStep.objects.create(
        flow=flow,
        position=2,
        kind=StepKind.ASK,
        text="Spring offer: 20% off everything this week. Interested? (yes/no)",
        attribute="offer",
    )
    print(
        f"flow: {'send message + ' if args.messages == 2 else ''}ask "
        f"({args.messages} message(s) per contact); {args.workers} db_worker processes"
    )

    env = {**os.environ, "DEBUG": "false"}
    workers = [
        subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "db_worker",
                "--no-reload",
                "--no-startup-delay",
                "--interval",
                "0.05",
                "--verbosity",
                "0",
                "--worker-id",
                f"bench-{n}",
            ],
            cwd=ROOT,
            env=env,
        )
        for n in range(args.workers)
    ]
    try:
        # Workers are up before the broadcast, as in production: wait until each has
        # opened its database connection (at most 60 s), then time create -> done.
        wait_for_connections(len(workers))
        start = time.perf_counter()
        broadcast = broadcasts.broadcast_create(  # enqueues on commit
            flow=flow, segment=segment, segment_value=segment_value
        )
        while time.perf_counter() - start < 600:
            state = Broadcast.objects.values_list("state", flat=True).get(pk=broadcast.pk)
            if state == "done":
                break
            time.sleep(0.1)
        elapsed = time.perf_counter() - start
    finally:
        for worker in workers:  # our own processes, by pid
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)

    broadcast = Broadcast.objects.get(pk=broadcast.pk)
    in_flow = Conversation.objects.filter(
        status=Status.IN_FLOW, flow_runs__broadcast=broadcast
    ).count()
    messages = Message.objects.filter(
        sender_kind=SenderKind.BROADCAST, conversation__flow_runs__broadcast=broadcast
    ).count()
    print(
        f"broadcast #{broadcast.pk}: state={broadcast.state} total={broadcast.total} "
        f"sent={broadcast.sent} skipped={broadcast.skipped} failed={broadcast.failed}"
    )
    print(f"conversations in a flow: {in_flow}; messages sent: {messages}")
    print(f"BROADCAST OF {broadcast.processed} CONTACTS: {elapsed:.1f} s end to end")
    ok = broadcast.state == "done" and broadcast.processed == broadcast.total and elapsed < 60
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
