"""The connectors router: outbound delivery status of a message."""

from django.http import Http404
from ninja import Router, Schema

from conversations.schemas import ErrorOut

from .models import Delivery

router = Router(tags=["delivery"])


class DeliveryOut(Schema):
    message_id: int
    channel: str
    status: str
    attempts: int
    last_error: str
    delivered_at: str | None


@router.get(
    "/messages/{message_id}/delivery",
    response={200: DeliveryOut, 401: ErrorOut, 404: ErrorOut},
    summary="How an outbound message went out to a webhook channel",
    description="404 when the message has no delivery (web chat and API channels).",
)
def delivery_detail(request, message_id: int):
    delivery = Delivery.objects.select_related("channel").filter(message_id=message_id).first()
    if delivery is None:
        raise Http404(f"Message {message_id} has no webhook delivery.")
    return {
        "message_id": message_id,
        "channel": delivery.channel.slug,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "delivered_at": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
    }
