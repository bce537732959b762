"""Optional signed visitor identity (issue 12.2): a site passes its logged-in
customer to the chat with an identifier and its HMAC-SHA256 under the channel's
secret. Valid: the identifier is the contact's external id and the name goes through.
Invalid: refused with a sentence, nothing written."""

import pytest
from django.test import Client

from connectors.identity import identity_hash
from connectors.models import Channel, ChannelKind
from conversations.models import Contact

pytestmark = pytest.mark.django_db
SECRET = "s3cret-of-the-shop"


@pytest.fixture
def shop():
    return Channel.objects.create(slug="shop", kind=ChannelKind.WEB, identity_secret=SECRET)


def _link(identifier, hash_, name="Customer Ann"):
    return {"identifier": identifier, "identifier_hash": hash_, "name": name}


def test_a_valid_signature_makes_the_identifier_the_contact(shop):
    client = Client()
    page = client.get("/chat/shop/", _link("cust-42", identity_hash(SECRET, "cust-42")))
    assert page.status_code == 200
    assert "You are chatting as" in page.content.decode()
    assert client.post("/chat/shop/send/", {"text": "Hi", "name": "Mallory"}).status_code == 302
    contact = Contact.objects.get()
    assert (contact.channel, contact.external_id) == ("shop", "cust-42")
    assert contact.name == "Customer Ann"  # the signed identity's name, not the form's
    # A second device of the same customer writes into the same contact.
    other = Client()
    other.get("/chat/shop/", _link("cust-42", identity_hash(SECRET, "cust-42")))
    other.post("/chat/shop/send/", {"text": "From my phone"})
    assert Contact.objects.count() == 1
    assert contact.conversations.get().messages.count() == 2


def test_the_hash_is_accepted_in_upper_case_and_on_the_send_form(shop):
    client = Client()
    client.get("/chat/shop/")
    form = {"text": "Hi", **_link("cust-7", identity_hash(SECRET, "cust-7").upper())}
    assert client.post("/chat/shop/send/", form).status_code == 302
    assert Contact.objects.get().external_id == "cust-7"


@pytest.mark.parametrize(
    "link",
    [
        _link("cust-42", identity_hash(SECRET, "cust-43")),
        _link("cust-42", identity_hash("another secret", "cust-42")),
        _link("cust-42", ""),
        {"identifier": "cust-42"},
        {"identifier_hash": identity_hash(SECRET, "cust-42")},
    ],
)
def test_a_bad_signature_is_refused_with_a_sentence(shop, link):
    client = Client()
    page = client.get("/chat/shop/", link)
    assert page.status_code == 403
    html = page.content.decode()
    assert "could not be verified" in html or "identity is not valid" in html
    assert "parley_chat_shop" not in page.cookies
    sent = client.post("/chat/shop/send/", {"text": "Hi", **link})
    assert sent.status_code == 403
    assert not Contact.objects.exists()


def test_a_channel_without_a_secret_refuses_identities(client):
    link = _link("cust-42", identity_hash("", "cust-42"))
    page = client.get("/chat/web/", link)
    assert page.status_code == 403
    assert "does not accept signed identities" in page.content.decode()
    assert not Contact.objects.exists()


def test_a_forged_identity_cookie_is_ignored(shop):
    client = Client()
    client.cookies["parley_chat_shop"] = '{"id": "cust-42", "name": "x"}'
    client.post("/chat/shop/send/", {"text": "Hi"})
    assert Contact.objects.get().external_id != "cust-42"
