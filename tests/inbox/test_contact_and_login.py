"""The contact page (its conversation history, newest first) and the login page."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations import services
from conversations.transitions import Status
from tests.factories import PASSWORD, ContactFactory, TagFactory, UserFactory, conversation_in

from .conftest import receive

pytestmark = pytest.mark.django_db


def test_contact_page_lists_the_history_newest_first_with_links(agent_client, agent):
    contact = ContactFactory(name="Ada Lovelace", attributes={"plan": "pro"})
    first = conversation_in(Status.CLOSED, contact=contact, tags=[TagFactory(name="vip")])
    second = receive(first, "Back again").conversation  # a new conversation opens
    services.conversation_close(conversation=second)
    third = receive(first, "And again").conversation

    response = agent_client.get(f"/contacts/{contact.pk}/")

    assert response.status_code == 200
    ids = [
        int(pk) for pk in re.findall(r'href="/inbox/c/(\d+)/" class="history-link"', response.text)
    ]
    assert ids == [third.pk, second.pk, first.pk]
    assert "Ada Lovelace" in response.text
    assert "plan" in response.text and "pro" in response.text
    assert "Conversation history" in response.text


def test_contact_page_queries_do_not_grow_with_the_history(agent_client):
    contact = ContactFactory()
    conversation = conversation_in(Status.CLOSED, contact=contact, tags=[TagFactory()])
    agent_client.get(f"/contacts/{contact.pk}/")  # the per-process memories (channels) filled
    with CaptureQueriesContext(connection) as one:
        agent_client.get(f"/contacts/{contact.pk}/")
    for _ in range(5):
        conversation = receive(conversation, "Again").conversation
        services.conversation_tag_add(conversation=conversation, tag="again")
        services.conversation_close(conversation=conversation)
    with CaptureQueriesContext(connection) as six:
        response = agent_client.get(f"/contacts/{contact.pk}/")
    assert response.text.count('class="history-link"') == 6
    assert len(one) == len(six)


def test_missing_contact_is_404(agent_client):
    assert agent_client.get("/contacts/999999/").status_code == 404


def test_login_page_is_styled_and_logs_in(client):
    UserFactory(username="dora")
    page = client.get("/login/?next=/inbox/%3Fstatus%3Dnew")
    assert page.status_code == 200
    assert "Log in to the inbox" in page.text
    assert "css/app.css" in page.text

    wrong = client.post("/login/", {"username": "dora", "password": "nope", "next": "/inbox/"})
    assert wrong.status_code == 200
    assert 'class="notice notice-error" role="alert"' in wrong.text

    response = client.post(
        "/login/", {"username": "dora", "password": PASSWORD, "next": "/inbox/?status=new"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/inbox/?status=new"
    assert client.get("/inbox/?status=new").status_code == 200


def test_logout_is_a_post_from_the_top_bar(agent_client):
    page = agent_client.get("/inbox/")
    assert re.search(r'<form method="post" action="/logout/">', page.text)
    response = agent_client.post("/logout/")
    assert response.status_code == 302
    assert agent_client.get("/inbox/").status_code == 302
