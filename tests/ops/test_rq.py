"""The task queue in Redis (issue 17, PRODUCT.md §11: "a real queue (Redis) where
configured"): ``TASKS_BACKEND=rq`` runs every task on RQ workers (django-tasks-rq),
against a private ``redis-server`` per test. The broadcast split over two RQ workers
and the SIGKILLed worker's chunk are the database queue's tests run on this queue too
(``test_cluster.py``, ``tests/reliability/test_worker_kill.py``, parametrized by
``queue``); here: what only Redis needs."""

import math
import os
import subprocess
import sys
import time
from datetime import timedelta

import django_rq
import pytest
from django.utils import timezone
from redis import Redis
from rq.job import JobStatus

from config.tasks import WAITING, RQJob, RQWorker
from conversations import snooze
from conversations.models import Conversation, StatusChange
from conversations.tasks import housekeeping, schedule_housekeeping, schedule_wake, wake_snoozed
from conversations.transitions import Event, Status
from tests.concurrency import ROOT, run_together
from tests.factories import conversation_in
from tests.ops.conftest import asgi_server, get_json, wait_for, workers

pytestmark = pytest.mark.redis
# Workers and web servers in other processes read the database: committed rows.
in_other_processes = pytest.mark.django_db(transaction=True)


def _settings_with(**environ) -> subprocess.CompletedProcess:
    code = (
        "import config.settings as s; "
        "print(s.TASKS['default']['BACKEND'], s.RQ_QUEUES['default']['URL'], "
        "'django_rq' in s.INSTALLED_APPS)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TASKS_REDIS_URL", "REDIS_URL")}
    return subprocess.run(  # noqa: S603 - our own settings module
        [sys.executable, "-c", code], cwd=ROOT, env=env | environ, capture_output=True, text=True
    )


def test_tasks_backend_rq_puts_the_queue_in_redis_and_says_when_it_has_no_url():
    chosen = _settings_with(TASKS_BACKEND="rq", TASKS_REDIS_URL="redis://10.0.0.5:6379/0")
    assert chosen.stdout.split() == ["config.tasks.RQBackend", "redis://10.0.0.5:6379/0", "True"]
    fallback = _settings_with(TASKS_BACKEND="rq", REDIS_URL="redis://10.0.0.6:6379/1")
    assert fallback.stdout.split()[1] == "redis://10.0.0.6:6379/1"
    missing = _settings_with(TASKS_BACKEND="rq")
    assert missing.returncode != 0
    assert "TASKS_BACKEND=rq needs Redis: set TASKS_REDIS_URL" in missing.stderr


def _scheduled(queue) -> dict[str, float]:
    """Job id → the time RQ holds it for, of every delayed job."""
    key = queue.scheduled_job_registry.key
    return {i.decode(): score for i, score in queue.connection.zrange(key, 0, -1, withscores=True)}


@pytest.mark.django_db
def test_the_self_scheduling_chains_queue_one_run_each_on_redis(redis_queue):
    queue = django_rq.get_queue("default")
    assert schedule_housekeeping() is True
    assert schedule_housekeeping() is False  # one is waiting: no second chain
    at = timezone.now() + timedelta(minutes=5, microseconds=300_000)
    schedule_wake(at)
    schedule_wake(at + timedelta(minutes=1))  # a wake by then is queued already
    assert len(_scheduled(queue)) == 2
    schedule_wake(at - timedelta(minutes=1))  # earlier than any queued: queued
    scheduled = _scheduled(queue)
    assert len(scheduled) == 3
    # RQ keeps whole seconds: rounded up, a task never runs before its time.
    assert math.ceil(at.timestamp()) in scheduled.values()


