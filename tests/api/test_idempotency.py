"""Issue 17: ``Idempotency-Key`` on the API's creating POSTs, over real HTTP
(``live_server``, threaded: concurrent requests really run at once)."""

import json
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from connectors.tokens import token_create
from conversations import idempotency, services
from conversations.models import Contact, Conversation, IdempotencyRecord, Message
from conversations.tasks import housekeeping
from flows.models import Flow, FlowRun, FlowStep, StepKind
from tests.api.conftest import ApiClient
from tests.concurrency import run_together
from tests.factories import UserFactory, conversation_in

pytestmark = pytest.mark.django_db(transaction=True)

INBOUND = "/messages/inbound"
REPLAYED = "Idempotent-Replayed"


def _key() -> dict:
    return {"Idempotency-Key": str(uuid.uuid4())}


def _inbound(text="Hello", external_id="+3361") -> dict:
    return {"channel": "whatsapp", "external_id": external_id, "text": text}


def _rows() -> tuple[int, int, int, int]:
    return (
        Contact.objects.count(),
        Conversation.objects.count(),
        Message.objects.count(),
        IdempotencyRecord.objects.count(),
    )


def test_a_repeated_inbound_message_is_stored_once_and_answered_the_same(api, agent):
    key = _key()
    first = api.post(INBOUND, _inbound(), headers=key)
    assert first.status == 201
    assert REPLAYED not in first.headers
    again = api.post(INBOUND, _inbound(), headers=key)
    assert again.status == 201
    assert again.body == first.body
    assert again.headers[REPLAYED] == "true"
    assert again.headers["Content-Type"].startswith("application/json")
    assert Message.objects.count() == 1
    record = IdempotencyRecord.objects.get()
    assert (record.user, record.key, record.endpoint, record.status) == (
        agent,
        key["Idempotency-Key"],
        "POST /api/v1/messages/inbound",
        201,
    )
    assert json.loads(record.response) == first.body


def test_the_same_object_serialised_differently_is_the_same_request(api):
    key = _key()
    first = api.post(INBOUND, _inbound(), headers=key)
    body = json.dumps(dict(reversed(_inbound().items())), indent=2).encode()
    again = api.post(INBOUND, raw=body, headers=key)
    assert (again.status, again.body, again.headers[REPLAYED]) == (201, first.body, "true")
    assert Message.objects.count() == 1


def test_the_same_key_with_another_body_or_endpoint_is_422_and_changes_nothing(api):
    key = _key()
    assert api.post(INBOUND, _inbound("one"), headers=key).status == 201
    before = _rows()
    other_body = api.post(INBOUND, _inbound("two"), headers=key)
    assert (other_body.status, other_body.error) == (422, "idempotency_key_reused")
    assert "another body" in other_body.body["detail"]
    other_endpoint = api.post("/contacts", {"channel": "web", "external_id": "v"}, headers=key)
    assert (other_endpoint.status, other_endpoint.error) == (422, "idempotency_key_reused")
    assert "POST /api/v1/messages/inbound" in other_endpoint.body["detail"]
    assert _rows() == before
    assert list(Message.objects.values_list("text", flat=True)) == ["one"]


@pytest.mark.parametrize("bad", ["", "k" * 256, "clé", "a\x7fb"])
def test_a_malformed_key_is_422_and_nothing_runs(api, bad):
    response = api.post(INBOUND, _inbound(), headers={"Idempotency-Key": bad})
    assert (response.status, response.error) == (422, "invalid_idempotency_key")
    assert "255 printable ASCII" in response.body["detail"]
    assert _rows() == (0, 0, 0, 0)
    # The token is checked first, as on every call.
    anonymous = api.post(INBOUND, _inbound(), headers={"Idempotency-Key": bad}, token=None)
    assert (anonymous.status, anonymous.error) == (401, "unauthorized")


@pytest.mark.parametrize("good", ["k", "k" * 255, '"8e03978e-40d5" ~ {key}'])
def test_keys_of_1_to_255_printable_characters_are_taken(api, good):
    for _ in range(2):
        response = api.post(INBOUND, _inbound(), headers={"Idempotency-Key": good})
        assert response.status == 201
    assert IdempotencyRecord.objects.get().key == good
    assert Message.objects.count() == 1


