"""The connectors router: outbound delivery status of a message."""

from datetime import datetime

from django.http import Http404
from ninja import Router, Schema

from conversations.schemas import ErrorOut, Id

from .models import Delivery

router = Router(tags=["delivery"])


class DeliveryOut(Schema):
    """From the Delivery."""

    message_id: int
    channel: str
    status: str
    attempts: int
    last_error: str
    delivered_at: datetime | None

    @staticmethod
    def resolve_channel(delivery) -> str:
        return delivery.channel.slug


@router.get(
    "/messages/{message_id}/delivery",
    response={200: DeliveryOut, 401: ErrorOut, 404: ErrorOut, 422: ErrorOut},
    summary="How an outbound message went out to a webhook channel",
    description="404 when the message has no delivery (web chat and API channels).",
)
def delivery_detail(request, message_id: Id):
    delivery = Delivery.objects.select_related("channel").filter(message_id=message_id).first()
    if delivery is None:
        raise Http404(f"Message {message_id} has no webhook delivery.")
    return delivery
