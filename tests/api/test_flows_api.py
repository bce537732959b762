import pytest

from conversations.exceptions import ConversationOngoing
from conversations.models import Conversation
from conversations.transitions import Status
from flows import broadcasts
from flows.models import Broadcast, Flow, FlowRun, FlowStep, StepKind
from tests.factories import ContactFactory, conversation_in, grant_broadcast

pytestmark = pytest.mark.django_db


def _flow(*, is_active=True, waits=True) -> Flow:
    flow = Flow.objects.create(name=f"flow-{Flow.objects.count()}", is_active=is_active)
    FlowStep.objects.create(flow=flow, position=10, kind=StepKind.SEND_MESSAGE, text="Hi {name}!")
    if waits:
        FlowStep.objects.create(
            flow=flow, position=20, kind=StepKind.ASK, text="Your order number?", attribute="order"
        )
    return flow


def test_start_a_flow_on_a_not_contacted_conversation(api, agent):
    flow = _flow()
    conversation = ContactFactory().conversations.get()
    response = api.post(f"/flows/{flow.pk}/start", {"conversation_id": conversation.pk})
    assert response.status == 201
    run = FlowRun.objects.get()
    assert response.body == {
        "run_id": run.pk,
        "flow_id": flow.pk,
        "run_state": "waiting",
        "conversation_id": conversation.pk,
        "status": "in_flow",
    }
    assert run.started_by == agent and run.trigger == "api"
    assert conversation.messages.filter(sender_kind="flow").count() == 2


def test_an_ongoing_conversation_needs_priority(api):
    flow = _flow()
    conversation = conversation_in(Status.IN_PROGRESS)
    refused = api.post(f"/flows/{flow.pk}/start", {"conversation_id": conversation.pk})
    assert refused.status == 409
    assert refused.error == ConversationOngoing.code == "conversation_ongoing"
    assert Conversation.objects.get(pk=conversation.pk).status == Status.IN_PROGRESS
    assert not FlowRun.objects.exists()

    forced = api.post(
        f"/flows/{flow.pk}/start", {"conversation_id": conversation.pk, "has_priority": True}
    )
    assert forced.status == 201
    assert forced.body["status"] == "in_flow"
    assert forced.body["conversation_id"] == conversation.pk


def test_a_flow_on_a_closed_conversation_opens_a_new_one(api):
    flow = _flow()
    closed = conversation_in(Status.CLOSED)
    response = api.post(f"/flows/{flow.pk}/start", {"conversation_id": closed.pk})
    assert response.status == 201
    assert response.body["conversation_id"] != closed.pk
    assert response.body["status"] == "in_flow"
    assert Conversation.objects.get(pk=closed.pk).status == Status.CLOSED


def test_flow_start_refusals(api):
    flow = _flow()
    inactive = _flow(is_active=False)
    conversation = ContactFactory().conversations.get()
    cases = [
        ("/flows/999999/start", {"conversation_id": conversation.pk}, 404, "not_found"),
        (f"/flows/{flow.pk}/start", {"conversation_id": 999999}, 404, "not_found"),
        (f"/flows/{inactive.pk}/start", {"conversation_id": conversation.pk}, 409, "flow_inactive"),
        (f"/flows/{flow.pk}/start", {"conversation_id": "abc"}, 422, "invalid_request"),
        (f"/flows/{flow.pk}/start", {}, 422, "invalid_request"),
    ]
    for path, body, status, code in cases:
        response = api.post(path, body)
        assert (path, body, response.status, response.error) == (path, body, status, code)
    assert not FlowRun.objects.exists()
    assert Conversation.objects.get(pk=conversation.pk).status == Status.NOT_CONTACTED


def test_a_broadcast_is_started_and_followed_to_its_counts(api, agent):
    grant_broadcast(agent)
    flow = _flow(waits=False)
    ContactFactory()  # not contacted: gets it
    conversation_in(Status.NEW)  # ongoing: skipped
    response = api.post("/broadcasts", {"flow_id": flow.pk, "segment": "all"})
    assert response.status == 201
    body = response.body
    assert (body["state"], body["total"], body["has_priority"]) == ("queued", 2, False)
    broadcast = Broadcast.objects.get(pk=body["id"])
    assert broadcast.created_by == agent

    broadcasts.broadcast_execute(broadcast_id=broadcast.pk)  # what the worker does

    done = api.get(f"/broadcasts/{broadcast.pk}")
    assert done.status == 200
    assert (done.body["state"], done.body["percent"]) == ("done", 100)
    assert (done.body["sent"], done.body["skipped"], done.body["failed"]) == (1, 1, 0)


def test_broadcast_refusals(api, agent):
    grant_broadcast(agent)
    flow = _flow()
    inactive = _flow(is_active=False)
    cases = [
        ({"flow_id": 999999, "segment": "all"}, 404, "not_found"),
        ({"flow_id": inactive.pk, "segment": "all"}, 409, "flow_inactive"),
        ({"flow_id": flow.pk, "segment": "planets"}, 422, "invalid_request"),  # schema enum
        ({"flow_id": flow.pk, "segment": "tag", "segment_value": " "}, 422, "invalid_input"),
        ({"flow_id": flow.pk, "segment": "status", "segment_value": "zzz"}, 422, "invalid_input"),
        ({"flow_id": flow.pk}, 422, "invalid_request"),
        ({"flow_id": flow.pk, "segment": "all", "has_priority": 0}, 422, "invalid_request"),
        ({"flow_id": str(flow.pk), "segment": "all"}, 422, "invalid_request"),
    ]
    for body, status, code in cases:
        response = api.post("/broadcasts", body)
        assert (body, response.status, response.error) == (body, status, code)
    assert not Broadcast.objects.exists()
    assert api.get("/broadcasts/424242").status == 404
