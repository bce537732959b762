"""Beyond one process: two web servers and background workers, each its own process,
on one database. An event published through one server reaches an agent's stream on
the other; a broadcast split across two workers reaches every contact exactly once, on
either queue (the database's db_worker, RQ workers on Redis)."""

import json
from contextlib import ExitStack

import pytest

from config.observability import request_id
from connectors.tokens import token_create
from conversations.models import Contact, Conversation, Message, SenderKind
from flows.broadcasts import broadcast_create
from flows.models import Broadcast, BroadcastDelivery, BroadcastState, Flow, FlowStep, StepKind
from tests.factories import UserFactory
from tests.ops.conftest import (
    EventStream,
    asgi_server,
    post_json,
    session_cookie,
    wait_for,
    workers,
)

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]
CHUNK = 100  # contacts per broadcast chunk, in the workers


def announcement() -> Flow:
    flow = Flow.objects.create(name="Announcement")
    FlowStep.objects.create(flow=flow, position=1, kind=StepKind.SEND_MESSAGE, text="We moved!")
    return flow


def test_an_event_published_on_one_web_server_reaches_a_stream_on_the_other(
    tmp_path, client, agent
):
    _, token = token_create(user=UserFactory(), name="cluster test")
    cookie = session_cookie(client, agent)
    Contact.objects.bulk_create(
        Contact(channel="sms", external_id=f"+3160000{n:04d}") for n in range(5)
    )
    server_a, base_a = asgi_server({}, log=tmp_path / "a.log")
    server_b, base_b = asgi_server({}, log=tmp_path / "b.log")
    with server_a, server_b, workers(1, [tmp_path / "worker.log"]):
        stream = EventStream(base_b, cookie)  # an agent on web server B
        body = {"channel": "web", "external_id": "cluster-visitor", "text": "Hi from A"}
        assert post_json(base_a + "/api/v1/messages/inbound", body, token) == 201
        conversation = Conversation.objects.get(contact__external_id="cluster-visitor")
        stream.wait_for({conversation.pk})

        # Written by the worker (a third process): B's agent hears of it too.
        broadcast_create(flow=announcement(), segment="channel", segment_value="sms")
        wait_for(lambda: Conversation.objects.filter(contact__channel="sms").count() == 5)
        stream.wait_for(
            set(Conversation.objects.filter(contact__channel="sms").values_list("pk", flat=True))
        )
        stream.close()
    assert not stream.everything


def test_a_broadcast_split_across_two_workers_reaches_every_contact_once(tmp_path, queue):
    total = CHUNK * 5 + 7  # six chunks
    Contact.objects.bulk_create(
        Contact(channel="sms", external_id=f"+3170000{n:05d}") for n in range(total)
    )
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    with ExitStack() as stack:
        stack.enter_context(workers(2, logs, queue, BROADCAST_CHUNK_SIZE=str(CHUNK)))
        token = request_id.set("broadcast-request")  # as if an agent's request started it
        try:
            broadcast = broadcast_create(flow=announcement(), segment="all")
        finally:
            request_id.reset(token)
        wait_for(lambda: Broadcast.objects.get(pk=broadcast.pk).state == BroadcastState.DONE)

    broadcast.refresh_from_db()
    assert (broadcast.sent, broadcast.skipped, broadcast.failed) == (total, 0, 0)
    assert BroadcastDelivery.objects.filter(broadcast=broadcast).count() == total
    sent = Message.objects.filter(sender_kind=SenderKind.BROADCAST)
    assert sent.count() == total
    assert sent.values("conversation__contact").distinct().count() == total

    def chunks_run(log) -> list[dict]:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line[:1] == "{"]
        return [line for line in lines if line["message"] == "task run_broadcast_chunk started"]

    per_worker = [chunks_run(log) for log in logs]
    assert sum(map(len, per_worker)) >= 6
    assert all(per_worker), f"one worker ran every chunk: {list(map(len, per_worker))}"
    # The request's id travelled into the broadcast's task, and from it into each chunk.
    assert {line["request_id"] for lines in per_worker for line in lines} == {"broadcast-request"}