def test_keys_belong_to_the_tokens_user(api, live_server):
    other = ApiClient(live_server.url, token_create(user=UserFactory(username="carol"))[1])
    key = _key()
    mine = api.post(INBOUND, _inbound(), headers=key)
    theirs = other.post(INBOUND, _inbound(), headers=key)
    assert (mine.status, theirs.status) == (201, 201)
    assert REPLAYED not in theirs.headers
    assert mine.body["message_id"] != theirs.body["message_id"]
    assert Message.objects.count() == 2
    assert IdempotencyRecord.objects.count() == 2
    # Each still replays its own.
    assert other.post(INBOUND, _inbound(), headers=key).body == theirs.body
    assert api.post(INBOUND, _inbound(), headers=key).body == mine.body


def test_the_same_request_at_once_stores_one_message(api):
    key = _key()
    body = _inbound("at once")
    results, errors = run_together([lambda: api.post(INBOUND, body, headers=key)] * 8)
    assert errors == [None] * 8
    assert [r.status for r in results] == [201] * 8
    assert len({r.body["message_id"] for r in results}) == 1
    assert sum(r.headers.get(REPLAYED) == "true" for r in results) == 7
    assert Message.objects.count() == 1
    assert IdempotencyRecord.objects.count() == 1


def test_the_same_contact_created_at_once_is_one_201_for_all(api):
    """The losers' work is refused (contact_exists) rather than rolled back: they find
    the winner's record after the refusal."""
    key = _key()
    body = {"channel": "web", "external_id": "v-at-once"}
    results, errors = run_together([lambda: api.post("/contacts", body, headers=key)] * 6)
    assert errors == [None] * 6
    assert [r.status for r in results] == [201] * 6
    assert len({json.dumps(r.body, sort_keys=True) for r in results}) == 1
    assert Contact.objects.count() == 1


def test_a_replay_answers_the_first_success_even_when_the_work_is_refused_now(api, agent):
    key = _key()
    body = {"channel": "web", "external_id": "v-1"}
    created = api.post("/contacts", body, headers=key)
    assert created.status == 201
    # Without the key the same request is now a duplicate.
    assert api.post("/contacts", body).error == "contact_exists"
    again = api.post("/contacts", body, headers=key)
    assert (again.status, again.body, again.headers[REPLAYED]) == (201, created.body, "true")

    conversation = conversation_in("in_progress", agent=agent)
    path = f"/conversations/{conversation.pk}/reply"
    replied = api.post(path, {"text": "On it"}, headers={"Idempotency-Key": "reply-1"})
    assert replied.status == 201
    services.conversation_close(conversation=conversation, actor=agent)
    again = api.post(path, {"text": "On it"}, headers={"Idempotency-Key": "reply-1"})
    assert (again.status, again.body, again.headers[REPLAYED]) == (201, replied.body, "true")
    assert conversation.messages.filter(text="On it").count() == 1


def test_notes_flow_starts_and_broadcasts_take_a_key_too(api, agent):
    agent.is_staff = True
    agent.save(update_fields=["is_staff"])
    conversation = conversation_in("not_contacted")
    flow = Flow.objects.create(name="Welcome", is_active=True)
    FlowStep.objects.create(flow=flow, position=10, kind=StepKind.SEND_MESSAGE, text="Hi")
    calls = [
        (f"/conversations/{conversation.pk}/notes", {"text": "A note"}),
        (f"/flows/{flow.pk}/start", {"conversation_id": conversation.pk, "has_priority": True}),
        ("/broadcasts", {"flow_id": flow.pk, "segment": "all"}),
    ]
    for path, body in calls:
        key = _key()
        first = api.post(path, body, headers=key)
        assert first.status == 201, first.body
        again = api.post(path, body, headers=key)
        assert (again.status, again.body, again.headers.get(REPLAYED)) == (
            201,
            first.body,
            "true",
        ), path
    assert conversation.activities.filter(kind="note").count() == 1
    assert FlowRun.objects.filter(trigger="api").count() == 1  # one priority start, not two
    assert flow.broadcasts.count() == 1


def test_a_refusal_is_not_recorded_and_may_be_sent_again(api, agent):
    conversation = conversation_in("closed", agent=agent)
    key = _key()
    path = f"/conversations/{conversation.pk}/reply"
    refused = api.post(path, {"text": "Too late"}, headers=key)
    assert (refused.status, refused.error) == (409, "illegal_transition")
    assert REPLAYED not in refused.headers
    invalid = api.post(INBOUND, {"channel": "web"}, headers=_key())
    assert (invalid.status, invalid.error) == (422, "invalid_request")
    assert not IdempotencyRecord.objects.exists()
    # A body that the first request got right is done then, with that same key.
    assert api.post(INBOUND, _inbound(), headers=key).status == 201


