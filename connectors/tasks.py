"""Background work through Django's tasks API: one task per outbound delivery
(webhook POST or WhatsApp Graph API call), retried with backoff, idempotent (a
delivered message is never sent again); WhatsApp webhook events and media."""

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from datetime import timedelta

from django.db import transaction
from django.db.models.functions import Now
from django.tasks import task
from django.utils import timezone

from conversations.models import Conversation

from .mail.outbound import send as send_mail
from .models import Channel, ChannelKind, Delivery, DeliveryStatus

MAX_ATTEMPTS = 5
TIMEOUT_SECONDS = 10
# How long a run holds its delivery: well past one attempt's longest send.
CLAIM = timedelta(minutes=2)


def webhook_payload(delivery: Delivery) -> dict:
    message = delivery.message
    conversation = message.conversation
    contact = conversation.contact
    return {
        "event": "message.outbound",
        "message": {
            "id": message.pk,
            "text": message.text,
            "sender_kind": message.sender_kind,
            "created_at": message.created_at.isoformat(),
        },
        "conversation": {"id": conversation.pk, "status": conversation.status},
        "contact": {
            "id": contact.pk,
            "channel": contact.channel,
            "external_id": contact.external_id,
            "name": contact.name,
        },
    }


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _post(url: str, payload: dict, secret: str = "") -> None:
    if not url.startswith(("http://", "https://")):
        raise ValueError("The webhook URL must be http or https.")
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "Parley-webhook/1"}
    if secret:
        headers["X-Parley-Signature"] = signature(secret, body)
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url, data=body, headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(url, response.status, "not a 2xx answer", None, None)


def backoff(attempt: int) -> timedelta:
    return timedelta(seconds=min(2**attempt, 300))


def _held(delivery: Delivery) -> bool:
    """Hold the delivery if its channel is paused (decided under the channel's share
    lock, which ``delivery.channel_resume`` waits for)."""
    with transaction.atomic():
        paused = (
            Channel.objects.select_for_update()
            .filter(pk=delivery.channel_id, is_paused=True)
            .exists()
        )
        if paused:
            Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.HELD)
    return paused


def _send(delivery: Delivery) -> None:
    channel = delivery.channel
    if channel.kind == ChannelKind.WHATSAPP:
        from .whatsapp import graph, inbound

        wamid = graph.send(channel, delivery.payload)
        inbound.link_outbound(channel=channel, wamid=wamid, message_id=delivery.message_id)
    elif channel.kind == ChannelKind.EMAIL:
        send_mail(delivery)
    else:
        _post(channel.webhook_url, webhook_payload(delivery), channel.webhook_secret)


def _retryable(exc: Exception) -> bool:
    return getattr(exc, "retryable", True)


@task()
def deliver(delivery_id: int) -> str:
    delivery = (
        Delivery.objects.select_related("channel", "message__conversation__contact")
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None or delivery.status == DeliveryStatus.DELIVERED:
        return "nothing to do"
    if _held(delivery):
        return "held"
    # One run at a time: a task queued twice (requeue_stalled, a retry racing an
    # admin's Retry) must not send the message twice.
    now = timezone.now()
    claimed = (
        Delivery.objects.unclaimed(now).filter(pk=delivery.pk).update(claimed_until=now + CLAIM)
    )
    if not claimed:
        return "being sent by another run"
    attempt = delivery.attempts + 1
    try:
        _send(delivery)
    except Exception as exc:  # any failure is recorded; retried when it may pass later
        error = f"attempt {attempt}: {type(exc).__name__}: {exc}"[:1000]
        retry = attempt < MAX_ATTEMPTS and _retryable(exc)
        Delivery.objects.filter(pk=delivery.pk).update(
            attempts=attempt,
            last_error=error,
            status=DeliveryStatus.PENDING if retry else DeliveryStatus.FAILED,
            updated_at=timezone.now(),
            claimed_until=None,
        )
        Channel.objects.filter(pk=delivery.channel_id).update(
            last_error=error[:500], last_error_at=Now()
        )
        _touch_conversation(delivery.message.conversation_id)
        if retry:
            _schedule(delivery.pk, attempt)
        return "failed" if not retry else "retrying"
    now = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(
        attempts=attempt,
        status=DeliveryStatus.DELIVERED,
        delivered_at=now,
        updated_at=now,
        claimed_until=None,
    )
    _touch_conversation(delivery.message.conversation_id)
    return "delivered"


def _touch_conversation(conversation_id: int) -> None:
    """Bump the inbox's change marker: open panes show the new delivery state."""
    Conversation.objects.filter(pk=conversation_id).update(updated_at=Now())


def _schedule(delivery_id: int, attempt: int) -> None:
    if deliver.get_backend().supports_defer:
        deliver.using(run_after=timezone.now() + backoff(attempt)).enqueue(delivery_id)
    else:  # e.g. the immediate backend: retry at once
        deliver.enqueue(delivery_id)


@task()
def process_whatsapp_event(event_id: int) -> str:
    from .whatsapp.inbound import process_event

    return process_event(event_id)


@task()
def fetch_whatsapp_media(whatsapp_message_id: int, media_id: str) -> str:
    from .whatsapp.inbound import fetch_media

    return fetch_media(whatsapp_message_id, media_id)
