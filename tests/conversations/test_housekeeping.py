"""Issue #14: auto-close and the end of survey windows, run by the periodic task in a
real ``db_worker`` (django-tasks-db), with archive on close."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from conversations import housekeeping
from conversations.models import Conversation, IdempotencyRecord
from conversations.tasks import schedule_housekeeping
from conversations.transitions import Status
from tests.factories import UserFactory, conversation_in, inbox_settings_set

pytestmark = pytest.mark.django_db

TASK = "conversations.tasks.housekeeping"


def _idle_for(conversation: Conversation, hours: float) -> None:
    Conversation.objects.filter(pk=conversation.pk).update(
        last_activity_at=timezone.now() - timedelta(hours=hours)
    )


def _resolved_ago(conversation: Conversation, hours: float) -> None:
    Conversation.objects.filter(pk=conversation.pk).update(
        resolved_at=timezone.now() - timedelta(hours=hours)
    )


def _run_worker() -> DBTaskResult:
    """Start the chain as ``bin/run`` does, and let a real worker run what is due."""
    schedule_housekeeping(delay=0)  # saving the settings may have started it already
    assert DBTaskResult.objects.filter(task_path=TASK, status="READY").count() == 1
    call_command("db_worker", batch=True, reload=False, startup_delay=False, verbosity=0)
    done = DBTaskResult.objects.get(task_path=TASK, status="SUCCESSFUL")
    return done


@pytest.mark.django_db(transaction=True)
def test_the_worker_auto_closes_idle_in_progress_conversations_as_the_system():
    inbox_settings_set(auto_close_after_hours=4)
    idle = conversation_in(Status.IN_PROGRESS)
    _idle_for(idle, 5)
    recent = conversation_in(Status.IN_PROGRESS)
    _idle_for(recent, 3)
    others = [conversation_in(s) for s in (Status.NEW, Status.IN_FLOW, Status.NOT_CONTACTED)]
    for other in others:
        _idle_for(other, 50)

    done = _run_worker()

    assert done.return_value == {
        "auto_closed": 1,
        "surveys_ended": 0,
        "idempotency_records_pruned": 0,
        "task_results_pruned": 0,
        "deliveries_requeued": 0,
        "sessions_expired": 0,
    }
    idle.refresh_from_db()
    assert idle.status == Status.CLOSED and idle.closed_at and not idle.is_archived
    line = idle.status_changes.order_by("-id").first()
    assert (line.from_status, line.to_status, line.event, line.source, line.actor_id) == (
        "in_progress",
        "closed",
        "auto_close",
        "system",
        None,
    )
    assert Conversation.objects.get(pk=recent.pk).status == Status.IN_PROGRESS
    assert [Conversation.objects.get(pk=o.pk).status for o in others] == [
        Status.NEW,
        Status.IN_FLOW,
        Status.NOT_CONTACTED,
    ]
    # The chain goes on: one successor waits, a period ahead, and is not doubled.
    successor = DBTaskResult.objects.get(task_path=TASK, status="READY")
    assert successor.run_after > timezone.now() + timedelta(seconds=30)
    assert not schedule_housekeeping(delay=0)
    assert DBTaskResult.objects.filter(task_path=TASK, status="READY").count() == 1


@pytest.mark.django_db(transaction=True)
def test_auto_close_is_off_by_default():
    idle = conversation_in(Status.IN_PROGRESS)
    _idle_for(idle, 24 * 365)
    assert _run_worker().return_value == {
        "auto_closed": 0,
        "surveys_ended": 0,
        "idempotency_records_pruned": 0,
        "task_results_pruned": 0,
        "deliveries_requeued": 0,
        "sessions_expired": 0,
    }
    assert Conversation.objects.get(pk=idle.pk).status == Status.IN_PROGRESS


@pytest.mark.django_db(transaction=True)
def test_the_worker_ends_survey_windows_without_a_rating():
    agent = UserFactory()
    inbox_settings_set(csat_enabled=True, csat_window_hours=24)
    over = conversation_in(Status.RESOLVED, agent=agent)
    _resolved_ago(over, 25)
    waiting = conversation_in(Status.RESOLVED)
    _resolved_ago(waiting, 23)

    assert _run_worker().return_value == {
        "auto_closed": 0,
        "surveys_ended": 1,
        "idempotency_records_pruned": 0,
        "task_results_pruned": 0,
        "deliveries_requeued": 0,
        "sessions_expired": 0,
    }

    over.refresh_from_db()
    assert (over.status, over.rating, over.closed_by) == (Status.CLOSED, None, agent)
    line = over.status_changes.order_by("-id").first()
    assert (line.from_status, line.event, line.source) == ("resolved", "survey_expire", "system")
    assert Conversation.objects.get(pk=waiting.pk).status == Status.RESOLVED


@pytest.mark.django_db(transaction=True)
def test_the_worker_archives_what_it_closes_when_the_setting_says_so():
    inbox_settings_set(
        csat_enabled=True, csat_window_hours=1, auto_close_after_hours=1, archive_on_close=True
    )
    idle = conversation_in(Status.IN_PROGRESS)
    _idle_for(idle, 2)
    resolved = conversation_in(Status.RESOLVED)
    _resolved_ago(resolved, 2)

    assert _run_worker().return_value == {
        "auto_closed": 1,
        "surveys_ended": 1,
        "idempotency_records_pruned": 0,
        "task_results_pruned": 0,
        "deliveries_requeued": 0,
        "sessions_expired": 0,
    }

    for conversation in (idle, resolved):
        conversation.refresh_from_db()
        assert conversation.status == Status.CLOSED and conversation.is_archived
        events = list(conversation.status_changes.order_by("-id").values_list("event", flat=True))
        assert events[:2] == ["archive", conversation.status_changes.order_by("-id")[1].event]
        assert events[1] in ("auto_close", "survey_expire")


@pytest.mark.django_db(transaction=True)
def test_the_worker_prunes_idempotency_records_past_their_lifetime():
    user = UserFactory()
    now = timezone.now()
    for key, hours in (("old", 30), ("fresh", 1)):
        IdempotencyRecord.objects.create(
            user=user,
            key=key,
            endpoint="POST /api/v1/messages/inbound",
            request_hash="0" * 64,
            status=201,
            response="{}",
            created_at=now - timedelta(hours=hours),
        )
    assert _run_worker().return_value["idempotency_records_pruned"] == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]


def test_a_second_run_closes_nothing_twice_and_batches_cover_everything():
    inbox_settings_set(auto_close_after_hours=1)
    idle = [conversation_in(Status.IN_PROGRESS) for _ in range(5)]
    for conversation in idle:
        _idle_for(conversation, 2)
    assert housekeeping.auto_close(batch=2) == 5
    assert housekeeping.auto_close(batch=2) == 0
    for conversation in idle:
        assert conversation.status_changes.filter(event="auto_close").count() == 1


def test_saving_the_settings_starts_the_chain(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        inbox_settings_set(auto_close_after_hours=8)
    waiting = DBTaskResult.objects.get(task_path=TASK, status="READY")
    assert waiting.run_after <= timezone.now()
