"""The task backends Parley runs on — the database (django-tasks-db, the default) or
Redis through RQ (django-tasks-rq, ``TASKS_BACKEND=rq``) — with three additions for
operations:

- a task enqueued while a request runs carries that request's id (a ``request_id``
  keyword stored with its arguments, removed again before the function runs), and
  the worker logs "task … started/finished" under it: a request can be followed into
  its background work (``config.observability``);
- ``ping()``: is the queue reachable (``/readyz``)?
- ``is_waiting(task, by=…)``: is a run of that task queued and not started yet (the
  self-scheduling chains in ``conversations.tasks`` queue a successor only when not).

django-tasks-rq 0.12 is written for the ``django_tasks`` backport, not Django's own
``django.tasks``: its backend takes the backport's base class and task class. Both
have the same shape, so :class:`RQBackend` only swaps the task class for ours (a
``django.tasks`` task, which the library's job class accepts), and the worker gets
two changes of ours (:class:`RQWorker`, :class:`RQJob`); docs/decisions.md says why.
"""

import logging
import math
import time
from datetime import UTC, datetime

import django_rq
from django.db import close_old_connections, transaction
from django.tasks import Task
from django.utils.functional import cached_property
from django_tasks_db import DatabaseBackend as _DatabaseBackend
from django_tasks_rq import Job as _RQJob
from django_tasks_rq import RQBackend as _RQBackend
from redis import Redis, RedisError, WatchError
from rq import SimpleWorker
from rq.job import JobStatus
from rq.utils import as_text, current_timestamp

from config.observability import new_request_id, request_id

logger = logging.getLogger("parley.tasks")
KEY = "request_id"
PING_TIMEOUT = 2.0  # seconds, as /readyz waits for the database


def queue_after_commit(enqueue) -> None:
    """Run ``enqueue`` (a callable that queues background work) once the current
    transaction commits. If the queue cannot take it then (Redis down), the request's
    work is committed already: the failure is logged (and reported to Sentry), not
    raised, so the client is not told "500" about work that was done and then sends
    it again. What was not queued stays in the database as it was (a delivery pending:
    the admin's "Retry", a paused channel's "Resume", a broadcast's "Resume")."""

    def run() -> None:
        try:
            enqueue()
        except Exception:
            logger.exception("could not queue background work after commit")

    transaction.on_commit(run)


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

        # Any one row, unordered: the model's order (priority, run_after) has an index
        # over waiting tasks only, so ``first()`` sorted every result kept on each
        # probe (250 ms at a million).
        list(DBTaskResult.objects.order_by().values_list("pk", flat=True)[:1])

    def is_waiting(self, task: Task, *, by: datetime | None = None) -> bool:
        from django_tasks_db.models import DBTaskResult, TaskResultStatus

        waiting = DBTaskResult.objects.filter(
            task_path=task.module_path, status=TaskResultStatus.READY
        )
        if by is not None:
            waiting = waiting.filter(run_after__lte=by)
        return waiting.exists()


# --- Redis through RQ ---------------------------------------------------------------
# django-rq reads RQ_QUEUES (settings: only with TASKS_BACKEND=rq) when a queue is used.


# Per task path, a sorted set of its runs' job ids by the time each is due: what
# ``is_waiting`` reads instead of every queued job. The newest WAITING_KEPT per task
# are kept (a task asked about, a chain, has one or two).
WAITING = "parley:waiting:"
WAITING_KEPT = 1000
NOT_STARTED = (JobStatus.QUEUED, JobStatus.SCHEDULED)


