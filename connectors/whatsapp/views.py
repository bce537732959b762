"""The WhatsApp webhook (``/webhooks/whatsapp/<channel>/``) and the agents' media.

GET is Meta's verification handshake; every POST must carry ``X-Hub-Signature-256``,
the HMAC-SHA256 of the raw body with the app secret, or it is refused (401) with
nothing stored. A verified POST is stored as it came and answered 200 at once; a
background task processes it (``inbound.process_event``)."""

import hashlib
import hmac
import json

from django.db import transaction
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from config.tasks import queue_after_commit
from flows.decorators import agent_required

from ..models import Channel, ChannelKind
from ..secrets import SecretUnavailable
from .models import WhatsAppEvent, WhatsAppMessage


def _refused(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status)


def _verify(request, channel: Channel) -> HttpResponse:
    expected = channel.secret("verify_token")
    given = request.GET.get("hub.verify_token", "")
    if (
        request.GET.get("hub.mode") == "subscribe"
        and expected
        and hmac.compare_digest(given.encode(), expected.encode())
    ):
        return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")
    return _refused(403, "verification_failed", "The verify token does not match this channel.")


def signature_valid(app_secret: str, body: bytes, header: str) -> bool:
    expected = "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return bool(app_secret) and hmac.compare_digest(expected.encode(), header.encode())


@csrf_exempt  # Meta's calls carry no CSRF token; each POST is signed instead
@require_http_methods(["GET", "POST"])
def webhook(request, channel: str) -> HttpResponse:
    channel = Channel.objects.filter(
        slug=channel, kind=ChannelKind.WHATSAPP, is_active=True
    ).first()
    if channel is None:
        raise Http404("There is no WhatsApp channel here.")
    try:
        if request.method == "GET":
            return _verify(request, channel)
        app_secret = channel.secret("app_secret")
    except SecretUnavailable as missing:
        return _refused(503, missing.code, missing.detail)
    body = request.body
    if not signature_valid(app_secret, body, request.headers.get("X-Hub-Signature-256", "")):
        return _refused(401, "bad_signature", "X-Hub-Signature-256 does not match the body.")
    try:
        payload = json.loads(body)
    except ValueError:
        return _refused(400, "invalid_json", "The body is not JSON.")
    if not isinstance(payload, dict):
        return _refused(400, "invalid_json", "The body is not a JSON object.")
    from ..tasks import process_whatsapp_event

    with transaction.atomic():
        event = WhatsAppEvent.objects.create(channel=channel, body=payload)
        queue_after_commit(lambda: process_whatsapp_event.enqueue(event.pk))
    return HttpResponse("ok", content_type="text/plain")


@agent_required
@require_GET
def media(request, pk: int) -> FileResponse:
    """A contact's media file, to agents only; shown inline only when it is an image,
    audio or video (anything else, HTML included, is a download)."""
    record = get_object_or_404(WhatsAppMessage.objects.exclude(media=""), pk=pk)
    inline = record.media_type.startswith(("image/", "audio/", "video/"))
    return FileResponse(
        record.media.open("rb"),
        content_type=record.media_type if inline else "application/octet-stream",
        as_attachment=not inline,
        filename=record.media.name.rsplit("/", 1)[-1],
    )
