"""Operations: liveness and readiness for load balancers, a request id that follows a
request into its background tasks, JSON logs, errors to Sentry."""

import gzip
import json
import logging
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.urls import reverse
from django_tasks_db.models import DBTaskResult

from config.observability import JsonFormatter, RequestIdFilter, request_id
from connectors.models import Channel, ChannelKind
from conversations.transitions import Status
from tests.concurrency import ROOT, database_url_for_subprocess, free_port
from tests.connectors.test_delivery import Receiver
from tests.factories import ContactFactory, conversation_in
from tests.ops.conftest import asgi_server, get_json

# --- liveness ------------------------------------------------------------------------


@pytest.mark.django_db
def test_healthz_is_anonymous_json_and_never_touches_the_database(
    client, django_assert_num_queries
):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_in_process_reports_each_check(client):
    response = client.get(reverse("readyz"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "queue": "ok", "listener": "ok"}


# --- readiness under the production server --------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_readyz_is_ok_when_database_queue_and_listener_are_up():
    server, base = asgi_server({})
    with server:
        status, body, headers = get_json(base + "/readyz")
        assert (status, body) == (
            200,
            {"status": "ok", "database": "ok", "queue": "ok", "listener": "ok"},
        )
        assert headers["Content-Type"] == "application/json"


@pytest.mark.django_db(transaction=True)
def test_readyz_is_503_when_the_listen_connection_cannot_be_made():
    dead = f"postgres://postgres@127.0.0.1:{free_port()}/nowhere"
    server, base = asgi_server({"DATABASE_DIRECT_URL": dead})
    with server:
        status, body, _ = get_json(base + "/readyz")
    assert status == 503
    assert body == {"status": "unavailable", "database": "ok", "queue": "ok", "listener": "down"}


@pytest.mark.django_db(transaction=True)
def test_without_a_database_the_process_is_alive_but_not_ready():
    dead = f"postgres://postgres@127.0.0.1:{free_port()}/nowhere"
    server, base = asgi_server({"DATABASE_URL": dead})
    with server:
        assert get_json(base + "/healthz")[:2] == (200, {"status": "ok"})
        status, body, _ = get_json(base + "/readyz")
    assert status == 503
    assert body == {
        "status": "unavailable",
        "database": "unreachable",
        "queue": "unknown",
        "listener": "down",
    }


# --- request id ----------------------------------------------------------------------


@pytest.mark.django_db
def test_an_incoming_request_id_is_returned_and_a_bad_one_replaced(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="lb-42.a")["X-Request-ID"] == "lb-42.a"
    replaced = client.get("/healthz", HTTP_X_REQUEST_ID="<script>")["X-Request-ID"]
    generated = client.get("/healthz")["X-Request-ID"]
    assert len(replaced) == len(generated) == 32
    assert replaced != generated


@pytest.mark.django_db
def test_error_pages_carry_the_request_id_too(client):
    response = client.get("/api/v1/nothing-here", HTTP_X_REQUEST_ID="trace-404")
    assert response.status_code == 404
    assert response["X-Request-ID"] == "trace-404"


def test_every_log_line_carries_the_request_id_and_json_is_one_object_a_line():
    record = logging.LogRecord("parley", logging.WARNING, __file__, 1, "hello %s", ("you",), None)
    token = request_id.set("abc-123")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "abc-123"
    assert (line["level"], line["logger"], line["message"]) == ("WARNING", "parley", "hello you")


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.mark.django_db(transaction=True)
def test_the_request_id_follows_a_reply_into_the_worker_that_delivers_it(client, agent, receiver):
    """A reply on a webhook channel enqueues its delivery; the task carries the id of
    the request that made it, and the worker's (JSON) log lines for it show that id."""
    Channel.objects.create(slug="crm", kind=ChannelKind.WEBHOOK, webhook_url=receiver.url)
    conversation = conversation_in(Status.NEW, contact=ContactFactory(channel="crm"))
    client.force_login(agent)
    response = client.post(
        reverse("inbox:reply", args=[conversation.pk]),
        {"text": "Shipped today."},
        HTTP_HX_REQUEST="true",
        HTTP_X_REQUEST_ID="reply-trace-7",
    )
    assert response.status_code == 200
    task = DBTaskResult.objects.get()
    assert task.args_kwargs["kwargs"]["request_id"] == "reply-trace-7"

    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), "LOG_FORMAT": "json"}
    worker = subprocess.run(  # noqa: S603 - our own worker
        [sys.executable, "manage.py", "db_worker", "--batch", "--no-startup-delay"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 0, worker.stderr[-2000:]
    lines = [json.loads(line) for line in worker.stderr.splitlines() if line.startswith("{")]
    traced = [line for line in lines if line["logger"] == "parley.tasks"]
    assert [line["message"].split(" in ")[0] for line in traced] == [
        "task deliver started",
        "task deliver finished",
    ]
    assert {line["request_id"] for line in traced} == {"reply-trace-7"}
    assert [payload["message"]["text"] for payload in receiver.received] == ["Shipped today."]


# --- Sentry --------------------------------------------------------------------------


class SentryInbox:
    """A stand-in Sentry ingestion endpoint over real HTTP: keeps every envelope."""

    def __init__(self):
        self.envelopes: list[bytes] = []
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                inbox.envelopes.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.dsn = f"http://public@127.0.0.1:{self.server.server_address[1]}/1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _crash(env: dict) -> subprocess.CompletedProcess:
    code = "raise RuntimeError('sentry-check-boom')"
    return subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )


def test_errors_go_to_sentry_when_a_dsn_is_set_and_nowhere_without():
    inbox = SentryInbox()
    try:
        env = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"}
        assert _crash(env).returncode != 0
        assert inbox.envelopes == []
        assert _crash({**env, "SENTRY_DSN": inbox.dsn}).returncode != 0
    finally:
        inbox.stop()
    assert any(b"sentry-check-boom" in envelope for envelope in inbox.envelopes)


def test_without_a_dsn_sentry_is_not_started():
    import sentry_sdk

    assert not sentry_sdk.get_client().is_active()


def test_favicon_ico_leads_to_the_icon_for_pages_that_do_not_link_it(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"] == static("img/favicon.svg")
    assert finders.find("img/favicon.svg")
