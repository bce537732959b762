"""The change bus: "conversation 42 changed", from PostgreSQL to every open screen.

Writing. Every change an agent's screen shows bumps the conversation's
``updated_at`` (messages, replies, status, assignment, tags, notes, flow steps, a
broadcast's sends: see ``inbox.selectors.inbox_version``). Two statement-level
triggers on the conversations table turn each such change into a ``ConversationEvent``
row (its id is the event id a reconnecting client sends back) and one ``pg_notify``
on ``CHANNEL``. PostgreSQL delivers a NOTIFY only when its transaction commits and
drops it on rollback, so an event is published on commit, never from a transaction
that may still roll back, for every write path alike (services, the inbound fast
path, set-based broadcasts, the admin, raw SQL), with no Python hook to forget.

Payload: ``[[event_id, conversation_id, contact_id], ...]`` for up to ``MANY`` rows,
else ``{"upto": max_event_id}`` (a bulk change: screens refresh everything).
Ephemeral events (who is viewing or typing) go over ``PRESENCE`` with no row.

Reading. One LISTEN connection per web process (``Bus``: psycopg async, straight to
PostgreSQL, not through the pool), fanning out to in-process subscribers (an
``asyncio.Queue`` per open stream). Every web process on every host listens to the
same database, so it scales out with no new infrastructure.
"""

import asyncio
import json
import logging
from dataclasses import dataclass

import pgtrigger
from django.db import models

logger = logging.getLogger(__name__)

CHANNEL = "parley_events"
PRESENCE = "parley_presence"
MANY = 100
# Rows kept for replay (pruned by the listening processes); an older Last-Event-ID
# gets a "refresh everything" instead of a replay.
KEEP = 100_000
REPLAY_LIMIT = 1000
QUEUE_SIZE = 1000
READY_TIMEOUT = 5.0  # seconds a new stream waits for the process's LISTEN


class BusUnavailable(Exception):
    """The process cannot listen to PostgreSQL right now (the page's heartbeat serves)."""


class ConversationEvent(models.Model):
    """One change of one conversation, for replay after a reconnect."""

    id = models.BigAutoField(primary_key=True)
    conversation_id = models.BigIntegerField()
    contact_id = models.BigIntegerField()
    # Who made the change, when the writer said so (``set_actor``): "changed a
    # moment ago by …".
    actor_id = models.BigIntegerField(null=True)

    class Meta:
        app_label = "conversations"

    def __str__(self) -> str:
        return f"event {self.pk}: conversation {self.conversation_id}"


# Constants only, no input in this SQL.
_PUBLISH = f"""
    WITH changed AS (
        INSERT INTO conversations_conversationevent (conversation_id, contact_id, actor_id)
        SELECT n.id, n.contact_id, nullif(current_setting('parley.actor', true), '')::bigint
        FROM new_rows n {{where}}
        ORDER BY n.id
        RETURNING id, conversation_id, contact_id
    )
    SELECT CASE
        WHEN count(*) = 0 THEN NULL
        WHEN count(*) <= {MANY} THEN
            json_agg(json_build_array(id, conversation_id, contact_id) ORDER BY id)::text
        ELSE json_build_object('upto', max(id))::text
    END INTO payload FROM changed;
    IF payload IS NOT NULL THEN
        PERFORM pg_notify('{CHANNEL}', payload);
    END IF;
    RETURN NULL;
"""  # noqa: S608


def triggers() -> list[pgtrigger.Trigger]:
    """For ``Conversation.Meta.triggers``: an event for every new conversation and
    every update that moved ``updated_at`` (the inbox's change marker)."""
    return [
        pgtrigger.Trigger(
            name="events_insert",
            level=pgtrigger.Statement,
            when=pgtrigger.After,
            operation=pgtrigger.Insert,
            referencing=pgtrigger.Referencing(new="new_rows"),
            declare=[("payload", "text")],
            func=_PUBLISH.format(where=""),
        ),
        pgtrigger.Trigger(
            name="events_update",
            level=pgtrigger.Statement,
            when=pgtrigger.After,
            operation=pgtrigger.Update,
            referencing=pgtrigger.Referencing(old="old_rows", new="new_rows"),
            declare=[("payload", "text")],
            func=_PUBLISH.format(
                where="JOIN old_rows o ON o.id = n.id "
                "WHERE n.updated_at IS DISTINCT FROM o.updated_at"
            ),
        ),
    ]


# --- what a subscriber receives -----------------------------------------------------


@dataclass(frozen=True)
class Change:
    """Conversations changed: ``rows`` are (event_id, conversation_id, contact_id);
    ``everything`` when the change was too large to list (or events may have been
    missed): refresh all."""

    rows: tuple[tuple[int, int, int], ...] = ()
    everything: bool = False
    upto: int = 0

    @property
    def last_id(self) -> int:
        return max([self.upto, *(row[0] for row in self.rows)])


@dataclass(frozen=True)
class Presence:
    """Someone is viewing or typing in a conversation (or has left it)."""

    data: dict


