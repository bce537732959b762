"""Issue 7 §4: who may do what (PRODUCT.md §10), over every URL of the app.

The table below classifies every URL name the project has; a URL added without a
line here fails ``test_every_url_is_in_the_matrix``, so nothing is forgotten.
"""

import pytest
from django.contrib import admin
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse

from connectors.tokens import token_create, token_revoke
from conversations.models import Conversation, Message, SavedReply
from tests.factories import UserFactory, conversation_in

pytestmark = pytest.mark.django_db

# Kinds of URL:
#   page     agents' HTML pages: anonymous -> login, agent -> 200
#   action   agents' POST actions: anonymous -> login (and nothing changes), CSRF enforced
#   api      JSON API: bearer token only (no session), 401 without one
#   docs     API docs: logged-in users only
#   public   the contacts' web chat and the login page: anyone
#   nothing  django-ninja's bare /api/v1/: 404 for everybody
#   landing  where "/" leads an agent (a redirect to Mine or the inbox): anonymous -> login
#   stream   an agent's event stream (EventSource): anonymous -> 401, nothing streamed
#   signed   a provider's webhook: anyone, but a POST without its signature -> 401
#   file     an agents-only file (a contact's media): anonymous -> login
MATRIX = {
    "inbox:home": ("landing", "GET"),
    "inbox:stream": ("stream", "GET"),
    "inbox:presence": ("action", "POST"),
    "inbox:read": ("action", "POST"),
    "connectors:chat-stream": ("public", "GET"),
    "login": ("public", "GET"),
    "healthz": ("public", "GET"),  # for load balancers: no data, cheap
    "readyz": ("public", "GET"),
    "logout": ("action", "POST"),
    "inbox:list": ("page", "GET"),
    "inbox:poll": ("page", "GET"),
    "inbox:pane": ("page", "GET"),
    "inbox:contact": ("page", "GET"),
    "inbox:bulk": ("action", "POST"),
    "inbox:reply": ("action", "POST"),
    "inbox:close": ("action", "POST"),
    "inbox:archive": ("action", "POST"),
    "inbox:unarchive": ("action", "POST"),
    "inbox:snooze": ("action", "POST"),
    "inbox:unsnooze": ("action", "POST"),
    "inbox:availability": ("action", "POST"),
    "inbox:assign": ("action", "POST"),
    "inbox:tag_add": ("action", "POST"),
    "inbox:tag_remove": ("action", "POST"),
    "inbox:note": ("action", "POST"),
    "inbox:mentions_read": ("action", "POST"),
    "inbox:mentions": ("page", "GET"),
    "inbox:saved_replies": ("page", "GET"),
    "inbox:saved_reply_new": ("page", "GET"),
    "inbox:saved_reply_edit": ("page", "GET"),
    "inbox:saved_reply_delete": ("action", "POST"),
    "inbox:saved_reply_search": ("page", "GET"),
    "inbox:saved_reply_fill": ("page", "GET"),
    "inbox:contact_edit": ("action", "POST"),
    "inbox:contacts": ("page", "GET"),
    "flows:index": ("page", "GET"),
    "reports:index": ("page", "GET"),
    "flows:broadcast": ("page", "GET"),
    "flows:start_flow": ("action", "POST"),
    "flows:broadcast_create": ("action", "POST"),
    "flows:broadcast_preview": ("page", "GET"),
    "connectors:chat": ("public", "GET"),
    "connectors:chat-thread": ("public", "GET"),
    "connectors:chat-send": ("public", "POST"),
    "api:openapi-json": ("docs", "GET"),
    "api:openapi-view": ("docs", "GET"),
    "api:api-root": ("nothing", "GET"),
    "api:unknown_endpoint": ("nothing", "GET"),  # any other path under /api/v1/: a JSON 404
    "api:contact_create": ("api", "POST"),
    "api:message_inbound": ("api", "POST"),
    "api:conversation_list": ("api", "GET"),
    "api:reports_volume": ("api", "GET"),
    "api:reports_speed": ("api", "GET"),
    "api:reports_agents": ("api", "GET"),
    "api:conversation_detail": ("api", "GET"),
    "api:conversation_reply": ("api", "POST"),
    "api:conversation_close": ("api", "POST"),
    "api:conversation_archive": ("api", "POST"),
    "api:conversation_unarchive": ("api", "POST"),
    "api:conversation_snooze": ("api", "POST"),
    "api:conversation_unsnooze": ("api", "POST"),
    "api:conversation_tag_add": ("api", "POST"),
    "api:conversation_tag_remove": ("api", "DELETE"),
    "api:conversation_note": ("api", "POST"),
    "api:flow_start": ("api", "POST"),
    "api:broadcast_create": ("api", "POST"),
    "api:broadcast_detail": ("api", "GET"),
    "api:delivery_detail": ("api", "GET"),
    "whatsapp:webhook": ("signed", "POST"),
    "whatsapp:media": ("file", "GET"),
    "mail-attachment": ("page", "GET"),
}


