"""The production server configuration (config/gunicorn.conf.py) serves the API:
threaded workers, each thread with its own database connection from the pool, many
inbound messages at once, every one stored."""

import json
import os
import threading
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from connectors.tokens import token_create
from conversations.models import Message
from tests.concurrency import GUNICORN, free_port, serving
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parent.parent.parent


def _config() -> dict:
    namespace: dict = {}
    exec((ROOT / "config" / "gunicorn.conf.py").read_text(), namespace)  # noqa: S102 - ours
    return namespace


def test_the_workers_are_threaded():
    config = _config()
    assert config["worker_class"] == "gthread"
    assert config["threads"] > 1
    assert config["keepalive"] > 0


@pytest.fixture
def gunicorn():
    port = free_port()
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "ALLOWED_HOSTS": "127.0.0.1", "DEBUG": "false"}
    argv = [GUNICORN, "-c", "config/gunicorn.conf.py", "config.wsgi"]
    argv += ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--log-level", "warning"]
    with serving(argv, port=port, env=env):
        yield f"http://127.0.0.1:{port}"


def test_forty_inbound_messages_at_once_are_all_stored(gunicorn):
    _, token = token_create(user=UserFactory(), name="gunicorn test")
    statuses = []

    def post(n: int):
        body = {"channel": "web", "external_id": f"visitor-{n % 8}", "text": f"message {n}"}
        request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            gunicorn + "/api/v1/messages/inbound",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            statuses.append(response.status)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert statuses == [201] * 40
    texts = set(Message.objects.values_list("text", flat=True))
    assert texts == {f"message {n}" for n in range(40)}
