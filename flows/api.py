"""The flows router of the integration API: start a flow on a conversation, start a
broadcast and follow it (PRODUCT.md §9). Writes go through ``flows.engine`` and
``flows.broadcasts``."""

from datetime import datetime

from django.http import Http404
from ninja import Field, Router, Schema
from ninja.responses import Status as Respond

from conversations.idempotency import idempotent
from conversations.models import Conversation
from conversations.schemas import BodyId, ErrorOut, Flag, Id, TextSchema

from . import broadcasts, engine
from .models import Broadcast, Flow, Segment, Trigger

router = Router(tags=["flows"])

ERRORS = {401: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut}


class FlowStartIn(TextSchema):
    conversation_id: BodyId = Field(description="The conversation whose contact gets the flow.")
    has_priority: Flag = Field(
        False, description="Interrupt an ongoing conversation (and any running flow)."
    )


class FlowStartOut(Schema):
    """From the FlowRun."""

    run_id: int
    flow_id: int
    run_state: str = Field(description="`running`, `waiting` (for the contact) or `finished`.")
    conversation_id: int = Field(
        description="The conversation the flow runs on: a new one when the given one was closed."
    )
    status: str = Field(description="That conversation's status now.")


class BroadcastIn(TextSchema):
    flow_id: BodyId
    segment: Segment = Field(description="`all`, `tag`, `channel` or `status`.")
    segment_value: str = Field(
        "",
        max_length=200,
        description="The tag name, the channel or the status (not for `all`).",
    )
    has_priority: Flag = Field(
        False, description="Also reach contacts whose conversation is ongoing (else skipped)."
    )


class BroadcastOut(Schema):
    id: int
    flow_id: int
    segment: str
    segment_value: str
    has_priority: bool
    state: str = Field(description="`queued`, `running`, `done` or `failed`.")
    total: int
    sent: int
    skipped: int = Field(description="Contacts skipped because their conversation was ongoing.")
    failed: int
    percent: int
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _flow(flow_id: int) -> Flow:
    flow = Flow.objects.filter(pk=flow_id).first()
    if flow is None:
        raise Http404(f"There is no flow with id {flow_id}.")
    return flow


@router.post(
    "/flows/{flow_id}/start",
    response={201: FlowStartOut, **ERRORS},
    summary="Start a flow for a conversation's contact",
    description=(
        "Not contacted → In a flow; closed → a new conversation In a flow; an ongoing "
        "conversation is refused with 409 `conversation_ongoing` unless `has_priority` "
        "is true. 409 `flow_inactive` for an inactive flow."
    ),
)
@idempotent
def flow_start(request, flow_id: Id, payload: FlowStartIn):
    flow = _flow(flow_id)
    if not Conversation.objects.filter(pk=payload.conversation_id).exists():
        raise Http404(f"There is no conversation with id {payload.conversation_id}.")
    run = engine.flow_start(
        flow=flow,
        conversation=payload.conversation_id,
        has_priority=payload.has_priority,
        trigger=Trigger.API,
        actor=request.auth,
    )
    # The run's conversation as it is now (the flow may have moved it on).
    status = Conversation.objects.values_list("status", flat=True).get(pk=run.conversation_id)
    return Respond(
        201,
        {
            "run_id": run.pk,
            "flow_id": run.flow_id,
            "run_state": run.state,
            "conversation_id": run.conversation_id,
            "status": status,
        },
    )


@router.post(
    "/broadcasts",
    response={201: BroadcastOut, 403: ErrorOut, **ERRORS},
    summary="Start a broadcast: one flow for every contact of a segment",
    description=(
        "Runs in the background; follow it with `GET /broadcasts/{id}`. Contacts whose "
        "conversation is ongoing are skipped unless `has_priority` is true. The token's "
        "user needs the broadcast permission (staff have it): else 403 "
        "`broadcast_not_permitted`."
    ),
)
@idempotent
def broadcast_create(request, payload: BroadcastIn):
    broadcasts.check_may_broadcast(request.auth)
    flow = _flow(payload.flow_id)
    broadcast = broadcasts.broadcast_create(
        flow=flow,
        segment=payload.segment,
        segment_value=payload.segment_value,
        has_priority=payload.has_priority,
        actor=request.auth,
    )
    return Respond(201, broadcast)


@router.get(
    "/broadcasts/{broadcast_id}",
    response={200: BroadcastOut, 401: ErrorOut, 404: ErrorOut, 422: ErrorOut},
    summary="A broadcast's progress and counts (sent, skipped, failed)",
)
def broadcast_detail(request, broadcast_id: Id):
    broadcast = Broadcast.objects.filter(pk=broadcast_id).first()
    if broadcast is None:
        raise Http404(f"There is no broadcast with id {broadcast_id}.")
    return broadcast
