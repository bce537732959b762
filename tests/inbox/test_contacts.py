"""#15: editing a contact from the pane, the contact search page, how visitors and
phone numbers are shown, and the inbox search by name words and phone digits."""

import html
import re

import pytest

from conversations import services
from conversations.models import Contact
from conversations.transitions import Status
from tests.factories import ContactFactory, conversation_in
from tests.inbox.conftest import csrf_token, hx, ids_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def open_conversation(agent):
    contact = ContactFactory(name="Dana Sato", attributes={"plan": "gold"})
    return conversation_in(Status.NEW, contact=contact)


def edit_url(conversation) -> str:
    return f"/inbox/c/{conversation.pk}/contact/"


# --- editing ------------------------------------------------------------------------


def test_the_pane_opens_the_contact_form_with_its_attributes_as_rows(
    agent_client, open_conversation
):
    pane = agent_client.get(f"/inbox/c/{open_conversation.pk}/", headers=hx("conversation-pane"))
    assert f'hx-get="{edit_url(open_conversation)}"' in pane.text

    form = agent_client.get(edit_url(open_conversation), headers=hx("conversation-pane"))
    assert form.status_code == 200
    assert 'id="conversation-pane"' in form.text
    assert 'name="attr_key"' in form.text and 'value="plan"' in form.text
    assert 'value="gold"' in form.text
    assert 'value="Dana Sato"' in form.text
    # Without htmx: the inbox page with the pane and the form open.
    page = agent_client.get(edit_url(open_conversation))
    assert page.status_code == 200 and "<html" in page.text and "Save contact" in page.text


def test_saving_renames_and_replaces_the_attributes(agent_client, open_conversation):
    data = {
        "name": "  Dana K. Sato ",
        "attr_key": ["plan", "", "city"],
        "attr_value": ["platinum", "", "Osaka"],
    }
    response = agent_client.post(edit_url(open_conversation), data, headers=hx("conversation-pane"))
    assert response.status_code == 200
    assert "Contact saved." in response.text
    assert "Dana K. Sato" in response.text
    assert "conversationChanged" in response["HX-Trigger"]
    contact = Contact.objects.get(pk=open_conversation.contact_id)
    assert contact.name == "Dana K. Sato"
    assert contact.attributes == {"plan": "platinum", "city": "Osaka"}


@pytest.mark.parametrize(
    ("keys", "values", "error"),
    [
        (["plan", "plan"], ["a", "b"], "“plan” is there twice"),
        ([""], ["orphan"], "needs a name"),
        (["plan"], ["x" * 501], "too long"),
    ],
)
def test_a_bad_form_keeps_it_open_with_the_error_and_changes_nothing(
    agent_client, open_conversation, keys, values, error
):
    response = agent_client.post(
        edit_url(open_conversation),
        {"name": "Someone else", "attr_key": keys, "attr_value": values},
        headers=hx("conversation-pane"),
    )
    assert response.status_code == 200
    assert error in response.text
    assert "Save contact" in response.text  # the form is still open
    contact = Contact.objects.get(pk=open_conversation.contact_id)
    assert (contact.name, contact.attributes) == ("Dana Sato", {"plan": "gold"})


def test_the_edit_needs_the_csrf_token_and_a_login(csrf_client, client, open_conversation):
    url = edit_url(open_conversation)
    refused = csrf_client.post(url, {"name": "X"})
    assert refused.status_code == 403
    token = csrf_token(csrf_client)
    accepted = csrf_client.post(url, {"name": "X"}, headers={"X-CSRFToken": token})
    assert accepted.status_code == 302
    assert Contact.objects.get(pk=open_conversation.contact_id).name == "X"
    assert client.post(url, {"name": "Y"}).status_code == 302  # to the login page
    assert Contact.objects.get(pk=open_conversation.contact_id).name == "X"


def _drawn_form(agent_client, conversation) -> dict:
    """The form's fields as the pane drew them (the hidden ``seen`` included)."""
    text = agent_client.get(edit_url(conversation), headers=hx("conversation-pane")).text
    seen = re.search(r'name="seen" value="([^"]*)"', text).group(1)
    return {"seen": html.unescape(seen)}


