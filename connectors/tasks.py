"""Background delivery through Django's tasks API: one task per webhook delivery,
retried with backoff, idempotent (a delivered message is never POSTed again)."""

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from datetime import timedelta

from django.tasks import task
from django.utils import timezone

from .mail.outbound import send as send_mail
from .models import ChannelKind, Delivery, DeliveryStatus

MAX_ATTEMPTS = 5
TIMEOUT_SECONDS = 10


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


@task()
def deliver_webhook(delivery_id: int) -> str:
    delivery = (
        Delivery.objects.select_related("channel", "message__conversation__contact")
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None or delivery.status == DeliveryStatus.DELIVERED:
        return "nothing to do"
    attempt = delivery.attempts + 1
    try:
        channel = delivery.channel
        if channel.kind == ChannelKind.EMAIL:
            send_mail(delivery)
        else:
            _post(channel.webhook_url, webhook_payload(delivery), channel.webhook_secret)
    except Exception as exc:  # any failure is recorded and retried
        error = f"attempt {attempt}: {type(exc).__name__}: {exc}"[:1000]
        retry = attempt < MAX_ATTEMPTS
        Delivery.objects.filter(pk=delivery.pk).update(
            attempts=attempt,
            last_error=error,
            status=DeliveryStatus.PENDING if retry else DeliveryStatus.FAILED,
            updated_at=timezone.now(),
        )
        if retry:
            _schedule(delivery.pk, attempt)
        return "failed" if not retry else "retrying"
    now = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(
        attempts=attempt, status=DeliveryStatus.DELIVERED, delivered_at=now, updated_at=now
    )
    return "delivered"


def _schedule(delivery_id: int, attempt: int) -> None:
    if deliver_webhook.get_backend().supports_defer:
        deliver_webhook.using(run_after=timezone.now() + backoff(attempt)).enqueue(delivery_id)
    else:  # e.g. the immediate backend: retry at once
        deliver_webhook.enqueue(delivery_id)