def parse(channel: str, payload: str) -> Change | Presence | None:
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if channel == PRESENCE:
        return Presence(data) if isinstance(data, dict) else None
    if isinstance(data, dict):
        return Change(everything=True, upto=int(data.get("upto", 0)))
    return Change(rows=tuple((int(a), int(b), int(c)) for a, b, c in data))


def set_actor(user) -> None:
    """Name who makes the changes of the current transaction (on its events)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('parley.actor', %s, true)", [str(user.pk) if user else ""]
        )


def last_actor_id(conversation_id: int) -> int | None:
    """Who made the newest named change of a conversation (None: nobody said)."""
    return (
        ConversationEvent.objects.filter(conversation_id=conversation_id, actor_id__isnull=False)
        .order_by("-id")
        .values_list("actor_id", flat=True)
        .first()
    )


def publish_presence(data: dict) -> None:
    """An ephemeral event: no row, no replay. Sent at once (outside a transaction)
    or on commit (inside one), like any NOTIFY."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [PRESENCE, json.dumps(data)])


def replay(after: int) -> Change:
    """What a client that saw event ``after`` missed (synchronous: run it in a
    thread). Too much, or older than what is kept (pruning keeps the newest
    ``KEEP``): refresh everything."""
    rows = list(
        ConversationEvent.objects.filter(id__gt=after)
        .order_by("id")
        .values_list("id", "conversation_id", "contact_id")[: REPLAY_LIMIT + 1]
    )
    newest = latest_id()
    if len(rows) > REPLAY_LIMIT or after < newest - KEEP:
        return Change(everything=True, upto=newest)
    return Change(rows=tuple(rows))


def release_connection() -> None:
    """Give this thread's database connection back (to the pool) before a stream
    starts waiting: an idle stream must not hold one. Not inside a transaction (a
    test's), which keeps its connection."""
    from django.db import connection

    if not connection.in_atomic_block:
        connection.close()


def latest_id() -> int:
    return ConversationEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


# --- on the wire (Server-Sent Events) -------------------------------------------------

KEEPALIVE = 15.0  # seconds between comments on an idle stream
RETRY_MS = 2000  # the browser's reconnection delay


def sse(event: str, data: dict, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


# --- the listener: one per process ----------------------------------------------------


def _conninfo() -> dict:
    """Straight to PostgreSQL: ``DATABASE_DIRECT_URL`` when the pool's URL goes
    through a transaction pooler (LISTEN needs a session of its own), else the same
    server as every other query."""
    from django.conf import settings
    from django.db import connection

    direct = getattr(settings, "DATABASE_DIRECT", None)
    if direct:
        return direct
    params = connection.get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    return params


class Bus:
    """The process's LISTEN connection and its subscribers (one queue per stream).

    Started by the first subscriber, on the running event loop. When the connection
    drops, every subscriber gets a ``Change(everything=True)`` (events may have been
    missed) once it is back.
    """

    PRUNE_EVERY = 60.0

    def __init__(self):
        self.subscribers: set[asyncio.Queue] = set()
        self.task: asyncio.Task | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ready: asyncio.Event | None = None
        self.connected = False  # the LISTEN connection is up right now

    def start(self) -> asyncio.Event:
        """Listen on the running event loop (once); set when first listening."""
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.loop is not loop:
            self.loop, self.ready, self.connected = loop, asyncio.Event(), False
            self.task = loop.create_task(self._run())
        return self.ready

    async def subscribe(self) -> asyncio.Queue:
        self.start()
        queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        self.subscribers.add(queue)
        # Listening before the stream replays or answers: nothing falls in between.
        try:
            await asyncio.wait_for(self.ready.wait(), timeout=READY_TIMEOUT)
        except TimeoutError:
            self.subscribers.discard(queue)
            raise BusUnavailable from None
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.subscribers.discard(queue)

    def fan_out(self, item) -> None:
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                # A stream that cannot keep up: one "refresh everything" replaces its backlog.
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(Change(everything=True))

    async def _run(self) -> None:
        import psycopg

        params = _conninfo()
        delay, dropped = 0.5, False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(**params, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    await conn.execute(f"LISTEN {PRESENCE}")
                    self.ready.set()
                    self.connected = True
                    if dropped:
                        self.fan_out(Change(everything=True))
                    delay = 0.5
                    pruner = asyncio.get_running_loop().create_task(self._prune(params))
                    try:
                        async for notify in conn.notifies():
                            item = parse(notify.channel, notify.payload)
                            if item is not None:
                                self.fan_out(item)
                    finally:
                        pruner.cancel()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database went away: retry, bounded backoff
                logger.warning("event bus: LISTEN connection lost; retrying", exc_info=True)
            self.connected = False
            dropped = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _prune(self, params: dict) -> None:
        import psycopg

        while True:
            await asyncio.sleep(self.PRUNE_EVERY)
            try:
                async with await psycopg.AsyncConnection.connect(**params, autocommit=True) as conn:
                    await conn.execute(
                        "DELETE FROM conversations_conversationevent WHERE id < "
                        "(SELECT max(id) FROM conversations_conversationevent) - %s",
                        [KEEP],
                    )
            except Exception:
                logger.warning("event bus: pruning failed", exc_info=True)


bus = Bus()
