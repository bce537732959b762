"""The flows back office: flows with their steps inline; runs, broadcasts and
deliveries read-only."""

import pytest
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from conversations.transitions import Status
from flows import broadcasts
from flows.models import Broadcast, Flow, FlowStep, Segment
from tests.factories import ContactFactory, conversation_in

pytestmark = pytest.mark.django_db


def flow_form(**overrides):
    data = {
        "name": "Onboarding",
        "description": "",
        "trigger_keyword": "start",
        "is_active": "on",
        "steps-TOTAL_FORMS": "2",
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
        "steps-0-position": "20",
        "steps-0-kind": "hand_off",
        "steps-1-position": "10",
        "steps-1-kind": "ask",
        "steps-1-text": "Your name?",
        "steps-1-attribute": "name",
    }
    data.update(overrides)
    return data


def test_staff_creates_a_flow_with_steps_inline_ordered_by_position(staff_client):
    response = staff_client.post(reverse("admin:flows_flow_add"), flow_form())
    assert response.status_code == 302, response.content.decode()[:2000]
    flow = Flow.objects.get(name="Onboarding")
    assert list(flow.steps.order_by("position").values_list("kind", flat=True)) == [
        "ask",
        "hand_off",
    ]
    page = staff_client.get(reverse("admin:flows_flow_change", args=[flow.pk]))
    assert page.status_code == 200
    assert "Your name?" in page.content.decode()


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"steps-1-attribute": ""}, "Name the contact attribute that stores the reply."),
        ({"steps-1-text": ""}, "This step sends a message: write its text."),
        ({"steps-1-position": "20"}, "Please correct the duplicate data for"),
    ],
)
def test_invalid_steps_are_refused_with_a_clear_error(staff_client, overrides, error):
    response = staff_client.post(reverse("admin:flows_flow_add"), flow_form(**overrides))
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Flow.objects.exists()
    assert not FlowStep.objects.exists()


def test_duplicate_keyword_is_refused(staff_client):
    Flow.objects.create(name="Other", trigger_keyword="START")
    response = staff_client.post(reverse("admin:flows_flow_add"), flow_form())
    assert response.status_code == 200
    assert "Another flow already uses this trigger keyword." in response.content.decode()


def test_runs_broadcasts_and_deliveries_are_read_only(staff_client, send_only_flow):
    conversation_in(Status.NEW)
    ContactFactory()
    broadcast = broadcasts.broadcast_create(flow=send_only_flow, segment=Segment.ALL, enqueue=False)
    broadcasts.broadcast_execute(broadcast_id=broadcast.pk)
    for name in ("flowrun", "broadcast", "broadcastdelivery"):
        assert staff_client.get(reverse(f"admin:flows_{name}_changelist")).status_code == 200
        assert staff_client.get(reverse(f"admin:flows_{name}_add")).status_code == 403
    page = staff_client.get(reverse("admin:flows_broadcast_change", args=[broadcast.pk]))
    assert page.status_code == 200
    assert 'name="flow"' not in page.content.decode()  # nothing editable


def test_resume_action_requeues_only_unfinished_broadcasts(
    staff_client, send_only_flow, django_capture_on_commit_callbacks
):
    done = broadcasts.broadcast_create(flow=send_only_flow, segment=Segment.ALL, enqueue=False)
    broadcasts.broadcast_execute(broadcast_id=done.pk)
    stuck = broadcasts.broadcast_create(flow=send_only_flow, segment=Segment.ALL, enqueue=False)
    Broadcast.objects.filter(pk=stuck.pk).update(state="running")

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("admin:flows_broadcast_changelist"),
            {"action": "resume_broadcasts", "_selected_action": [done.pk, stuck.pk]},
            follow=True,
        )

    assert "1 broadcast queued again" in response.content.decode()
    tasks = DBTaskResult.objects.filter(task_path="flows.tasks.run_broadcast")
    assert [t.args_kwargs["kwargs"] for t in tasks] == [{"broadcast_id": stuck.pk}]
