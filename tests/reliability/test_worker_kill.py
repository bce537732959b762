"""Issues 7 §2 and 12.7: a broadcast worker killed half-way (a real ``db_worker``
process, SIGKILL) leaves its chunk's task "running" in the queue forever; another
worker, started with no command typed, finds the chunk by its lease and delivers to
every contact exactly once.

To kill it at a known point, the test holds a row lock on a contact of the second
chunk: the worker commits chunk 1, blocks inside chunk 2, and is killed there.
PostgreSQL rolls chunk 2 back with the dead connection. The workers run with
2-second leases (``short_lease_settings``); the production lease is 30 s and the
sweep 15 s, so a stalled chunk is picked up within 45 s.

Run on both queues: the database's ``db_worker`` and, with the queue in Redis, RQ
workers (issue 17): the leases live in the database, so they carry over; RQ's part is
that the surviving worker runs the broadcast's (delayed) watch.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from conversations.models import Contact, Message, SenderKind
from flows import selectors
from flows.broadcasts import broadcast_create
from flows.models import Broadcast, BroadcastChunk, BroadcastDelivery, BroadcastState, Flow
from tests.concurrency import RQ_WORKER, database_url_for_subprocess
from tests.factories import ContactFactory
from tests.reliability import short_lease_settings

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    return database_url_for_subprocess()


DB_WORKER = [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay"]


def _worker(queue=None) -> subprocess.Popen:
    """A worker on the test database with short leases: ``db_worker``, or an RQ worker
    when ``queue`` is the ``redis_queue``."""
    env = (
        os.environ
        | (queue.env if queue else {})
        | {
            "DATABASE_URL": _database_url(),
            "DATABASE_POOL": "false",
            "SECRET_KEY": "worker-kill-test",
            "DEBUG": "false",
            "STATIC_NO_MANIFEST": "true",
            "DJANGO_SETTINGS_MODULE": "tests.reliability.short_lease_settings",
        }
    )
    argv = RQ_WORKER if queue else [*DB_WORKER, "--interval", "0.1"]
    return subprocess.Popen(  # noqa: S603 — our own manage.py
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_for(condition, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def _blocked_by(lock: psycopg.Connection) -> bool:
    """Whether another session waits for a lock that ``lock`` holds."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            [lock.info.backend_pid],
        )
        return cursor.fetchone() is not None


def test_a_sigkilled_worker_s_chunk_is_picked_up_by_another_worker_exactly_once(queue, settings):
    from flows.models import FlowStep, StepKind

    # The broadcast's first watch is queued from here: as soon as the workers' own.
    settings.BROADCAST_SWEEP_SECONDS = short_lease_settings.BROADCAST_SWEEP_SECONDS
    size = short_lease_settings.BROADCAST_CHUNK_SIZE  # the workers plan the chunks

    total = size * 2 + size // 2  # three chunks
    contacts = [ContactFactory() for _ in range(total)]
    flow = Flow.objects.create(name="Announcement")
    FlowStep.objects.create(flow=flow, position=1, kind=StepKind.SEND_MESSAGE, text="We moved!")
    blocker = contacts[size + size // 2]  # inside the second chunk

    # Hold the contact's row from another connection (the worker locks it too).
    lock = psycopg.connect(_database_url().replace("postgres://", "postgresql://"))
    lock.execute("SELECT 1 FROM conversations_contact WHERE id = %s FOR UPDATE", [blocker.pk])

    broadcast = broadcast_create(flow=flow, segment="all")  # queued after commit
    worker = _worker(queue)
    try:
        _wait_for(lambda: BroadcastChunk.objects.filter(done_at__isnull=False).count() == 1)
        _wait_for(lambda: _blocked_by(lock))  # the worker waits for the lock, inside chunk 2
        assert BroadcastChunk.objects.filter(done_at__isnull=False).count() == 1
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
        lock.rollback()
        lock.close()

    assert worker.returncode == -signal.SIGKILL
    broadcast.refresh_from_db()
    assert broadcast.state == BroadcastState.RUNNING
    assert BroadcastDelivery.objects.filter(broadcast=broadcast).count() == size
    assert Message.objects.filter(sender_kind=SenderKind.BROADCAST).count() == size

    # Past its lease and unlocked, chunk 2 is stalled: the page says so.
    _wait_for(lambda: selectors.broadcast_catching_up(Broadcast.objects.get(pk=broadcast.pk)))

    # Another worker, and no command typed: its watch picks chunk 2 up again.
    again = _worker(queue)
    try:
        _wait_for(
            lambda: Broadcast.objects.get(pk=broadcast.pk).state == BroadcastState.DONE,
            timeout=60,
        )
    finally:
        again.terminate()
        again.wait(timeout=30)

    broadcast.refresh_from_db()
    assert (broadcast.state, broadcast.sent, broadcast.skipped, broadcast.failed) == (
        BroadcastState.DONE,
        total,
        0,
        0,
    )
    assert BroadcastDelivery.objects.filter(broadcast=broadcast).count() == total
    per_contact = {
        contact.pk: Message.objects.filter(
            conversation__contact=contact, sender_kind=SenderKind.BROADCAST
        ).count()
        for contact in Contact.objects.all()
    }
    assert set(per_contact.values()) == {1}
    assert Broadcast.objects.get(pk=broadcast.pk).finished_at is not None