def _url_names(patterns=None, namespace=None):
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue  # the admin is covered as a whole below
            inner = ":".join(n for n in (namespace, pattern.namespace) if n) or None
            yield from _url_names(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}:{pattern.name}" if namespace else pattern.name


def test_every_url_is_in_the_matrix():
    assert set(_url_names()) == set(MATRIX)


@pytest.fixture
def world(db, settings, tmp_path):
    """One of everything a URL can point at."""
    from connectors.mail.models import MailAttachment, MailMessage
    from connectors.models import Channel
    from flows.models import Broadcast, Flow

    agent = UserFactory(username="alice")
    conversation = conversation_in("new", tags=["billing"])
    flow = Flow.objects.create(name="Welcome")
    broadcast = Broadcast.objects.create(flow=flow, created_by=agent)
    message = Message.objects.filter(conversation=conversation).first()
    reply = SavedReply.objects.create(owner=agent, title="Hi", body="Hello")
    settings.MEDIA_ROOT = tmp_path
    mail = MailMessage.objects.create(
        message=message, channel=Channel.objects.create(slug="mail", kind="email"), msgid="a@b"
    )
    attachment = MailAttachment(mail=mail, filename="a.txt", content_type="text/plain", size=1)
    attachment.file.save("a.txt", ContentFile(b"a"))
    return {
        "attachment": attachment,
        "agent": agent,
        "conversation": conversation,
        "kwargs": {
            "pk": conversation.pk,
            "conversation_id": conversation.pk,
            "flow_id": flow.pk,
            "broadcast_id": broadcast.pk,
            "message_id": message.pk,
            "channel": "web",
            "name": "billing",
            "reply_id": reply.pk,
        },
        "broadcast": broadcast,
    }


def _path(name: str, world) -> str:
    kwargs = world["kwargs"]
    if name == "flows:broadcast":
        return reverse(name, kwargs={"pk": world["broadcast"].pk})
    if name == "mail-attachment":
        return reverse(name, kwargs={"pk": world["attachment"].pk})
    if name == "inbox:contact":
        return reverse(name, kwargs={"pk": world["conversation"].contact_id})
    for attempt in (
        {},
        {k: kwargs[k] for k in ("pk",)},
        {k: kwargs[k] for k in ("reply_id",)},
        {k: kwargs[k] for k in ("pk", "reply_id")},
        {k: kwargs[k] for k in ("conversation_id",)},
        {k: kwargs[k] for k in ("conversation_id", "name")},
        {k: kwargs[k] for k in ("flow_id",)},
        {k: kwargs[k] for k in ("broadcast_id",)},
        {k: kwargs[k] for k in ("message_id",)},
        {k: kwargs[k] for k in ("channel",)},
    ):
        try:
            return reverse(name, kwargs=attempt)
        except NoReverseMatch:
            continue
    raise AssertionError(f"cannot build a path for {name}")


def _call(client: Client, method: str, path: str, **extra):
    if method == "GET":
        return client.get(path, **extra)
    if method == "DELETE":
        return client.delete(path, **extra)
    return client.post(path, {"text": "hello", "name": "x"}, **extra)


def _snapshot():
    return (
        list(
            Conversation.objects.order_by("pk").values_list(
                "pk", "status", "archived_at", "assignee_id"
            )
        ),
        Message.objects.count(),
    )


NON_PUBLIC = sorted(
    name for name, (kind, _) in MATRIX.items() if kind not in ("public", "nothing", "signed")
)


