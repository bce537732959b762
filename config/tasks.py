"""The task backends Parley runs on, with two additions for operations:

- a task enqueued while a request runs carries that request's id (a ``request_id``
  keyword stored with its arguments, removed again before the function runs), and
  the worker logs "task … started/finished" under it: a request can be followed into
  its background work (``config.observability``);
- ``ping()``: is the queue reachable (``/readyz``)?
"""

import logging
import time

from django.tasks import Task
from django_tasks_db import DatabaseBackend as _DatabaseBackend

from config.observability import new_request_id, request_id

logger = logging.getLogger("parley.tasks")
KEY = "request_id"


class TracedTask(Task):
    __slots__ = ()

    def enqueue(self, *args, **kwargs):
        return super().enqueue(*args, **_traced(kwargs))

    async def aenqueue(self, *args, **kwargs):
        return await super().aenqueue(*args, **_traced(kwargs))

    def call(self, *args, **kwargs):
        token = request_id.set(kwargs.pop(KEY, None) or new_request_id())
        started = time.monotonic()
        logger.info("task %s started", self.name)
        try:
            result = super().call(*args, **kwargs)
        except Exception:
            logger.exception("task %s failed", self.name)
            raise
        else:
            logger.info("task %s finished in %.3f s", self.name, time.monotonic() - started)
            return result
        finally:
            request_id.reset(token)


def _traced(kwargs: dict) -> dict:
    current = request_id.get()
    return {**kwargs, KEY: current} if current and KEY not in kwargs else kwargs


class DatabaseBackend(_DatabaseBackend):
    """django-tasks-db: the queue is a table in Parley's own database."""

    task_class = TracedTask

    def ping(self) -> None:
        from django_tasks_db.models import DBTaskResult

        DBTaskResult.objects.only("pk").first()
