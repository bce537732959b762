"""Outbound delivery through real HTTP to a small local webhook receiver."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django_tasks_db.models import DBTaskResult

from connectors.models import Channel, ChannelKind, Delivery, DeliveryStatus
from connectors.tasks import MAX_ATTEMPTS, deliver
from conversations import services
from conversations.exceptions import IllegalTransition
from conversations.transitions import Status
from tests.factories import ContactFactory, conversation_in

pytestmark = pytest.mark.django_db

IMMEDIATE = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}


class Receiver:
    """A webhook endpoint that answers ``status`` and records what it got."""

    def __init__(self):
        self.status = 200
        self.delay = 0.0  # seconds before answering
        self.received: list[dict] = []
        self.raw: list[tuple[bytes, str | None]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                body = self.rfile.read(length)
                receiver.received.append(json.loads(body))
                receiver.raw.append((body, self.headers.get("X-Parley-Signature")))
                time.sleep(receiver.delay)
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def hook_conversation(receiver):
    Channel.objects.create(slug="crm", kind=ChannelKind.WEBHOOK, webhook_url=receiver.url)
    return conversation_in(Status.NEW, contact=ContactFactory(channel="crm"))


def test_a_reply_on_a_webhook_channel_is_posted_as_json(
    settings, receiver, hook_conversation, agent, django_capture_on_commit_callbacks
):
    settings.TASKS = IMMEDIATE
    with django_capture_on_commit_callbacks(execute=True):
        message = services.conversation_reply(
            conversation=hook_conversation, agent=agent, text="We shipped it."
        )
    delivery = Delivery.objects.get(message=message)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 1, "")
    assert delivery.delivered_at is not None
    [payload] = receiver.received
    assert payload["event"] == "message.outbound"
    assert payload["message"]["text"] == "We shipped it."
    assert payload["message"]["sender_kind"] == "agent"
    assert payload["conversation"] == {"id": hook_conversation.pk, "status": "in_progress"}
    assert payload["contact"]["external_id"] == hook_conversation.contact.external_id


def test_a_failing_webhook_is_retried_then_marked_failed(
    settings, receiver, hook_conversation, agent, django_capture_on_commit_callbacks
):
    settings.TASKS = IMMEDIATE  # no defer: the retries run at once
    receiver.status = 503
    with django_capture_on_commit_callbacks(execute=True):
        message = services.conversation_reply(
            conversation=hook_conversation, agent=agent, text="Hello?"
        )
    delivery = Delivery.objects.get(message=message)
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == MAX_ATTEMPTS == len(receiver.received)
    assert "503" in delivery.last_error
    # The message itself was sent: the conversation moved on regardless.
    hook_conversation.refresh_from_db()
    assert hook_conversation.status == Status.IN_PROGRESS


def test_an_unreachable_webhook_is_retried_later_through_the_queue(
    receiver, hook_conversation, agent, django_capture_on_commit_callbacks
):
    """With the database queue the retry is deferred (backoff), not immediate."""
    receiver.stop()  # nobody listens any more
    with django_capture_on_commit_callbacks(execute=True):
        message = services.conversation_reply(
            conversation=hook_conversation, agent=agent, text="Hello?"
        )
    delivery = Delivery.objects.get(message=message)
    assert DBTaskResult.objects.count() == 1  # enqueued after commit, not run yet
    assert deliver.call(delivery.pk) == "retrying"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "URLError" in delivery.last_error or "Connection" in delivery.last_error
    retry = DBTaskResult.objects.order_by("-enqueued_at").first()
    assert DBTaskResult.objects.count() == 2
    assert retry.run_after is not None and retry.run_after > delivery.updated_at


def test_a_delivered_message_is_never_posted_twice(
    settings, receiver, hook_conversation, agent, django_capture_on_commit_callbacks
):
    settings.TASKS = IMMEDIATE
    with django_capture_on_commit_callbacks(execute=True):
        message = services.conversation_reply(
            conversation=hook_conversation, agent=agent, text="Once"
        )
    assert deliver.call(message.delivery.pk) == "nothing to do"
    assert len(receiver.received) == 1


def test_web_chat_messages_need_no_delivery_row(agent, django_capture_on_commit_callbacks):
    conversation = conversation_in(Status.NEW)  # the factory's contacts are on "web"
    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_reply(conversation=conversation, agent=agent, text="Hi")
    assert not Delivery.objects.exists()


def test_a_refused_reply_leaves_no_delivery(settings, receiver, hook_conversation, agent):
    services.conversation_close(conversation=hook_conversation, actor=agent)
    with pytest.raises(IllegalTransition):
        services.conversation_reply(conversation=hook_conversation, agent=agent, text="late")
    assert not Delivery.objects.exists()
    assert receiver.received == []


def test_the_api_shows_a_failed_delivery(
    settings, live_server, receiver, hook_conversation, agent, django_capture_on_commit_callbacks
):
    from connectors.tokens import token_create
    from tests.api.conftest import ApiClient

    settings.TASKS = IMMEDIATE
    receiver.status = 500
    with django_capture_on_commit_callbacks(execute=True):
        message = services.conversation_reply(conversation=hook_conversation, agent=agent, text="x")
    api = ApiClient(live_server.url, token_create(user=agent)[1])
    response = api.get(f"/messages/{message.pk}/delivery")
    assert response.status == 200
    assert response.body["status"] == "failed"
    assert response.body["attempts"] == MAX_ATTEMPTS
    assert "500" in response.body["last_error"]
    assert api.get("/messages/987654/delivery").status == 404


def test_a_webhook_with_a_secret_signs_its_posts(
    settings, receiver, agent, django_capture_on_commit_callbacks
):
    import hashlib
    import hmac

    settings.TASKS = IMMEDIATE
    Channel.objects.create(
        slug="signed", kind=ChannelKind.WEBHOOK, webhook_url=receiver.url, webhook_secret="s3cr3t"
    )
    conversation = conversation_in(Status.NEW, contact=ContactFactory(channel="signed"))
    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_reply(conversation=conversation, agent=agent, text="Signed")
    [(body, signature)] = receiver.raw
    expected = hmac.new(b"s3cr3t", body, hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"


def test_a_webhook_without_a_secret_sends_no_signature(
    settings, receiver, hook_conversation, agent, django_capture_on_commit_callbacks
):
    settings.TASKS = IMMEDIATE
    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_reply(conversation=hook_conversation, agent=agent, text="Plain")
    assert receiver.raw[0][1] is None


# --- a lost task, and a task queued twice ------------------------------------------------


def _pending_delivery(hook_conversation, agent, django_capture_on_commit_callbacks):
    """A reply's delivery, queued (the database queue) and not run."""
    with django_capture_on_commit_callbacks(execute=True):
        message = services.conversation_reply(
            conversation=hook_conversation, agent=agent, text="Where is it?"
        )
    return Delivery.objects.get(message=message)


