"""Outbound delivery.

The core sends ``hooks.message_sent`` inside the service's transaction. The
receiver here finds the contact's channel and delivers by its kind:

- ``web``: the contact's chat page (``/chat/<channel>/``) polls and shows it, so
  there is nothing to push;
- ``webhook``, ``whatsapp`` and ``email``: a Delivery row is written in the same
  transaction (so it exists iff the message does) and a background task sends it
  after commit (a webhook POST of the message as JSON; WhatsApp: the Graph API
  request prepared here, text or template; email: over SMTP, ``connectors.mail``),
  with retries; the Delivery shows attempts and the last error. A paused channel's
  deliveries are held and sent when it is resumed.

A contact channel without a Channel row is treated as ``web`` when it is the
default ``web`` channel and gets no delivery otherwise (API clients read replies
from the API).
"""

from datetime import timedelta

from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from config.tasks import queue_after_commit
from conversations import hooks
from conversations.memo import Memo
from conversations.models import Message

from .models import Channel, ChannelKind, Delivery, DeliveryStatus

DEFAULT_WEB_CHANNEL = "web"


# Channels change rarely and are read for every outbound message: each process keeps
# what it looked up, forgotten whenever a Channel is saved or deleted here, and after
# CHANNEL_CACHE_SECONDS anyway (another process may have changed it).
CHANNEL_CACHE_SECONDS = 30
channels = Memo(seconds=CHANNEL_CACHE_SECONDS, watch=[Channel])


def channel_for(slug: str) -> Channel | None:
    """The active channel for a contact channel slug (``web`` exists by default)."""
    return channels.get(slug, lambda: _channel_lookup(slug))


def _channel_lookup(slug: str) -> Channel | None:
    channel = Channel.objects.filter(slug=slug).first()
    if channel is None and slug == DEFAULT_WEB_CHANNEL:
        return Channel(slug=DEFAULT_WEB_CHANNEL, kind=ChannelKind.WEB)
    if channel is None or not channel.is_active:
        return None
    return channel


def is_web_chat(slug: str) -> bool:
    channel = channel_for(slug)
    return channel is not None and channel.kind == ChannelKind.WEB


def _enqueue_after_commit(delivery_id: int) -> None:
    from .tasks import deliver

    queue_after_commit(lambda: deliver.enqueue(delivery_id))


def delivery_retry(*, delivery: Delivery) -> None:
    """Queue a failed delivery again (admin action)."""
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.PENDING)
        _enqueue_after_commit(delivery.pk)


def channel_resume(*, channel: Channel) -> int:
    """Unpause a channel: send its held deliveries and process the webhook events
    kept meanwhile. Returns how many deliveries were released."""
    from .tasks import process_whatsapp_event

    with transaction.atomic():
        # Waits for a delivery task deciding to hold under the channel's share lock.
        Channel.objects.filter(pk=channel.pk).update(is_paused=False)
        held = list(
            Delivery.objects.filter(channel=channel, status=DeliveryStatus.HELD).values_list(
                "pk", flat=True
            )
        )
        Delivery.objects.filter(pk__in=held).update(status=DeliveryStatus.PENDING)
        for pk in held:
            _enqueue_after_commit(pk)
        for pk in channel.whatsapp_events.filter(processed_at__isnull=True).values_list(
            "pk", flat=True
        ):
            queue_after_commit(lambda pk=pk: process_whatsapp_event.enqueue(pk))
    channels.forget()
    return len(held)


@receiver(hooks.message_sent, dispatch_uid="connectors.deliver_outbound")
def deliver_outbound(sender, *, message: Message, conversation, template=None, **kwargs) -> None:
    channel = channel_for(conversation.contact.channel)
    # A web chat's page reads the conversation itself: its delivery is the page's poll.
    if channel is None or channel.kind not in (
        ChannelKind.WEBHOOK,
        ChannelKind.WHATSAPP,
        ChannelKind.EMAIL,
    ):
        return
    body = {}
    if channel.kind == ChannelKind.WHATSAPP:
        from .whatsapp.outbound import payload

        to = conversation.contact.external_id
        body = payload(channel=channel, to=to, text=message.text, template=template)
    # Always queued: the task holds it if the channel is paused by then.
    delivery = Delivery.objects.create(message=message, channel=channel, payload=body)
    _enqueue_after_commit(delivery.pk)


# A pending delivery untouched this long has no task coming (every retry is due within
# 5 minutes of its failure, ``tasks.backoff``): its task was lost, with a worker killed
# in the middle of it or a queue that refused it after the commit.
STALLED_AFTER = timedelta(minutes=10)
REQUEUE_BATCH = 1000


def requeue_stalled(*, limit: int = REQUEUE_BATCH) -> int:
    """Queue again the pending deliveries whose task was lost (no run holds them and
    nothing touched them for STALLED_AFTER); ``deliver``'s claim keeps a late original
    from sending twice. Returns how many were queued."""
    from .tasks import deliver

    now = timezone.now()
    stalled = list(
        Delivery.objects.unclaimed(now)
        .filter(updated_at__lt=now - STALLED_AFTER)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    if stalled:
        # Touched, so the next sweep waits for this task before queueing another.
        Delivery.objects.filter(pk__in=stalled).update(updated_at=now)
        for pk in stalled:
            deliver.enqueue(pk)
    return len(stalled)


@receiver(hooks.housekeeping_due, dispatch_uid="connectors.requeue_stalled")
def _housekeeping(sender, **kwargs) -> dict:
    return {"deliveries_requeued": requeue_stalled()}
