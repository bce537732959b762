"""For load balancers and orchestrators: anonymous, cheap, JSON.

- ``/healthz`` (liveness): the process answers; touches nothing else, so a database
  outage never gets the web processes restarted.
- ``/readyz`` (readiness): this process can serve: the database answers, the task
  queue's backend answers, and the process's LISTEN connection (the real-time event
  bus) is up. 503 with the failing checks otherwise, so the balancer sends traffic
  elsewhere. Each process remembers its answer for ``READY_CACHE_SECONDS``: polling
  it hard costs at most one round of checks per second.
"""

import asyncio
import contextlib
import logging
import time

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import JsonResponse
from django.tasks import task_backends
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from conversations.events import bus, release_connection

logger = logging.getLogger(__name__)
READY_CACHE_SECONDS = 1.0
LISTEN_WAIT_SECONDS = CHECK_TIMEOUT = 2.0
_last: tuple[float, int, dict] | None = None


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


def _database() -> None:
    pool = connection.pool
    if pool is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return
    pool.open()
    with pool.connection(timeout=CHECK_TIMEOUT) as raw:
        raw.execute("SELECT 1")


def _storage_checks() -> dict:
    """The database through the pool (waiting ``CHECK_TIMEOUT`` at most, not the
    pool's own timeout), then the queue's backend."""
    checks = {}
    for name, check in (("database", _database), ("queue", _queue)):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:
            logger.warning("readyz: %s unreachable: %s", name, exc)
            checks[name] = "unreachable"
            if name == "database":
                checks["queue"] = "unknown"
                break
    release_connection()
    return checks


def _queue() -> None:
    ping = getattr(task_backends["default"], "ping", None)
    if ping is not None:
        ping()


async def _listener_check() -> str:
    ready = bus.start()
    if not bus.connected:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), timeout=LISTEN_WAIT_SECONDS)
    return "ok" if bus.connected else "down"


@never_cache
@require_GET
async def readyz(request):
    global _last
    now = time.monotonic()
    if _last is None or now - _last[0] > READY_CACHE_SECONDS:
        checks = await sync_to_async(_storage_checks)()
        checks["listener"] = await _listener_check()
        ok = all(value == "ok" for value in checks.values())
        _last = (now, 200 if ok else 503, {"status": "ok" if ok else "unavailable", **checks})
    _, status, body = _last
    return JsonResponse(body, status=status)
