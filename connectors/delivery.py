"""Outbound delivery.

The core sends ``hooks.message_sent`` inside the service's transaction. The
receiver here finds the contact's channel and delivers by its kind:

- ``web``: the contact's chat page (``/chat/<channel>/``) polls and shows it, so
  there is nothing to push;
- ``webhook``: a Delivery row is written in the same transaction (so it exists iff
  the message does) and a background task POSTs the message as JSON after commit,
  with retries; the Delivery shows attempts and the last error;
- ``email``: the same, sent over SMTP (``connectors.mail.outbound``).

A contact channel without a Channel row is treated as ``web`` when it is the
default ``web`` channel and gets no delivery otherwise (API clients read replies
from the API).
"""

from django.db import transaction
from django.dispatch import receiver

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
    from .tasks import deliver_webhook

    transaction.on_commit(lambda: deliver_webhook.enqueue(delivery_id))


def delivery_retry(*, delivery: Delivery) -> None:
    """Queue a failed delivery again (admin action)."""
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.PENDING)
        _enqueue_after_commit(delivery.pk)


@receiver(hooks.message_sent, dispatch_uid="connectors.deliver_outbound")
def deliver_outbound(sender, *, message: Message, conversation, **kwargs) -> None:
    channel = channel_for(conversation.contact.channel)
    # A web chat's page reads the conversation itself: its delivery is the page's poll.
    if channel is not None and channel.kind in (ChannelKind.WEBHOOK, ChannelKind.EMAIL):
        delivery = Delivery.objects.create(message=message, channel=channel)
        _enqueue_after_commit(delivery.pk)
