"""Server push for the inbox: one Server-Sent Events stream per agent session.

``/inbox/stream/`` (async, on the ASGI server) sends small events and the page asks
htmx for the fragments it needs, so rendering stays in the ordinary views
(static/js/stream.js):

- ``changed``: ``{"ids": [conversation ids]}`` or ``{"all": true}``, with the event
  id; a reconnecting browser sends ``Last-Event-ID`` and gets what it missed;
- ``presence``: ``{"conversation", "agent", "name", "state"}`` (viewing, typing,
  idle: viewing, no longer typing, e.g. the reply was sent; left), ephemeral, not
  replayed; the agent's own are not sent back.

An idle stream holds no database connection (the checks run in a thread that gives
its connection back) and uses no CPU: a queue on the process's event bus
(``conversations.events.bus``) and Django's parked per-request thread; a comment
every ``KEEPALIVE`` seconds keeps proxies from closing it and notices a client that
left.
"""

import asyncio

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET, require_POST

from conversations.events import (
    KEEPALIVE,
    RETRY_MS,
    BusUnavailable,
    Change,
    Presence,
    bus,
    latest_id,
    publish_presence,
    release_connection,
    replay,
    sse,
)
from conversations.models import Conversation
from flows.decorators import agent_required

from .filters import agent_label

# Events older than the Last-Event-ID by this much are replayed too: ids are taken
# before commit, so one may commit (and arrive) just after a newer one. Repeating a
# "changed" is harmless (the page refreshes once more).
REPLAY_SLACK = 50
PRESENCE_STATES = ("viewing", "typing", "idle", "left")


def change_message(change: Change, high: int) -> str:
    if change.everything:
        return sse("changed", {"all": True}, high or None)
    ids = sorted({row[1] for row in change.rows})
    return sse("changed", {"ids": ids}, high or None)


def _last_event_id(request) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.GET.get("last") or ""
    return int(raw) if raw.isdigit() else None


def _open(request) -> tuple[bool, int, Change | None]:
    """The synchronous part (the session, the replay), in one thread that gives its
    database connection back before the stream starts waiting."""
    try:
        user = request.user
        if not (user.is_authenticated and user.is_active):
            return False, 0, None
        last = _last_event_id(request)
        if last is None:
            return True, latest_id(), None
        change = replay(max(last - REPLAY_SLACK, 0))
        return True, max(last, change.last_id), change
    finally:
        release_connection()


@require_GET
async def stream(request):
    try:
        queue = await bus.subscribe()
    except BusUnavailable:
        # The browser stops its EventSource on a non-200: the heartbeat serves.
        return HttpResponse(status=503, headers={"Retry-After": "30"})
    try:
        allowed, high, missed = await sync_to_async(_open)(request)
    except BaseException:
        bus.unsubscribe(queue)
        raise
    if not allowed:
        bus.unsubscribe(queue)
        # EventSource stops on a non-200: the page's heartbeat (and its login
        # redirect) takes over.
        return HttpResponse("Log in to go on.", status=401, content_type="text/plain")
    if not isinstance(request, ASGIRequest):
        # A WSGI server (runserver, the tests' live_server) would hold a thread per
        # stream, forever: no stream there, the page keeps its heartbeat.
        bus.unsubscribe(queue)
        return HttpResponse(status=204)
    me = request.user.pk

    async def events():
        nonlocal high
        try:
            yield f"retry: {RETRY_MS}\n" + sse("hello", {"last": high}, high or None)
            if missed is not None and (missed.rows or missed.everything):
                yield change_message(missed, high)
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if isinstance(item, Presence):
                    if item.data.get("agent") != me:
                        yield sse("presence", item.data)
                    continue
                high = max(high, item.last_id)
                yield change_message(item, high)
        finally:
            bus.unsubscribe(queue)

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache, no-store"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response


@require_POST
@agent_required
def presence(request, pk: int):
    """The pane says "I am viewing" (every few seconds), "I am typing" or "I stopped
    typing" (idle: the reply was sent); everyone else's stream hears it. Nothing is
    stored."""
    state = request.POST.get("state", "viewing")
    if state not in PRESENCE_STATES or not Conversation.objects.filter(pk=pk).exists():
        return HttpResponse(status=204)
    user = request.user
    publish_presence(
        {"conversation": pk, "agent": user.pk, "name": agent_label(user), "state": state}
    )
    return HttpResponse(status=204)
