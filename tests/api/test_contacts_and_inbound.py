import pytest

from conversations.exceptions import ContactExists
from conversations.models import Contact, Conversation, Message, StatusChange
from conversations.transitions import Status
from tests.factories import ContactFactory, conversation_in

pytestmark = pytest.mark.django_db


def _rows() -> tuple[int, int, int, int]:
    return (
        Contact.objects.count(),
        Conversation.objects.count(),
        Message.objects.count(),
        StatusChange.objects.count(),
    )


def test_create_a_contact_with_its_not_contacted_conversation(api, agent):
    response = api.post(
        "/contacts",
        {"channel": "WhatsApp", "external_id": "+33612", "name": "Zoé", "attributes": {"vip": 1}},
    )
    assert response.status == 201
    contact = Contact.objects.get()
    assert response.body["contact"]["id"] == contact.pk
    assert response.body["contact"]["channel"] == "whatsapp"
    assert response.body["contact"]["attributes"] == {"vip": 1}
    conversation = contact.conversations.get()
    assert response.body["conversation"] == {"id": conversation.pk, "status": "not_contacted"}
    change = conversation.status_changes.get()
    assert (change.source, change.actor) == ("api", agent)


def test_a_duplicate_contact_is_409_and_changes_nothing(api):
    ContactFactory(channel="web", external_id="v-1")
    before = _rows()
    response = api.post("/contacts", {"channel": "web", "external_id": "v-1"})
    assert response.status == 409
    assert response.body == ContactExists().as_dict()
    assert _rows() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"external_id": "x"}, "channel"),
        ({"channel": "web"}, "external_id"),
        ({"channel": "not a slug!", "external_id": "x"}, "channel"),
        ({"channel": "web", "external_id": "   "}, "External id"),
        ({"channel": "web", "external_id": "x", "attributes": ["a"]}, "attributes"),
        ({"channel": "web", "external_id": "x", "attributes": {"k": "\u0000"}}, "NUL"),
        ({"channel": 7, "external_id": "x"}, "channel"),
    ],
)
def test_malformed_contacts_are_422_and_change_nothing(api, body, field):
    response = api.post("/contacts", body)
    assert response.status == 422
    assert response.error in ("invalid_request", "invalid_input")
    assert field in response.body["detail"]
    assert _rows() == (0, 0, 0, 0)


def test_not_json_at_all_is_422(api):
    response = api.post("/contacts", raw=b"{'channel': web")
    assert response.status == 422
    assert response.body == {
        "error": "invalid_request",
        "detail": "The request body is not valid JSON.",
    }


def test_inbound_creates_the_contact_and_a_new_conversation(api):
    response = api.post(
        "/messages/inbound",
        {"channel": "web", "external_id": "visitor-9", "text": "Hello?", "name": "Ann"},
    )
    assert response.status == 201
    conversation = Conversation.objects.get()
    message = Message.objects.get()
    assert response.body == {
        "message_id": message.pk,
        "contact_id": conversation.contact_id,
        "contact_created": True,
        "conversation_id": conversation.pk,
        "status": "new",
    }
    assert conversation.contact.name == "Ann"
    assert message.text == "Hello?" and message.direction == "inbound"


def test_inbound_keeps_an_in_progress_conversation_in_progress(api):
    conversation = conversation_in(Status.IN_PROGRESS)
    contact = conversation.contact
    response = api.post(
        "/messages/inbound",
        {"channel": contact.channel, "external_id": contact.external_id, "text": "Thanks"},
    )
    assert response.status == 201
    assert response.body["contact_created"] is False
    assert response.body["conversation_id"] == conversation.pk
    assert response.body["status"] == "in_progress"


def test_inbound_after_close_opens_a_new_conversation_and_leaves_history(api):
    closed = conversation_in(Status.CLOSED)
    contact = closed.contact
    response = api.post(
        "/messages/inbound",
        {"channel": contact.channel, "external_id": contact.external_id, "text": "Again me"},
    )
    assert response.status == 201
    assert response.body["conversation_id"] != closed.pk
    assert response.body["status"] == "new"
    closed.refresh_from_db()
    assert closed.status == Status.CLOSED
    assert closed.messages.count() == 1


@pytest.mark.parametrize(
    "body",
    [
        {"channel": "web", "external_id": "x", "text": ""},
        {"channel": "web", "external_id": "x", "text": "x" * 10_001},
        {"channel": "web", "external_id": "x", "text": "nul \u0000 byte"},
        {"channel": "web", "external_id": "x"},
        {"channel": "web", "external_id": "x", "text": ["a list"]},
        {"channel": "", "external_id": "x", "text": "hi"},
    ],
    ids=["empty", "too-long", "nul", "missing", "not-text", "no-channel"],
)
def test_malformed_inbound_is_422_and_changes_nothing(api, body):
    response = api.post("/messages/inbound", body)
    assert response.status == 422
    assert set(response.body) == {"error", "detail"}
    assert _rows() == (0, 0, 0, 0)
