"""Agents first: when the API has used its share of a web process, another API
request waits briefly and then gets 429 + Retry-After, while agents' pages are served
at once (config/admission.py), under the production server."""

import json
import threading
import urllib.error
import urllib.request

import psycopg
import pytest

from connectors.tokens import token_create
from conversations import services
from conversations.models import Message
from tests.concurrency import database_url_for_subprocess
from tests.factories import UserFactory
from tests.ops.conftest import asgi_server, post_json, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


def _status(url: str, *, body: dict | None = None, token: str = "", cookie: str = ""):
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    if cookie:
        headers = {"Cookie": cookie}
    request = urllib.request.Request(  # noqa: S310 - 127.0.0.1 only
        url, data=json.dumps(body).encode() if body else None, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_a_busy_api_answers_429_with_retry_after_and_agents_are_still_served(client, agent):
    _, token = token_create(user=UserFactory(), name="admission test")
    cookie = session_cookie(client, agent)
    held = services.message_receive(channel="sms", external_id="+31611111111", text="first")
    env = {"API_CONCURRENCY": "1", "API_QUEUE_SECONDS": "0.3"}
    server, base = asgi_server(env)
    inbound = base + "/api/v1/messages/inbound"
    lock = psycopg.connect(database_url_for_subprocess().replace("postgres://", "postgresql://"))
    results = []
    with server:
        try:
            # The only API place: an inbound message waiting for its contact's row.
            lock.execute(
                "SELECT 1 FROM conversations_contact WHERE id = %s FOR UPDATE",
                [held.conversation.contact_id],
            )
            body = {"channel": "sms", "external_id": "+31611111111", "text": "held"}
            blocked = threading.Thread(
                target=lambda: results.append(post_json(inbound, body, token))
            )
            blocked.start()
            refused = None
            for n in range(40):  # bounded: until the held request occupies the place
                other = {"channel": "sms", "external_id": f"+3162222{n:04d}", "text": "hi"}
                status, headers, payload = _status(inbound, body=other, token=token)
                if status == 429:
                    refused = (headers, json.loads(payload))
                    break
            assert refused is not None, "the API never refused"
            headers, payload = refused
            assert headers["Retry-After"] == "1"
            assert payload["error"] == "overloaded"
            assert "retry" in payload["detail"]

            page_status, _, page = _status(base + "/inbox/", cookie=cookie)
            assert page_status == 200 and b"+31611111111" in page
        finally:
            lock.rollback()
            lock.close()
        blocked.join(timeout=60)
    assert results == [201]
    assert Message.objects.filter(text="held").count() == 1


def test_the_lanes_streams_and_health_checks_wait_for_nothing():
    from config.admission import lane_of

    assert lane_of("/api/v1/messages/inbound") == "api"
    assert lane_of("/inbox/") == lane_of("/inbox/c/3/reply/") == lane_of("/chat/web/") == "pages"
    assert lane_of("/inbox/stream/") is lane_of("/chat/web/stream/") is None
    assert lane_of("/healthz") is lane_of("/readyz") is None


def test_under_asgi_the_middlewares_and_the_view_run_in_one_thread_hop():
    """config.asgi.Handler: the whole chain is synchronous (one hop into a thread per
    request, not one per middleware), and the lanes sit in front of it on the loop."""
    from asgiref.sync import iscoroutinefunction

    from config.admission import Admission
    from config.asgi import Handler, application

    assert isinstance(application, Admission) and isinstance(application.app, Handler)
    assert not iscoroutinefunction(application.app._middleware_chain)
