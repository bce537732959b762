"""Server push for the web chat: ``/chat/<channel>/stream/``, one Server-Sent Events
stream per visitor (the signed cookie of ``views``).

It sends ``changed`` whenever the visitor's contact has a conversation change (an
agent's reply, a flow's message, a status change) and the page fetches its thread
(static/connectors/chat.js), so rendering stays in ``views.chat_thread``. A visitor
with no contact yet (nothing written) gets 204: the page opens the stream after its
first message. Without a stream the page polls as before.
"""

import asyncio

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from conversations.events import (
    KEEPALIVE,
    RETRY_MS,
    BusUnavailable,
    Change,
    bus,
    release_connection,
    sse,
)
from conversations.models import Contact

from .views import _visitor_id, _web_channel


def _contact_id(request, channel: str) -> int | None:
    try:
        channel = _web_channel(channel)  # 404 for anything but a web chat
        visitor = _visitor_id(request, channel)
        if not visitor:
            return None
        return (
            Contact.objects.filter(channel=channel, external_id=visitor)
            .values_list("pk", flat=True)
            .first()
        )
    finally:
        release_connection()


@require_GET
async def chat_stream(request, channel: str):
    contact = await sync_to_async(_contact_id)(request, channel)
    if contact is None or not isinstance(request, ASGIRequest):
        # No contact yet, or a WSGI server (a thread per stream): the page polls.
        return HttpResponse(status=204)
    try:
        queue = await bus.subscribe()
    except BusUnavailable:
        # The browser stops its EventSource on a non-200: the heartbeat serves.
        return HttpResponse(status=503, headers={"Retry-After": "30"})

    async def events():
        try:
            yield f"retry: {RETRY_MS}\n" + sse("hello", {})
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if isinstance(item, Change) and (
                    item.everything or any(row[2] == contact for row in item.rows)
                ):
                    yield sse("changed", {})
        finally:
            bus.unsubscribe(queue)

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache, no-store"
    response["X-Accel-Buffering"] = "no"
    return response
