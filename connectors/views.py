"""The contact-side web chat: ``/chat/<channel>/``.

A visitor is identified by a signed cookie holding a random id (their
``external_id`` on the channel). Writing goes through ``services.message_receive``,
exactly like the API's inbound endpoint; the page polls the thread, so the agents'
and the flows' replies appear by themselves. Works without JavaScript too (the
form posts and redirects back).
"""

import secrets

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from conversations import services
from conversations.exceptions import ParleyError
from conversations.models import Contact, Message

from .delivery import is_web_chat

COOKIE_SALT = "parley.chat"
COOKIE_MAX_AGE = 60 * 60 * 24 * 365
THREAD_LIMIT = 200
PAGE = "connectors/chat.html"


def _cookie_name(channel: str) -> str:
    return f"parley_chat_{channel}"


def _visitor_id(request: HttpRequest, channel: str) -> str | None:
    return request.get_signed_cookie(_cookie_name(channel), default=None, salt=COOKIE_SALT)


def _remember(response: HttpResponse, request: HttpRequest, channel: str, visitor: str):
    response.set_signed_cookie(
        _cookie_name(channel),
        visitor,
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


def _context(channel: str, visitor: str | None, **extra) -> dict:
    contact = (
        Contact.objects.filter(channel=channel, external_id=visitor).first() if visitor else None
    )
    messages = []
    if contact is not None:
        latest = (
            Message.objects.filter(conversation__contact=contact)
            .select_related("author")
            .order_by("-created_at", "-id")[:THREAD_LIMIT]
        )
        messages = list(reversed(latest))
    return {"channel": channel, "contact": contact, "messages": messages, **extra}


def _is_fetch(request: HttpRequest) -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


@require_GET
def chat(request: HttpRequest, channel: str) -> HttpResponse:
    channel = _web_channel(channel)
    visitor = _visitor_id(request, channel)
    response = render(request, PAGE, _context(channel, visitor))
    if visitor is None:
        _remember(response, request, channel, secrets.token_urlsafe(16))
    return response


@require_GET
def chat_thread(request: HttpRequest, channel: str) -> HttpResponse:
    channel = _web_channel(channel)
    visitor = _visitor_id(request, channel)
    return render(request, f"{PAGE}#thread", _context(channel, visitor))


@require_POST
def chat_send(request: HttpRequest, channel: str) -> HttpResponse:
    channel = _web_channel(channel)
    visitor = _visitor_id(request, channel) or secrets.token_urlsafe(16)
    text = request.POST.get("text", "")
    name = request.POST.get("name", "")
    try:
        services.message_receive(channel=channel, external_id=visitor, text=text, name=name)
    except ParleyError as refusal:
        context = _context(channel, visitor, error=refusal.detail, draft=text)
        template = f"{PAGE}#send-error" if _is_fetch(request) else PAGE
        response = render(request, template, context, status=422)
    else:
        if _is_fetch(request):
            response = render(request, f"{PAGE}#thread", _context(channel, visitor))
        else:
            response = redirect("connectors:chat", channel=channel)
    return _remember(response, request, channel, visitor)