@pytest.mark.django_db
def test_whether_a_chain_waits_is_read_from_its_own_runs_not_the_whole_queue(
    redis_queue, monkeypatch
):
    # A backlog of another task's runs, due later and due now (a queue that was down).
    for minutes in range(300):
        wake_snoozed.using(run_after=timezone.now() + timedelta(minutes=minutes + 1)).enqueue()
    for _ in range(300):
        wake_snoozed.enqueue()
    backend = housekeeping.get_backend()
    read = []
    fetch_many = RQJob.fetch_many
    monkeypatch.setattr(
        RQJob,
        "fetch_many",
        classmethod(lambda cls, ids, **kw: read.append(len(ids)) or fetch_many(ids, **kw)),
    )

    assert backend.is_waiting(housekeeping) is False
    run = housekeeping.using(run_after=timezone.now() + timedelta(minutes=1)).enqueue()
    assert backend.is_waiting(housekeeping) is True
    assert backend.is_waiting(housekeeping, by=timezone.now()) is False
    assert sum(read) <= 3  # the housekeeping run, each time: none of the 600 others

    # Once a worker has taken it, it no longer waits, and it is forgotten.
    RQJob.fetch(run.id, connection=django_rq.get_connection()).set_status(JobStatus.STARTED)
    assert backend.is_waiting(housekeeping) is False
    assert django_rq.get_connection().zcard(WAITING + housekeeping.module_path) == 0
    assert backend.is_waiting(wake_snoozed, by=timezone.now()) is True


def test_two_workers_queueing_the_due_tasks_at_once_queue_each_exactly_once(redis_queue):
    for _ in range(40):
        wake_snoozed.using(run_after=timezone.now() - timedelta(seconds=2)).enqueue()
    housekeeping.using(run_after=timezone.now() + timedelta(hours=1)).enqueue()  # not due
    queue = django_rq.get_queue("default")
    assert len(_scheduled(queue)) == 41
    workers = [django_rq.get_worker("default", worker_class=RQWorker) for _ in range(2)]

    promoted, errors = run_together([w.promote_due for w in workers for _ in range(3)])

    assert errors == [None] * 6
    assert sum(promoted) == 40
    assert queue.count == 40
    assert len(set(queue.get_job_ids())) == 40
    assert len(_scheduled(queue)) == 1


@in_other_processes
def test_a_snoozed_conversation_is_woken_at_its_time_by_an_rq_worker(redis_queue, tmp_path):
    conversation = conversation_in(Status.NEW)
    until = timezone.now() + timedelta(seconds=3)
    snooze.conversation_snooze(conversation=conversation, until=until)  # queues the wake
    with workers(1, [tmp_path / "worker.log"], redis_queue):
        wait_for(lambda: not Conversation.objects.get(pk=conversation.pk).is_snoozed, 30)
    woken = StatusChange.objects.get(conversation=conversation, event=Event.WAKE)
    assert woken.at >= until


@in_other_processes
def test_readyz_says_the_queue_is_down_while_redis_is_stopped(redis_queue, tmp_path):
    server, base = asgi_server(redis_queue.env, log=tmp_path / "web.log")
    with server:
        status, body, _ = get_json(base + "/readyz")
        assert (status, body["queue"]) == (200, "ok"), body

        Redis.from_url(redis_queue.url).shutdown(nosave=True)
        time.sleep(1.2)  # readyz remembers its answer for a second
        status, body, _ = get_json(base + "/readyz")
    assert status == 503
    assert body == {
        "status": "unavailable",
        "database": "ok",
        "queue": "unreachable",
        "listener": "ok",
    }


@in_other_processes
def test_with_the_queue_down_a_request_that_queues_work_is_done_not_a_500(redis_queue, tmp_path):
    """The queueing runs after the request's commit: Redis down then must not turn
    work that was done into a 500 (the client would send it again); it is logged."""
    from connectors.tokens import token_create
    from tests.factories import UserFactory
    from tests.ops.conftest import post_json

    _, token = token_create(user=UserFactory(), name="queue down")
    conversation = conversation_in(Status.IN_PROGRESS)
    log = tmp_path / "web.log"
    server, base = asgi_server(redis_queue.env, log=log)
    with server:
        Redis.from_url(redis_queue.url).shutdown(nosave=True)
        until = (timezone.now() + timedelta(hours=1)).isoformat()
        status = post_json(
            f"{base}/api/v1/conversations/{conversation.pk}/snooze", {"until": until}, token
        )
    assert status == 200
    conversation.refresh_from_db()
    assert conversation.snoozed_until is not None
    assert "could not queue background work after commit" in log.read_text()