class RQBackend(_RQBackend):
    """django-tasks-rq: the queue is Redis (``RQ_QUEUES``), run by ``manage.py
    rqworker`` (:class:`RQWorker`)."""

    task_class = TracedTask

    def enqueue(self, task, args, kwargs):
        # RQ keeps a delayed task's time in whole seconds, rounded down: a wake due at
        # 10:00:00.9 would run at 10:00:00, find nothing due yet and queue itself again.
        # Rounded up instead, a task never runs before its time.
        if task.run_after is not None and task.run_after.microsecond:
            later = math.ceil(task.run_after.timestamp())
            task = task.using(run_after=datetime.fromtimestamp(later, tz=UTC))
        result = super().enqueue(task, args, kwargs)
        at = task.run_after.timestamp() if task.run_after is not None else time.time()
        try:
            with django_rq.get_connection(task.queue_name).pipeline() as pipe:
                key = WAITING + task.module_path
                pipe.zadd(key, {result.id: at})
                pipe.zremrangebyrank(key, 0, -WAITING_KEPT - 1)
                pipe.execute()
        except RedisError:
            # The task is queued; unrecorded, a chain may queue one duplicate run.
            logger.warning("could not record the waiting run of %s", task.module_path)
        return result

    @cached_property
    def _ping_client(self) -> Redis:
        url = django_rq.settings.QUEUES["default"]["URL"]
        return Redis.from_url(url, socket_timeout=PING_TIMEOUT, socket_connect_timeout=PING_TIMEOUT)

    def ping(self) -> None:
        self._ping_client.ping()

    def is_waiting(self, task: Task, *, by: datetime | None = None) -> bool:
        """Reads only this task's own recent runs (``WAITING``), whatever else is
        queued: a backlog of deliveries does not slow a snooze. Runs that started,
        ended or expired are dropped from the set on the way."""
        queue = django_rq.get_queue(task.queue_name, job_class=RQJob)
        key = WAITING + task.module_path
        latest = "+inf" if by is None else by.timestamp()
        ids = [as_text(i) for i in queue.connection.zrangebyscore(key, "-inf", latest)]
        jobs = RQJob.fetch_many(ids, connection=queue.connection, serializer=queue.serializer)
        waiting, gone = False, []
        for job_id, job in zip(ids, jobs, strict=True):
            if job is not None and job.get_status(refresh=False) in NOT_STARTED:
                waiting = True
            else:
                gone.append(job_id)
        if gone:
            queue.connection.zrem(key, *gone)
        return waiting


class RQJob(_RQJob):
    """django-tasks-rq's job, with the database connections a request gets: the
    worker runs jobs in its own process (:class:`RQWorker`), so a connection that
    broke during one job (a restarted PgBouncer) is not handed to the next."""

    def perform(self):
        close_old_connections()
        try:
            return super().perform()
        finally:
            close_old_connections()


PROMOTE_SECONDS = 1  # how often an idle worker looks for delayed tasks that are due


class RQWorker(SimpleWorker):
    """RQ's worker with two changes.

    - In-process (``SimpleWorker``): no fork per job, so each worker keeps its
      database pool and a job costs no new connection; a job still runs under RQ's
      timeout (``RQ_QUEUES[…]["DEFAULT_TIMEOUT"]``).
    - Every worker moves the delayed tasks that are due (``run_after``) from RQ's
      scheduled registry to the queue, at least every ``PROMOTE_SECONDS``, claiming
      them in a Redis transaction (WATCH/MULTI) so two workers never queue one
      twice. RQ's own scheduler (``--with-scheduler``) runs in one worker only,
      under a lock that outlives a SIGKILLed holder by 61 s, and the others try
      for it every 10 minutes: a lost worker host would stall every delayed task
      (broadcast watches, housekeeping, snooze wakes, delivery retries) for
      minutes. Here, as with ``db_worker``, any live worker runs them.
    """

    def _start_scheduler(self, *args, **kwargs) -> None:
        logger.warning("rqworker: --with-scheduler ignored, every worker queues due tasks")

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        if timeout is None:  # burst: what is due now, then what is queued
            self.promote_due()
            return super().dequeue_job_and_maintain_ttl(None, max_idle_time)
        idle_until = None if max_idle_time is None else time.monotonic() + max_idle_time
        while True:
            self.promote_due()
            result = super().dequeue_job_and_maintain_ttl(
                PROMOTE_SECONDS, max_idle_time=PROMOTE_SECONDS
            )
            if result is not None or (idle_until is not None and time.monotonic() >= idle_until):
                return result

    def promote_due(self) -> int:
        """Queue every delayed task whose time has come; returns how many."""
        promoted = 0
        for queue in self.queues:
            registry = queue.scheduled_job_registry
            with queue.connection.pipeline() as pipe:
                try:
                    pipe.watch(registry.key)
                    ids = [
                        as_text(i)
                        for i in pipe.zrangebyscore(
                            registry.key, 0, current_timestamp(), start=0, num=500
                        )
                    ]
                    if not ids:
                        continue
                    jobs = self.job_class.fetch_many(
                        ids, connection=queue.connection, serializer=queue.serializer
                    )
                    pipe.multi()
                    for job_id, job in zip(ids, jobs, strict=True):
                        if job is not None:
                            queue._enqueue_job(
                                job, pipeline=pipe, at_front=job.should_enqueue_at_front()
                            )
                        pipe.zrem(registry.key, job_id)
                    pipe.execute()
                    promoted += len(ids)
                except WatchError:
                    pass  # another worker queued them (or one was added): next round
        return promoted
