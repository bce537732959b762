"""Agents first: the API and the agents each have their own share of a web process.

Two lanes, each a cap on the requests running at once in one web process:

- ``api`` (``/api/``: the inbound stream, integrations): ``API_CONCURRENCY`` at once;
  another waits up to ``API_QUEUE_SECONDS`` for a place, then gets 429 with
  ``Retry-After`` (the API's error shape) and costs nothing more;
- ``pages`` (everything else: agents' pages, htmx calls, the admin, the web chat):
  ``PAGE_CONCURRENCY`` at once (by default the pool's size less the API's share, so
  a request never waits 10 s for a pooled connection and fails); another waits up to
  ``PAGE_QUEUE_SECONDS``, then 503 with ``Retry-After``.

A flood of inbound messages therefore slows the inbound stream, never the agents,
and a stampede of anything queues instead of failing on the pool. Event streams and
the health checks are in no lane (a stream holds no connection while it waits).
Under the ASGI server the lanes are an ASGI wrapper (``Admission``, config/asgi.py):
a waiting request is a coroutine on the event loop, holding no thread; under a
threaded WSGI server, the middleware (a ``threading.Semaphore``).
"""

import asyncio
import threading

from django.conf import settings
from django.http import HttpResponse, JsonResponse

UNLIMITED = ("/healthz", "/readyz")


def lane_of(path: str) -> str | None:
    if path.startswith("/api/"):
        return "api"
    if path.endswith("/stream/") or path in UNLIMITED:
        return None
    return "pages"


def refusal(lane: str, wait: float) -> HttpResponse:
    retry = str(max(1, round(wait)))
    if lane == "api":
        response = JsonResponse(
            {
                "error": "overloaded",
                "detail": f"The server is busy with other requests; retry in {retry} s.",
            },
            status=429,
        )
    else:
        response = HttpResponse(
            "The server is very busy; try again in a moment.", status=503, content_type="text/plain"
        )
    response["Retry-After"] = retry
    return response


ADMITTED = "parley.admitted"  # set in the ASGI scope by ``Admission``


class Admission:
    """The lanes under the ASGI server, in front of Django: a waiting request is a
    coroutine on the event loop (no thread, no database connection, nothing parsed)
    until its lane has a place, and a refused one never reaches Django."""

    def __init__(self, app):
        self.app = app
        self.lanes = lanes()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.semaphores: dict[str, asyncio.Semaphore] = {}

    async def __call__(self, scope, receive, send):
        lane = lane_of(scope["path"]) if scope["type"] == "http" else None
        if lane is None or not self.lanes[lane][0]:
            return await self.app(scope, receive, send)
        limit, wait = self.lanes[lane]
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            self.loop = loop
            self.semaphores = {name: asyncio.Semaphore(n) for name, (n, _) in self.lanes.items()}
        semaphore = self.semaphores[lane]
        try:
            await asyncio.wait_for(semaphore.acquire(), timeout=wait)
        except TimeoutError:
            response = refusal(lane, wait)
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.items()]
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": headers}
            )
            await send({"type": "http.response.body", "body": response.content})
            return None
        try:
            return await self.app({**scope, ADMITTED: True}, receive, send)
        finally:
            semaphore.release()


class AdmissionMiddleware:
    """The same lanes under a threaded WSGI server (a waiting request holds its
    thread); under the ASGI server ``Admission`` has admitted the request already."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.lanes = lanes()
        self.threads = {
            name: threading.Semaphore(max(limit, 1)) for name, (limit, _) in self.lanes.items()
        }

    def __call__(self, request):
        lane = lane_of(request.path)
        admitted = getattr(request, "scope", {}).get(ADMITTED)
        if admitted or lane is None or not self.lanes[lane][0]:
            return self.get_response(request)
        wait = self.lanes[lane][1]
        if not self.threads[lane].acquire(timeout=wait):
            return refusal(lane, wait)
        try:
            return self.get_response(request)
        finally:
            self.threads[lane].release()


def lanes() -> dict[str, tuple[int, float]]:
    return {
        "api": (settings.API_CONCURRENCY, settings.API_QUEUE_SECONDS),
        "pages": (settings.PAGE_CONCURRENCY, settings.PAGE_QUEUE_SECONDS),
    }