def test_the_bare_api_root_shows_nothing(world, client):
    path = _path("api:api-root", world)
    assert client.get(path).status_code == 404
    client.force_login(world["agent"])
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("name", NON_PUBLIC)
def test_anonymous_gets_nothing_but_the_login(name, world, client):
    kind, method = MATRIX[name]
    path = _path(name, world)
    before = _snapshot()
    response = _call(client, method, path)
    if kind == "api":
        assert response.status_code == 401, (name, response.status_code)
        assert response.json()["error"] == "unauthorized"
    elif kind == "stream":
        assert response.status_code == 401, (name, response.status_code)
    else:
        assert response.status_code == 302, (name, response.status_code)
        assert response["Location"].startswith("/login/")
    assert _snapshot() == before


@pytest.mark.parametrize("name", sorted(n for n, (k, _) in MATRIX.items() if k in ("page", "docs")))
def test_agent_reaches_the_pages(name, world, client):
    client.force_login(world["agent"])
    response = client.get(_path(name, world))
    assert response.status_code == 200, (name, response.status_code)


@pytest.mark.parametrize("name", sorted(n for n, (k, _) in MATRIX.items() if k == "api"))
def test_api_ignores_the_session_and_wants_a_token(name, world, client):
    client.force_login(world["agent"])
    _, method = MATRIX[name]
    response = _call(client, method, _path(name, world))
    assert response.status_code == 401


@pytest.mark.parametrize("name", sorted(n for n, (k, _) in MATRIX.items() if k == "api"))
def test_api_refuses_a_revoked_or_wrong_token(name, world, client):
    token, secret = token_create(user=world["agent"], name="matrix")
    token_revoke(token=token)
    _, method = MATRIX[name]
    for bearer in (secret, secret + "x", "prl_" + "A" * 43, ""):
        response = _call(
            client, method, _path(name, world), headers={"Authorization": f"Bearer {bearer}"}
        )
        assert response.status_code == 401, (name, bearer)


@pytest.mark.parametrize(
    "name", sorted(n for n, (k, m) in MATRIX.items() if m == "POST" and k in ("action", "public"))
)
def test_every_form_post_needs_a_csrf_token(name, world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["agent"])
    before = _snapshot()
    response = client.post(_path(name, world), {"text": "hello", "name": "x"})
    assert response.status_code == 403, (name, response.status_code)
    assert _snapshot() == before


def test_a_webhook_post_without_its_signature_is_refused(world, client):
    from connectors.models import Channel, ChannelKind

    channel = Channel(slug="wa", kind=ChannelKind.WHATSAPP, phone_number_id="1")
    channel.set_secret("app_secret", "s")
    channel.save()
    before = _snapshot()
    path = reverse("whatsapp:webhook", kwargs={"channel": "wa"})
    assert client.post(path, {"text": "hello"}).status_code == 401
    assert _snapshot() == before


def test_login_post_needs_a_csrf_token(world):
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("login"), {"username": "alice", "password": "x"})
    assert response.status_code == 403


def _admin_urls():
    urls = ["/admin/"]
    for model in admin.site._registry:
        opts = model._meta
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    return urls


@pytest.mark.parametrize("who", ["anonymous", "agent", "staff"])
def test_only_staff_reach_the_admin(who, world, client):
    if who == "agent":
        client.force_login(world["agent"])
    elif who == "staff":
        client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    for url in _admin_urls():
        response = client.get(url)
        if who == "staff":
            assert response.status_code == 200, url
        else:
            assert response.status_code == 302, url
            assert response["Location"].startswith("/admin/login/"), url


def test_tokens_are_stored_hashed(world):
    from connectors.models import ApiToken

    token, secret = token_create(user=world["agent"], name="hash check")
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    assert all(secret not in str(value) for value in row.values())


def test_a_chat_visitor_sees_only_their_own_conversation(db):
    ann, bob = Client(), Client()
    for client, text in ((ann, "ann's secret order 1234"), (bob, "bob's secret address")):
        client.get("/chat/web/")
        token = client.cookies["csrftoken"].value
        response = client.post("/chat/web/send/", {"text": text, "csrfmiddlewaretoken": token})
        assert response.status_code in (200, 302)
    ann_page = ann.get("/chat/web/thread/").content.decode()
    bob_page = bob.get("/chat/web/thread/").content.decode()
    assert "ann&#x27;s secret" in ann_page and "bob&#x27;s secret" not in ann_page
    assert "bob&#x27;s secret" in bob_page and "ann&#x27;s secret" not in bob_page
    # A stranger without the cookie sees no conversation at all.
    stranger = Client().get("/chat/web/thread/").content.decode()
    assert "secret" not in stranger
