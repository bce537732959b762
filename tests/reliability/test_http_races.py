"""Issue 12.1: requests racing on one conversation, over real HTTP.

gunicorn serves the app (threaded workers, each request its own transaction on its
own connection); the test fires the requests of each round at the same moment, from
threads released by a barrier. Every round must end with no 5xx, every accepted
message stored, and the invariants intact: the status history is a chain ending in
the conversation's status, a conversation is In a flow exactly when it has one
running flow run, at most one open conversation per contact.

Before the lock order of ``conversations.locks`` an agent's reply racing a flow
start, an inbound message or a web-chat message deadlocked in PostgreSQL and the
loser answered 500 (measured with these tests, 12 rounds each: 8–10 priority
starts, 8–10 ordinary starts, 2–3 inbound messages, 3 chat messages; 4–8 of 64
requests in the mixed race). gunicorn's log is read too: the pairs must not even
need the retry (``conversations.locks.retrying_atomic``), which is only the safety
net.
"""

import http.client
import json
import os
import time
from collections import Counter
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.db.models import Count, Q

from connectors.models import Channel, ChannelKind
from connectors.tokens import token_create
from conversations import services
from conversations.models import (
    Contact,
    Conversation,
    Direction,
    Message,
    SenderKind,
    StatusChange,
)
from conversations.transitions import Status
from flows.models import Flow, FlowStep, StepKind
from inbox.sessions import SessionStore
from tests.concurrency import (
    GUNICORN,
    database_url_for_subprocess,
    free_port,
    run_together,
    serving,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 15
MIXED_ROUNDS = 15
RETRY_LOG = "retrying the transaction"


@pytest.fixture(scope="module", params=["asgi", "wsgi"])
def gunicorn(request, django_db_setup, django_db_blocker, tmp_path_factory):
    """One gunicorn per server kind for the module, 2 workers each: the production
    server (uvicorn workers, config/gunicorn_asgi.conf.py) and the threaded WSGI
    workers (config/gunicorn.conf.py, 8 threads each)."""
    with django_db_blocker.unblock():
        url = database_url_for_subprocess()
    port = free_port()
    log = tmp_path_factory.mktemp("gunicorn") / "stderr.log"
    env = os.environ | {
        "DATABASE_URL": url,
        "ALLOWED_HOSTS": "127.0.0.1",
        "DEBUG": "false",
        "SECRET_KEY": settings.SECRET_KEY,
        "STATIC_NO_MANIFEST": "true",
        "LOG_LEVEL": "WARNING",
        # The races send many chat messages from one address: the flood limits
        # (tests/connectors/test_chat_limits.py) are off for this server.
        "CHAT_MESSAGES_PER_ADDRESS": "0/1m",
        "CHAT_MESSAGES_PER_VISITOR": "0/1m",
        "CHAT_NEW_CONVERSATIONS_PER_ADDRESS": "0/1m",
        "CHAT_NEW_CONVERSATIONS_PER_VISITOR": "0/1m",
    }
    if request.param == "asgi":
        env |= {"BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2"}
        argv = [GUNICORN, "-c", "config/gunicorn_asgi.conf.py"]
    else:
        argv = [GUNICORN, "-c", "config/gunicorn.conf.py", "config.wsgi"]
        argv += ["--bind", f"127.0.0.1:{port}", "--workers", "2"]
    with serving(argv, port=port, env=env, log=log):
        yield Server(port, log)


class Server:
    def __init__(self, port: int, log: Path):
        self.port = port
        self.log = log

    def request(self, method: str, path: str, *, body=b"", headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.getheader("Set-Cookie", ""), response.read()
        finally:
            connection.close()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


CSRF = "a" * 32  # an unmasked CSRF secret: the cookie and the header must agree


class Api:
    def __init__(self, server: Server, token: str):
        self.server, self.token = server, token

    def post(self, path: str, payload: dict) -> int:
        status, _, _ = self.server.request(
            "POST",
            "/api/v1" + path,
            body=json.dumps(payload).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        return status


class Browser:
    """A form poster with cookies: the contact's web chat, or an agent's inbox."""

    def __init__(self, server: Server, cookies: dict):
        self.server, self.cookies = server, {"csrftoken": CSRF, **cookies}

    def post(self, path: str, form: dict) -> int:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        status, _, _ = self.server.request(
            "POST",
            path,
            body=urlencode(form).encode(),
            headers={
                "Cookie": cookie,
                "X-CSRFToken": CSRF,
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Requested-With": "fetch",
            },
        )
        return status


def _chat_visitor(server: Server) -> tuple[Browser, Contact]:
    """A new web-chat visitor who wrote once: the cookie and its contact."""
    status, set_cookie, _ = server.request("GET", "/chat/web/")
    assert status == 200
    jar = SimpleCookie()
    jar.load(set_cookie)
    visitor = Browser(server, {"parley_chat_web": jar["parley_chat_web"].value})
    before = set(Contact.objects.filter(channel="web").values_list("pk", flat=True))
    assert visitor.post("/chat/web/send/", {"text": "hello from the chat"}) == 200
    contact = Contact.objects.filter(channel="web").exclude(pk__in=before).get()
    return visitor, contact


def _inbox(server: Server, agent) -> Browser:
    session = SessionStore()
    session[SESSION_KEY] = str(agent.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = agent.get_session_auth_hash()
    session.create()
    return Browser(server, {settings.SESSION_COOKIE_NAME: session.session_key})


@pytest.fixture
def world(gunicorn):
    Channel.objects.get_or_create(slug="web", defaults={"kind": ChannelKind.WEB})
    agent = UserFactory(username="racer")
    _, token = token_create(user=agent, name="races")
    flow = Flow.objects.create(name="Survey")
    FlowStep.objects.create(flow=flow, position=1, kind=StepKind.SEND_MESSAGE, text="Hi {name}")
    FlowStep.objects.create(
        flow=flow, position=2, kind=StepKind.ASK, text="How are we doing?", attribute="mood"
    )
    return {
        "server": gunicorn,
        "agent": agent,
        "api": Api(gunicorn, token),
        "flow": flow,
        "log_start": len(gunicorn.log_text()),
    }


class Ledger:
    """What each round sent and what the server answered."""

    def __init__(self):
        self.statuses: Counter = Counter()
        self.accepted_inbound: list[str] = []
        self.accepted_replies: list[str] = []

    def run(self, requests):
        """``requests``: (kind, text or None, callable returning the HTTP status)."""
        results, errors = run_together([call for _, _, call in requests])
        assert errors == [None] * len(requests), errors
        for (kind, text, _), status in zip(requests, results, strict=True):
            self.statuses[(kind, status)] += 1
            if text is not None and status in (200, 201, 302):
                target = self.accepted_inbound if kind in INBOUND_KINDS else self.accepted_replies
                target.append(text)

    def server_errors(self) -> int:
        return sum(n for (_, status), n in self.statuses.items() if status >= 500)


INBOUND_KINDS = {"inbound", "chat"}


def _check(world, ledger: Ledger, *, allowed_retries: int | None = 0) -> None:
    assert ledger.server_errors() == 0, ledger.statuses
    # Every accepted message is stored, once.
    inbound = Counter(
        Message.objects.filter(direction=Direction.INBOUND).values_list("text", flat=True)
    )
    for text in ledger.accepted_inbound:
        assert inbound[text] == 1, text
    replies = Counter(
        Message.objects.filter(sender_kind=SenderKind.AGENT).values_list("text", flat=True)
    )
    for text in ledger.accepted_replies:
        assert replies[text] == 1, text
    # The history of every conversation is a chain ending in its status.
    for conversation in Conversation.objects.all():
        chain = list(
            StatusChange.objects.filter(conversation=conversation)
            .order_by("id")
            .values_list("from_status", "to_status")
        )
        assert chain[0][0] == ""
        for (_, before), (after_from, _) in zip(chain, chain[1:], strict=False):
            assert after_from == before, (conversation.pk, chain)
        assert chain[-1][1] == conversation.status, (conversation.pk, chain)
    # In a flow exactly when one flow run is running.
    runs = Conversation.objects.annotate(
        active=Count("flow_runs", filter=Q(flow_runs__state__in=["running", "waiting"]))
    )
    for conversation in runs:
        expected = 1 if conversation.status == Status.IN_FLOW else 0
        assert conversation.active == expected, (conversation.pk, conversation.status)
    # At most one open conversation per contact (the database's own index, checked).
    assert not (
        Conversation.objects.open().values("contact").annotate(n=Count("id")).filter(n__gt=1)
    )
    if allowed_retries is not None:
        retries = world["server"].log_text()[world["log_start"] :].count(RETRY_LOG)
        assert retries <= allowed_retries, f"{retries} transactions needed a retry"


def _new_conversation(n: int, **kwargs) -> Conversation:
    return services.message_receive(
        channel="sms", external_id=f"+3360000{n:04d}", text=f"hello {n}", **kwargs
    ).conversation


def _reply(world, conversation_id: int, text: str):
    api = world["api"]
    return (
        "reply",
        text,
        lambda: api.post(f"/conversations/{conversation_id}/reply", {"text": text}),
    )


def _start(world, conversation_id: int, *, priority: bool):
    api, flow = world["api"], world["flow"]
    payload = {"conversation_id": conversation_id, "has_priority": priority}
    kind = "priority start" if priority else "start"
    return (kind, None, lambda: api.post(f"/flows/{flow.pk}/start", payload))


def _inbound(world, contact: Contact, text: str):
    api = world["api"]
    payload = {"channel": contact.channel, "external_id": contact.external_id, "text": text}
    return ("inbound", text, lambda: api.post("/messages/inbound", payload))


def test_reply_racing_a_priority_flow_start(world):
    ledger = Ledger()
    for n in range(ROUNDS):
        conversation = _new_conversation(n)
        ledger.run(
            [
                _reply(world, conversation.pk, f"reply {n}"),
                _start(world, conversation.pk, priority=True),
            ]
        )
    _check(world, ledger)
    assert ledger.statuses[("reply", 201)] == ROUNDS
    assert ledger.statuses[("priority start", 201)] == ROUNDS


def test_reply_racing_an_ordinary_flow_start(world):
    ledger = Ledger()
    for n in range(ROUNDS):
        contact = services.contact_create(channel="sms", external_id=f"+3361000{n:04d}")
        conversation = contact.conversations.get()
        ledger.run(
            [
                _reply(world, conversation.pk, f"reply {n}"),
                _start(world, conversation.pk, priority=False),
            ]
        )
    _check(world, ledger)
    assert ledger.statuses[("reply", 201)] == ROUNDS
    # The start either came first (201) or found the conversation ongoing (409).
    assert ledger.statuses[("start", 201)] + ledger.statuses[("start", 409)] == ROUNDS


def test_reply_racing_an_inbound_message(world):
    ledger = Ledger()
    for n in range(ROUNDS):
        conversation = _new_conversation(n)
        ledger.run(
            [
                _reply(world, conversation.pk, f"reply {n}"),
                _inbound(world, conversation.contact, f"inbound {n}"),
            ]
        )
    _check(world, ledger)
    assert ledger.statuses == {("reply", 201): ROUNDS, ("inbound", 201): ROUNDS}


def _later(seconds: float, request):
    """The request, sent ``seconds`` after the others: the chat page does more work
    before its transaction than the API, so the rounds sweep the window."""
    kind, text, call = request

    def delayed():
        time.sleep(seconds)
        return call()

    return kind, text, delayed


def test_chat_message_racing_a_reply(world):
    ledger = Ledger()
    for n in range(ROUNDS):
        visitor, contact = _chat_visitor(world["server"])
        conversation = contact.conversations.get()
        chat = (
            "chat",
            f"chat {n}",
            lambda v=visitor, n=n: v.post("/chat/web/send/", {"text": f"chat {n}"}),
        )
        reply = _reply(world, conversation.pk, f"reply {n}")
        offset = ((n % 6) - 2) * 0.004  # the reply from 8 ms before to 12 ms after
        ledger.run([_later(max(-offset, 0), chat), _later(max(offset, 0), reply)])
    _check(world, ledger)
    assert ledger.statuses == {("chat", 200): ROUNDS, ("reply", 201): ROUNDS}


def test_eight_kinds_of_request_on_one_conversation(world):
    """Agent replies (API and inbox), flow starts with and without priority, an
    inbound message, a chat message, a tag and a close, all at once, round after
    round on the same contact."""
    ledger = Ledger()
    api = world["api"]
    inbox = _inbox(world["server"], world["agent"])
    visitor, contact = _chat_visitor(world["server"])
    for n in range(MIXED_ROUNDS):
        conversation = contact.conversations.open().first()
        if conversation is None:  # closed last round: the contact writes again
            conversation = services.message_receive(
                channel="web", external_id=contact.external_id, text=f"again {n}"
            ).conversation
        pk = conversation.pk
        ledger.run(
            [
                _reply(world, pk, f"api reply {n}"),
                (
                    "inbox reply",
                    None,  # refused or not, the inbox redirects back to the pane
                    lambda pk=pk, n=n: inbox.post(
                        f"/inbox/c/{pk}/reply/", {"text": f"inbox reply {n}"}
                    ),
                ),
                _start(world, pk, priority=True),
                _start(world, pk, priority=False),
                _inbound(world, contact, f"inbound {n}"),
                (
                    "chat",
                    f"chat {n}",
                    lambda n=n: visitor.post("/chat/web/send/", {"text": f"chat {n}"}),
                ),
                ("tag", None, lambda pk=pk: api.post(f"/conversations/{pk}/tags", {"name": "vip"})),
                ("close", None, lambda pk=pk: api.post(f"/conversations/{pk}/close", {})),
            ]
        )
    # Eight writers queue on one contact: a retry is allowed here, a 500 is not.
    _check(world, ledger, allowed_retries=None)
    assert ledger.statuses[("inbound", 201)] == MIXED_ROUNDS
    assert ledger.statuses[("chat", 200)] == MIXED_ROUNDS
