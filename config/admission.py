"""Agents first: the API may use only part of a web process.

At most ``API_CONCURRENCY`` API requests (``/api/``: the inbound stream, integrations)
run at once in each web process; another waits up to ``API_QUEUE_SECONDS`` for a
place, then gets 429 with ``Retry-After`` (the API's error shape) and costs nothing
more. Agents' pages, their htmx calls and the event streams are never held back, so
a flood of inbound messages slows the inbound stream, not the agents. Under the ASGI
server a waiting request holds no thread (an ``asyncio.Semaphore`` on the process's
event loop); under a threaded WSGI server, a ``threading.BoundedSemaphore``.
"""

import asyncio
import threading

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import JsonResponse

PREFIX = "/api/"


def overloaded() -> JsonResponse:
    retry = max(1, round(settings.API_QUEUE_SECONDS))
    response = JsonResponse(
        {
            "error": "overloaded",
            "detail": f"The server is busy with other requests; retry in {retry} s.",
        },
        status=429,
    )
    response["Retry-After"] = str(retry)
    return response


class ApiAdmissionMiddleware:
    sync_capable = async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.limit = settings.API_CONCURRENCY
        self.wait = settings.API_QUEUE_SECONDS
        self.threads = threading.BoundedSemaphore(max(self.limit, 1))
        self.loop_semaphore: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        if not self.limit or not request.path.startswith(PREFIX):
            return self.get_response(request)
        if not self.threads.acquire(timeout=self.wait):
            return overloaded()
        try:
            return self.get_response(request)
        finally:
            self.threads.release()

    async def _acall(self, request):
        if not self.limit or not request.path.startswith(PREFIX):
            return await self.get_response(request)
        semaphore = self._semaphore()
        try:
            await asyncio.wait_for(semaphore.acquire(), timeout=self.wait)
        except TimeoutError:
            return overloaded()
        try:
            return await self.get_response(request)
        finally:
            semaphore.release()

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self.loop_semaphore is None or self.loop_semaphore[0] is not loop:
            self.loop_semaphore = (loop, asyncio.Semaphore(self.limit))
        return self.loop_semaphore[1]