def test_a_key_older_than_its_lifetime_is_new_again(api):
    key = _key()
    first = api.post(INBOUND, _inbound("first"), headers=key)
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    again = api.post(INBOUND, _inbound("second"), headers=key)
    assert again.status == 201 and REPLAYED not in again.headers
    assert again.body["message_id"] != first.body["message_id"]
    assert json.loads(IdempotencyRecord.objects.get().response) == again.body


def test_housekeeping_prunes_expired_records_only(agent):
    now = timezone.now()
    for n, age in enumerate([25, 24.1, 23.9, 0]):
        IdempotencyRecord.objects.create(
            user=agent,
            key=f"k{n}",
            endpoint="POST /api/v1/messages/inbound",
            request_hash="0" * 64,
            status=201,
            response="{}",
            created_at=now - timedelta(hours=age),
        )
    assert housekeeping.call()["idempotency_records_pruned"] == 2
    assert sorted(IdempotencyRecord.objects.values_list("key", flat=True)) == ["k2", "k3"]
    assert idempotency.prune_expired(batch=1) == 0


def test_pruning_goes_batch_by_batch(agent):
    old = timezone.now() - timedelta(days=2)
    IdempotencyRecord.objects.bulk_create(
        IdempotencyRecord(
            user=agent,
            key=f"k{n}",
            endpoint="",
            request_hash="",
            status=201,
            response="{}",
            created_at=old,
        )
        for n in range(7)
    )
    assert idempotency.prune_expired(batch=3) == 7
    assert not IdempotencyRecord.objects.exists()


def test_the_record_and_the_message_commit_together(api, monkeypatch):
    """A failure after the message's INSERT (here: the record's own) rolls both back;
    the client's retry with the key then stores it once."""
    key = _key()
    monkeypatch.setattr(idempotency, "_RECORD", "SELECT 1/0")
    failed = api.post(INBOUND, _inbound(), headers=key)
    assert (failed.status, failed.error) == (500, "server_error")
    assert _rows() == (0, 0, 0, 0)
    monkeypatch.undo()
    assert api.post(INBOUND, _inbound(), headers=key).status == 201
    assert api.post(INBOUND, _inbound(), headers=key).headers[REPLAYED] == "true"
    assert _rows() == (1, 1, 1, 1)


def test_without_the_header_nothing_touches_the_records_and_with_it_one_insert(client, token):
    """The no-key path runs exactly as before; the first request with a key adds the
    record's INSERT (and the savepoint of the service's nested transaction)."""
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    def post(text, **headers):
        with CaptureQueriesContext(connection) as queries:
            response = client.post(
                "/api/v1/messages/inbound",
                _inbound(text),
                content_type="application/json",
                **auth,
                **headers,
            )
        assert response.status_code == 201
        return [q["sql"] for q in queries.captured_queries]

    post("warm-up (the token)")
    plain = post("plain")
    keyed = post("keyed", HTTP_IDEMPOTENCY_KEY="k-1")
    assert not [sql for sql in plain if "idempotency" in sql]
    assert [sql.split()[0] for sql in keyed if "idempotency" in sql] == ["INSERT"]
    extra = [sql.split()[0] for sql in keyed if "idempotency" not in sql]
    assert len(extra) - len(plain) == 2  # SAVEPOINT and RELEASE
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["k-1"]


def test_one_key_sent_at_once_with_different_bodies_does_one_of_them(api):
    """Different contacts: nothing serialises the work, so every request does its own
    and they meet at the key's unique index; the first to commit wins, the others
    wait for it, roll back and are told the key was used for another request."""
    key = _key()
    calls = [
        lambda n=n: api.post(INBOUND, _inbound(f"#{n}", external_id=f"+3370{n}"), headers=key)
        for n in range(6)
    ]
    results, errors = run_together(calls)
    assert errors == [None] * 6
    assert sorted(r.status for r in results) == [201] + [422] * 5
    assert {r.error for r in results if r.status == 422} == {"idempotency_key_reused"}
    assert Message.objects.count() == 1
    assert Contact.objects.count() == 1
    assert IdempotencyRecord.objects.count() == 1


def test_the_openapi_schema_documents_the_header_on_the_creating_posts(agent_client):
    schema = agent_client.get("/api/v1/openapi.json").json()
    documented = sorted(
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))
    )
    assert documented == [
        "POST /api/v1/broadcasts",
        "POST /api/v1/contacts",
        "POST /api/v1/conversations/{conversation_id}/notes",
        "POST /api/v1/conversations/{conversation_id}/reply",
        "POST /api/v1/flows/{flow_id}/start",
        "POST /api/v1/messages/inbound",
    ]
    assert "Idempotency-Key" in schema["info"]["description"]
