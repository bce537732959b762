"""The app behind a real PgBouncer in transaction mode (the production pooler): every
query goes through it with prepared statements off, while each web process's LISTEN
connection goes straight to PostgreSQL (DATABASE_DIRECT_URL)."""

import threading

import pytest
from django.urls import reverse

from connectors.tokens import token_create
from conversations.models import Conversation, Message
from tests.concurrency import database_url_for_subprocess
from tests.factories import UserFactory
from tests.ops.conftest import (
    EventStream,
    asgi_server,
    get_json,
    pgbouncer_in_front,
    post_json,
    session_cookie,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_app_runs_through_pgbouncer_in_transaction_mode(tmp_path, client, agent):
    _, token = token_create(user=UserFactory(), name="pooler test")
    cookie = session_cookie(client, agent)
    with pgbouncer_in_front() as pooled:
        env = {"DATABASE_URL": pooled, "DATABASE_DIRECT_URL": database_url_for_subprocess()}
        server, base = asgi_server(env, workers=2, log=tmp_path / "server.log")
        with server:
            assert get_json(base + "/readyz")[:2] == (
                200,
                {"status": "ok", "database": "ok", "queue": "ok", "listener": "ok"},
            )
            stream = EventStream(base, cookie)
            statuses = []

            def send(n: int):
                body = {"channel": "web", "external_id": f"pooled-{n % 10}", "text": f"m {n}"}
                statuses.append(post_json(base + "/api/v1/messages/inbound", body, token))

            # Many at once, more than a process's share of the pooler's connections:
            # each pooled connection serves transaction after transaction of any
            # client, which breaks anything that leans on a session.
            threads = [threading.Thread(target=send, args=(n,)) for n in range(60)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            assert statuses == [201] * 60
            ids = set(Conversation.objects.values_list("pk", flat=True))
            assert len(ids) == 10
            stream.wait_for(ids)  # NOTIFY of writes made through PgBouncer, heard directly
            stream.close()

            import urllib.request

            request = urllib.request.Request(  # noqa: S310 - 127.0.0.1 only
                base + reverse("inbox:list"), headers={"Cookie": cookie}
            )
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                assert response.status == 200
                page = response.read().decode()
                assert all(f"/inbox/c/{pk}/" in page for pk in ids)
        assert "prepared statement" not in (tmp_path / "server.log").read_text()
    assert set(Message.objects.values_list("text", flat=True)) == {f"m {n}" for n in range(60)}
