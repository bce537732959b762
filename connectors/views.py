"""The contact-side web chat: ``/chat/<channel>/``.

A visitor is identified by a signed cookie holding a random id (their
``external_id`` on the channel). Writing goes through ``services.message_receive``,
exactly like the API's inbound endpoint; the page polls the thread, so the agents'
and the flows' replies appear by themselves. Works without JavaScript too (the
form posts and redirects back).

A site can open the chat as its logged-in customer (``identity.py``): a valid
``identifier`` + ``identifier_hash`` makes the identifier the contact's external id
and lets the given name through; a wrong one is refused (403) with a sentence.

Sending is rate-limited per client address and per visitor (``limits.py``): a
refused message is a 429 with a sentence the page shows, and nothing is written.
"""

import json
import secrets

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from conversations import services
from conversations.exceptions import ParleyError
from conversations.models import Contact, Conversation, Message
from conversations.transitions import Status

from .delivery import channel_for, is_web_chat
from .identity import IdentityRefused, Visitor, verified_visitor
from .limits import ChatLimited, chat_send_allowed

COOKIE_SALT = "parley.chat"
COOKIE_MAX_AGE = 60 * 60 * 24 * 365
THREAD_LIMIT = 200
PAGE = "connectors/chat.html"


def _cookie_name(channel: str) -> str:
    return f"parley_chat_{channel}"


def _visitor(request: HttpRequest, channel: str) -> Visitor | None:
    """The visitor of the signed cookie: a random id (anonymous) or, after a signed
    identity, ``{"id", "name"}`` as JSON."""
    value = request.get_signed_cookie(_cookie_name(channel), default=None, salt=COOKIE_SALT)
    if not value:
        return None
    if value.startswith("{"):
        try:
            data = json.loads(value)
            return Visitor(id=str(data["id"]), name=str(data.get("name", "")), verified=True)
        except (ValueError, KeyError, TypeError):
            return None
    return Visitor(id=value)


def _visitor_id(request: HttpRequest, channel: str) -> str | None:
    visitor = _visitor(request, channel)
    return visitor.id if visitor else None


def _remember(response: HttpResponse, request: HttpRequest, channel: str, visitor: Visitor):
    value = json.dumps({"id": visitor.id, "name": visitor.name}) if visitor.verified else visitor.id
    response.set_signed_cookie(
        _cookie_name(channel),
        value,
        salt=COOKIE_SALT,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure(),
    )
    return response


def _web_channel(channel: str) -> str:
    if not is_web_chat(channel):
        raise Http404("There is no web chat on this channel.")
    return channel


def _context(channel: str, visitor_id: str | None, **extra) -> dict:
    contact = (
        Contact.objects.filter(channel=channel, external_id=visitor_id).first()
        if visitor_id
        else None
    )
    messages, survey = [], False
    if contact is not None:
        # Its satisfaction survey is awaited: the thread offers the ratings as buttons.
        survey = Conversation.objects.filter(contact=contact, status=Status.RESOLVED).exists()
        latest = (
            Message.objects.filter(conversation__contact=contact)
            .select_related("author")
            .order_by("-created_at", "-id")[:THREAD_LIMIT]
        )
        messages = list(reversed(latest))
    return {
        "channel": channel,
        "contact": contact,
        "messages": messages,
        "survey": survey,
        **extra,
    }


def _is_fetch(request: HttpRequest) -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


def _refused_identity(request: HttpRequest, channel: str, refusal: IdentityRefused):
    context = _context(channel, _visitor_id(request, channel), error=refusal.detail)
    return render(request, PAGE, context, status=403)


@require_GET
def chat(request: HttpRequest, channel: str) -> HttpResponse:
    channel = _web_channel(channel)
    try:
        signed = verified_visitor(request.GET, channel_for(channel))
    except IdentityRefused as refusal:
        return _refused_identity(request, channel, refusal)
    visitor = signed or _visitor(request, channel)
    response = render(
        request, PAGE, _context(channel, visitor.id if visitor else None, visitor=visitor)
    )
    if signed is not None:
        _remember(response, request, channel, signed)
    elif visitor is None:
        _remember(response, request, channel, Visitor(id=secrets.token_urlsafe(16)))
    return response


@require_GET
def chat_thread(request: HttpRequest, channel: str) -> HttpResponse:
    channel = _web_channel(channel)
    visitor = _visitor_id(request, channel)
    return render(request, f"{PAGE}#thread", _context(channel, visitor))


def _refused(request, channel: str, visitor: Visitor, text: str, detail: str, status: int):
    context = _context(channel, visitor.id, error=detail, draft=text, visitor=visitor)
    template = f"{PAGE}#send-error" if _is_fetch(request) else PAGE
    return render(request, template, context, status=status)


@require_POST
def chat_send(request: HttpRequest, channel: str) -> HttpResponse:
    channel = _web_channel(channel)
    text = request.POST.get("text", "")
    try:
        signed = verified_visitor(request.POST, channel_for(channel))
    except IdentityRefused as refusal:
        return _refused_identity(request, channel, refusal)
    visitor = signed or _visitor(request, channel) or Visitor(id=secrets.token_urlsafe(16))
    # A signed identity's name wins; an anonymous visitor may give one in the form.
    name = visitor.name if visitor.verified else request.POST.get("name", "")
    if channel_for(channel).is_paused:
        detail = "This chat is paused for a moment; your message was not sent. Please try later."
        return _remember(
            _refused(request, channel, visitor, text, detail, 503), request, channel, visitor
        )
    try:
        chat_send_allowed(request, channel=channel, visitor=visitor.id)
        services.message_receive(channel=channel, external_id=visitor.id, text=text, name=name)
    except ChatLimited as limited:
        response = _refused(request, channel, visitor, text, limited.detail, 429)
        response["Retry-After"] = str(limited.retry_after)
    except ParleyError as refusal:
        response = _refused(request, channel, visitor, text, refusal.detail, 422)
    else:
        if _is_fetch(request):
            response = render(request, f"{PAGE}#thread", _context(channel, visitor.id))
        else:
            response = redirect("connectors:chat", channel=channel)
    return _remember(response, request, channel, visitor)
