"""The flows app's services, where callers look for them: the flow engine lives in
``flows.engine``, broadcasts in ``flows.broadcasts``. Both write only through
``conversations.services`` (and ``conversations.bulk`` for a broadcast's sets), so
the transition table decides every status change."""

from .broadcasts import (
    BROADCAST_CHUNK_SIZE,
    broadcast_create,
    broadcast_execute,
    broadcast_plan,
    broadcast_resume,
    broadcast_run_chunk,
    clean_segment,
    segment_contacts,
)
from .engine import (
    FlowInactive,
    Outcome,
    flow_cancel_for,
    flow_resume,
    flow_start,
    handle_inbound,
    keyword_flow,
    render_text,
)

__all__ = [
    "BROADCAST_CHUNK_SIZE",
    "FlowInactive",
    "Outcome",
    "broadcast_create",
    "broadcast_execute",
    "broadcast_plan",
    "broadcast_resume",
    "broadcast_run_chunk",
    "clean_segment",
    "flow_cancel_for",
    "flow_resume",
    "flow_start",
    "handle_inbound",
    "keyword_flow",
    "render_text",
    "segment_contacts",
]
