"""Writing the conversation timeline's non-status lines (``models.Activity``)."""

from .models import Activity, Source


def record_activity(
    conversation, kind: str, *, actor=None, source: str = Source.AGENT, **data
) -> Activity:
    """One timeline line for ``conversation`` (a Conversation or its id); ``data``
    holds the kind's details (JSON)."""
    return Activity.objects.create(
        conversation_id=getattr(conversation, "pk", conversation),
        kind=kind,
        actor=actor,
        source=source,
        data=data,
    )
