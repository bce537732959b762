"""WhatsApp webhook events, processed in the background (``tasks.process_whatsapp_event``).

Payloads as Meta documents them (``entry[].changes[].value`` of field ``messages``):
``messages`` become contact messages through the inbound engine
(``services.message_receive``), ``statuses`` become receipts on outbound messages.
Meta delivers an event again until it is answered 200 and may deliver it twice
anyway: a message is claimed by inserting its WhatsApp id under a unique constraint
in the same transaction as the message, so a repeat inserts nothing.
"""

import logging

from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.db.models.functions import Now

from config.tasks import queue_after_commit
from conversations import services
from conversations.exceptions import ParleyError
from conversations.models import Conversation

from ..models import Channel
from .graph import GraphError, download_media
from .models import Receipt, WhatsAppEvent, WhatsAppMessage

logger = logging.getLogger(__name__)

MEDIA_KINDS = {"image": "Image", "document": "Document", "audio": "Audio", "video": "Video"}
RECEIPTS = {"sent": Receipt.SENT, "delivered": Receipt.DELIVERED, "read": Receipt.READ}
RECEIPTS["failed"] = Receipt.FAILED

SQL_CLAIM = """
    INSERT INTO connectors_whatsappmessage
        (channel_id, wamid, message_id, receipt, error, media, media_type, created_at)
    VALUES (%s, %s, NULL, 0, '', '', %s, now())
    ON CONFLICT (wamid) DO NOTHING
    RETURNING id
"""
# Receipts only move forward (read > delivered > sent; failed wins), whatever order
# Meta's calls arrive in, and may come before the send's answer links the message.
SQL_RECEIPT = """
    INSERT INTO connectors_whatsappmessage AS w
        (channel_id, wamid, message_id, receipt, error, media, media_type, created_at)
    VALUES (%s, %s, %s, %s, %s, '', '', now())
    ON CONFLICT (wamid) DO UPDATE SET
        message_id = coalesce(w.message_id, excluded.message_id),
        error = CASE WHEN excluded.receipt > w.receipt THEN excluded.error ELSE w.error END,
        receipt = greatest(w.receipt, excluded.receipt)
    RETURNING message_id
"""


def _receipt(channel: Channel, wamid: str, receipt: int, *, error="", message_id=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(SQL_RECEIPT, [channel.pk, wamid, message_id, receipt, error[:500]])
        (linked,) = cursor.fetchone()
    if linked is not None:  # open panes show the new ticks
        Conversation.objects.filter(messages=linked).update(updated_at=Now())


def link_outbound(*, channel: Channel, wamid: str, message_id: int) -> None:
    """The Graph API accepted an outbound message: its id, and at least Sent."""
    _receipt(channel, wamid, Receipt.SENT, message_id=message_id)


def _text(message: dict) -> tuple[str, dict | None]:
    """The message's text as stored in the thread, and its media object if any."""
    kind = message.get("type")
    if kind == "text":
        return message["text"]["body"], None
    if kind in MEDIA_KINDS:
        media = message[kind]
        label = MEDIA_KINDS[kind]
        if media.get("filename"):
            label = f"{label}: {media['filename']}"
        caption = media.get("caption", "")
        return (f"{caption}\n[{label}]" if caption else f"[{label}]"), media
    if kind == "location":
        place = message["location"]
        named = ", ".join(p for p in (place.get("name"), place.get("address")) if p)
        where = f"{place['latitude']}, {place['longitude']}"
        return f"[Location] {named} ({where})" if named else f"[Location] {where}", None
    if kind == "interactive":
        answer = message["interactive"]
        reply = answer.get(answer.get("type"), {})  # button_reply or list_reply
        return reply.get("title") or reply.get("id", ""), None
    if kind == "button":  # a template's quick-reply button
        return message["button"].get("text") or message["button"].get("payload", ""), None
    return f"[Unsupported WhatsApp message: {kind}]", None


def _receive(channel: Channel, message: dict, names: dict[str, str]) -> None:
    text, media = _text(message)
    sender = message["from"]
    with transaction.atomic():
        with connection.cursor() as cursor:
            media_type = (media or {}).get("mime_type", "")
            cursor.execute(SQL_CLAIM, [channel.pk, message["id"], media_type])
            claimed = cursor.fetchone()
        if claimed is None:  # delivered before
            return
        inbound = services.message_receive(
            channel=channel.slug, external_id=sender, text=text, name=names.get(sender, "")
        )
        WhatsAppMessage.objects.filter(pk=claimed[0]).update(message=inbound.message)
        if media and media.get("id"):
            from ..tasks import fetch_whatsapp_media

            queue_after_commit(lambda: fetch_whatsapp_media.enqueue(claimed[0], media["id"]))


def _status(channel: Channel, status: dict) -> None:
    receipt = RECEIPTS.get(status.get("status"))
    if receipt is None:
        return
    error = ""
    if receipt == Receipt.FAILED:
        errors = status.get("errors") or [{}]
        first = errors[0]
        details = (first.get("error_data") or {}).get("details", "")
        error = (
            " — ".join(p for p in (first.get("title") or first.get("message"), details) if p)
            or "WhatsApp could not deliver the message."
        )
        if first.get("code"):
            error = f"{error} (code {first['code']})"
    _receipt(channel, status["id"], receipt, error=error)


def process_event(event_id: int) -> str:
    with transaction.atomic():
        event = (
            WhatsAppEvent.objects.select_for_update(skip_locked=True)
            .select_related("channel")
            .filter(pk=event_id, processed_at__isnull=True)
            .first()
        )
        if event is None:
            return "nothing to do"
        channel = event.channel
        if channel.is_paused:
            return "held"
        received = False
        for entry in event.body.get("entry", []):
            for change in entry.get("changes", []):
                if change.get("field") != "messages":
                    continue
                value = change.get("value", {})
                names = {
                    c.get("wa_id"): (c.get("profile") or {}).get("name", "")
                    for c in value.get("contacts", [])
                }
                for message in value.get("messages", []):
                    try:
                        _receive(channel, message, names)
                        received = True
                    except (ParleyError, KeyError, TypeError) as exc:
                        logger.warning("WhatsApp message refused: %s", exc)
                        _note_error(channel, f"A message could not be stored: {exc}")
                for status in value.get("statuses", []):
                    _status(channel, status)
        event.processed_at = Now()
        event.save(update_fields=["processed_at"])
        if received:
            Channel.objects.filter(pk=channel.pk).update(last_received_at=Now())
    return "processed"


def _note_error(channel: Channel, error: str) -> None:
    Channel.objects.filter(pk=channel.pk).update(last_error=error[:500], last_error_at=Now())


def fetch_media(whatsapp_message_id: int, media_id: str) -> str:
    record = WhatsAppMessage.objects.select_related("channel").filter(pk=whatsapp_message_id)
    record = record.first()
    if record is None or record.media:
        return "nothing to do"
    try:
        content, mime = download_media(record.channel, media_id)
    except (GraphError, KeyError, ValueError) as exc:
        _note_error(record.channel, f"Media {media_id} could not be fetched: {exc}")
        raise
    extension = mime.split("/")[-1].split(";")[0][:10] or "bin"
    record.media.save(f"{media_id}.{extension}", ContentFile(content), save=False)
    WhatsAppMessage.objects.filter(pk=record.pk).update(media=record.media.name, media_type=mime)
    if record.message_id:
        Conversation.objects.filter(messages=record.message_id).update(updated_at=Now())
    return "fetched"