def test_what_changed_meanwhile_elsewhere_stays_when_the_form_is_saved(
    agent_client, open_conversation
):
    form = _drawn_form(agent_client, open_conversation)
    # While the form is open, a flow stores the contact's answer, and another agent
    # changes the plan's neighbour.
    Contact.objects.filter(pk=open_conversation.contact_id).update(
        attributes={"plan": "gold", "email": "dana@example.com", "vip": 1}
    )
    response = agent_client.post(
        edit_url(open_conversation),
        form
        | {"name": "Dana Sato", "attr_key": ["plan", "city"], "attr_value": ["silver", "Kyoto"]},
        headers=hx("conversation-pane"),
    )
    assert "Contact saved." in response.text
    contact = Contact.objects.get(pk=open_conversation.contact_id)
    assert contact.name == "Dana Sato"
    assert contact.attributes == {
        "plan": "silver",
        "email": "dana@example.com",
        "vip": 1,
        "city": "Kyoto",
    }


def test_the_same_field_changed_meanwhile_is_refused_then_saved_knowingly(
    agent_client, open_conversation
):
    form = _drawn_form(agent_client, open_conversation)
    services.contact_update(
        contact=open_conversation.contact_id, name="Dana Sato-Ito", attributes={"plan": "bronze"}
    )
    mine = {"name": "Dana K. Sato", "attr_key": ["plan"], "attr_value": ["platinum"]}

    refused = agent_client.post(
        edit_url(open_conversation), form | mine, headers=hx("conversation-pane")
    )

    assert refused.status_code == 200
    assert "Changed a moment ago: the name is now “Dana Sato-Ito”; “plan” is now “bronze”." in (
        html.unescape(refused.text)
    )
    assert "Save contact" in refused.text and 'value="platinum"' in refused.text  # kept
    contact = Contact.objects.get(pk=open_conversation.contact_id)
    assert (contact.name, contact.attributes) == ("Dana Sato-Ito", {"plan": "bronze"})

    # The form now stands on the newest values: saving again keeps the editor's.
    seen = re.search(r'name="seen" value="([^"]*)"', refused.text).group(1)
    again = agent_client.post(
        edit_url(open_conversation),
        {"seen": html.unescape(seen)} | mine,
        headers=hx("conversation-pane"),
    )
    assert "Contact saved." in again.text
    contact.refresh_from_db()
    assert (contact.name, contact.attributes) == ("Dana K. Sato", {"plan": "platinum"})


def test_a_row_removed_by_the_editor_goes_unless_it_changed_meanwhile(
    agent_client, open_conversation
):
    form = _drawn_form(agent_client, open_conversation)
    response = agent_client.post(
        edit_url(open_conversation),
        form | {"name": "Dana Sato", "attr_key": [""], "attr_value": [""]},
        headers=hx("conversation-pane"),
    )
    assert "Contact saved." in response.text
    assert Contact.objects.get(pk=open_conversation.contact_id).attributes == {}


def test_a_tampered_seen_field_is_a_sentence_and_changes_nothing(agent_client, open_conversation):
    response = agent_client.post(
        edit_url(open_conversation),
        {"seen": "{not json", "name": "X", "attr_key": ["plan"], "attr_value": ["y"]},
        headers=hx("conversation-pane"),
    )
    assert response.status_code == 200
    assert "This form is out of date: open it again." in response.text
    contact = Contact.objects.get(pk=open_conversation.contact_id)
    assert (contact.name, contact.attributes) == ("Dana Sato", {"plan": "gold"})


# --- naming -------------------------------------------------------------------------


def test_an_unnamed_web_chat_visitor_is_visitor_and_its_id(agent_client):
    services.message_receive(channel="web", external_id="Zq3x-random-cookie-id", text="hi")
    contact = Contact.objects.get(external_id="Zq3x-random-cookie-id")
    assert contact.display_name == f"Visitor {contact.pk}"
    conversation = contact.conversations.get()
    listed = agent_client.get("/inbox/")
    assert f"Visitor {contact.pk}" in listed.text
    assert "Zq3x-random-cookie-id" not in listed.text
    pane = agent_client.get(f"/inbox/c/{conversation.pk}/", headers=hx("conversation-pane"))
    assert f'<h1 id="pane-title">Visitor {contact.pk}</h1>' in pane.text
    assert "Zq3x-random-cookie-id" not in pane.text
    # The contact's page and the contacts list: the name, never the cookie's id.
    page = agent_client.get(f"/contacts/{contact.pk}/")
    assert f"Visitor {contact.pk}" in page.text and "Zq3x-random-cookie-id" not in page.text
    everyone = agent_client.get("/contacts/")
    assert f"Visitor {contact.pk}" in everyone.text
    assert "Zq3x-random-cookie-id" not in everyone.text