def _lost(delivery, minutes=11):
    """As a delivery whose task died with its worker: pending, untouched for a while."""
    from datetime import timedelta

    from django.utils import timezone

    Delivery.objects.filter(pk=delivery.pk).update(
        updated_at=timezone.now() - timedelta(minutes=minutes)
    )


def test_a_delivery_whose_task_was_lost_is_queued_again_by_housekeeping(
    settings, receiver, hook_conversation, agent, django_capture_on_commit_callbacks
):
    from conversations.tasks import housekeeping

    delivery = _pending_delivery(hook_conversation, agent, django_capture_on_commit_callbacks)
    _lost(delivery)
    settings.TASKS = IMMEDIATE  # the re-queued task runs at once
    assert housekeeping.call()["deliveries_requeued"] == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    assert [p["message"]["text"] for p in receiver.received] == ["Where is it?"]
    # Delivered: nothing is queued again, and the message is never posted twice.
    _lost(delivery)
    assert housekeeping.call()["deliveries_requeued"] == 0
    assert len(receiver.received) == 1


def test_a_delivery_waiting_for_its_retry_or_being_sent_is_not_queued_again(
    receiver, hook_conversation, agent, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from connectors.delivery import requeue_stalled

    delivery = _pending_delivery(hook_conversation, agent, django_capture_on_commit_callbacks)
    queued = DBTaskResult.objects.count()
    _lost(delivery, minutes=4)  # a retry's backoff is at most 5 minutes
    assert requeue_stalled() == 0
    _lost(delivery)
    Delivery.objects.filter(pk=delivery.pk).update(
        claimed_until=timezone.now() + timedelta(minutes=1)
    )
    assert requeue_stalled() == 0  # a run is sending it
    assert DBTaskResult.objects.count() == queued


@pytest.mark.django_db(transaction=True)
def test_two_runs_of_one_delivery_at_once_post_it_once(receiver, agent):
    """The original task and a re-queued one running at the same moment (two
    workers): the second finds the delivery claimed and leaves it alone."""
    from django.db import connection

    Channel.objects.create(slug="crm", kind=ChannelKind.WEBHOOK, webhook_url=receiver.url)
    conversation = conversation_in(Status.NEW, contact=ContactFactory(channel="crm"))
    message = services.conversation_reply(conversation=conversation, agent=agent, text="Once")
    delivery = Delivery.objects.get(message=message)
    receiver.delay = 0.5  # the first run is still sending when the second starts
    results = []

    def run():
        try:
            results.append(deliver.call(delivery.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == ["being sent by another run", "delivered"]
    assert len(receiver.received) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.claimed_until) == ("delivered", 1, None)
