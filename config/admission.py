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
Under the ASGI server a waiting request holds no thread (an ``asyncio.Semaphore`` on
the process's event loop); under a threaded WSGI server, a ``threading.Semaphore``.
"""

import asyncio
import threading

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
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


class AdmissionMiddleware:
    sync_capable = async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.lanes = {
            "api": (settings.API_CONCURRENCY, settings.API_QUEUE_SECONDS),
            "pages": (settings.PAGE_CONCURRENCY, settings.PAGE_QUEUE_SECONDS),
        }
        self.threads = {
            name: threading.Semaphore(max(limit, 1)) for name, (limit, _) in self.lanes.items()
        }
        self.loop: asyncio.AbstractEventLoop | None = None
        self.semaphores: dict[str, asyncio.Semaphore] = {}
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        lane = lane_of(request.path)
        if lane is None or not self.lanes[lane][0]:
            return self.get_response(request)
        wait = self.lanes[lane][1]
        if not self.threads[lane].acquire(timeout=wait):
            return refusal(lane, wait)
        try:
            return self.get_response(request)
        finally:
            self.threads[lane].release()

    async def _acall(self, request):
        lane = lane_of(request.path)
        if lane is None or not self.lanes[lane][0]:
            return await self.get_response(request)
        limit, wait = self.lanes[lane]
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            self.loop = loop
            self.semaphores = {name: asyncio.Semaphore(n) for name, (n, _) in self.lanes.items()}
        semaphore = self.semaphores[lane]
        try:
            await asyncio.wait_for(semaphore.acquire(), timeout=wait)
        except TimeoutError:
            return refusal(lane, wait)
        try:
            return await self.get_response(request)
        finally:
            semaphore.release()