def test_an_unnamed_contact_of_another_channel_is_its_external_id_with_a_neutral_avatar(
    agent_client,
):
    services.message_receive(channel="sms", external_id="+33 6 12 34 56 78", text="hi")
    contact = Contact.objects.get(channel="sms")
    assert contact.display_name == "+33 6 12 34 56 78"
    assert contact.initial == "#"
    page = agent_client.get(f"/contacts/{contact.pk}/")
    assert re.search(r'class="avatar avatar-xl" aria-hidden="true">#<', page.text)
    assert ContactFactory(name="élodie").initial == "É"


# --- searching ----------------------------------------------------------------------


@pytest.fixture
def people(agent):
    dana = ContactFactory(name="Dana Sato")
    phone = ContactFactory(channel="sms", external_id="+33 6 12 34 56 78", name="Pat")
    other = ContactFactory(name="Sato Industries Ltd")
    return dana, phone, other


def test_the_contact_search_finds_words_in_any_order_and_phone_digits(agent_client, people):
    dana, phone, other = people
    page = agent_client.get("/contacts/", {"q": "Sato Dana"})
    assert page.status_code == 200
    assert f'href="/contacts/{dana.pk}/"' in page.text
    assert f'href="/contacts/{other.pk}/"' not in page.text
    for term in ("0612345678"[1:], "612 34 56", "+336123"):
        found = agent_client.get("/contacts/", {"q": term}).text
        assert f'href="/contacts/{phone.pk}/"' in found, term
        assert f'href="/contacts/{dana.pk}/"' not in found, term
    by_id = agent_client.get("/contacts/", {"q": dana.external_id.upper()}).text
    assert f'href="/contacts/{dana.pk}/"' in by_id
    assert "No contact matches" in agent_client.get("/contacts/", {"q": "nobody"}).text


def test_the_contact_search_pages_by_keyset_and_is_in_the_top_bar(
    agent_client, people, django_assert_max_num_queries, monkeypatch
):
    from inbox import selectors

    monkeypatch.setattr(selectors, "CONTACT_PAGE_SIZE", 2)
    first = agent_client.get("/contacts/")
    assert 'href="/contacts/"' in first.text  # the top bar's link
    ids = [
        int(pk) for pk in re.findall(r'href="/contacts/(\d+)/" class="contact-link"', first.text)
    ]
    assert len(ids) == 2 and ids == sorted(ids, reverse=True)
    more = re.search(r'href="(/contacts/\?cursor=[^"]+)"', first.text).group(1)
    with django_assert_max_num_queries(4):
        second = agent_client.get(more.replace("&amp;", "&"))
    rest = [
        int(pk) for pk in re.findall(r'href="/contacts/(\d+)/" class="contact-link"', second.text)
    ]
    assert set(ids) | set(rest) == {c.pk for c in people}
    assert agent_client.get("/contacts/?cursor=garbage").status_code == 400


def test_the_inbox_search_matches_name_words_in_any_order_and_phone_digits(
    agent_client, agent, people
):
    dana, phone, other = people
    conversations = {c.pk: conversation_in(Status.NEW, contact=c).pk for c in people}
    found = ids_in(agent_client.get("/inbox/", {"q": "sato dana"}))
    assert found == [conversations[dana.pk]]
    found = ids_in(agent_client.get("/inbox/", {"q": "12 34 56"}))
    assert found == [conversations[phone.pk]]
    # Digits mixed with words are text, not a phone number.
    assert ids_in(agent_client.get("/inbox/", {"q": "room 1234"})) == []


def test_part_of_an_email_address_finds_its_contact_in_both_searches(agent_client, people):
    nadia = ContactFactory(channel="email", external_id="Nadia.59@Example.com", name="Nadia K")
    other = ContactFactory(channel="email", external_id="sam@elsewhere.org", name="Sam")
    conversation = conversation_in(Status.NEW, contact=nadia)
    for term in ("nadia.59", "@example.com", "EXAMPLE.COM", "nadia.59@example.com"):
        found = agent_client.get("/contacts/", {"q": term}).text
        assert f'href="/contacts/{nadia.pk}/"' in found, term
        assert f'href="/contacts/{other.pk}/"' not in found, term
        assert ids_in(agent_client.get("/inbox/", {"q": term})) == [conversation.pk], term
    # A plain word is still a name (or message) search, not a part of every id.
    assert f'href="/contacts/{nadia.pk}/"' not in agent_client.get("/contacts/", {"q": "59"}).text
