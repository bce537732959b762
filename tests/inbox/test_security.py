"""Login everywhere, CSRF on every POST (as a browser enforces it)."""

import pytest
from django.test import Client

from conversations.transitions import Status
from tests.factories import TagFactory, conversation_in

from .conftest import csrf_token, hx, refresh

pytestmark = pytest.mark.django_db

POSTS = [
    ("reply", {"text": "Hello"}),
    ("close", {}),
    ("assign", {"assignee": ""}),
    ("tags/add", {"name": "vip"}),
    ("tags/remove", {"name": "vip"}),
]


def posts_for(conversation):
    closed = conversation_in(Status.CLOSED)
    archived = conversation_in(Status.CLOSED, archived=True)
    yield from ((f"/inbox/c/{conversation.pk}/{a}/", d) for a, d in POSTS)
    yield f"/inbox/c/{closed.pk}/archive/", {}
    yield f"/inbox/c/{archived.pk}/unarchive/", {}
    yield "/inbox/bulk/", {"action": "close", "ids": [conversation.pk]}


def test_every_post_without_a_csrf_token_is_forbidden_and_changes_nothing(csrf_client):
    conversation = conversation_in(Status.NEW, tags=[TagFactory(name="vip")])
    before = refresh(conversation).updated_at
    for url, data in posts_for(conversation):
        response = csrf_client.post(url, data, headers=hx())
        assert response.status_code == 403, url
    conversation = refresh(conversation)
    assert conversation.updated_at == before
    assert conversation.status == Status.NEW


def test_the_token_htmx_sends_in_its_header_is_accepted(csrf_client):
    conversation = conversation_in(Status.NEW, tags=[TagFactory(name="vip")])
    token = csrf_token(csrf_client)
    for url, data in posts_for(conversation):
        response = csrf_client.post(url, data, headers=hx(**{"X-CSRFToken": token}))
        assert response.status_code == 200, url
    assert refresh(conversation).status == Status.CLOSED


def test_the_page_hands_the_token_to_htmx(csrf_client):
    response = csrf_client.get("/inbox/")
    token = response.context["csrf_token"]
    assert f'hx-headers=\'{{"X-CSRFToken": "{token}"}}\'' in response.text


def test_plain_forms_carry_the_token(csrf_client):
    conversation = conversation_in(Status.NEW)
    token = csrf_token(csrf_client, f"/inbox/c/{conversation.pk}/")
    response = csrf_client.post(
        f"/inbox/c/{conversation.pk}/close/", {"csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    assert refresh(conversation).status == Status.CLOSED


def test_anonymous_users_cannot_read_or_act(client):
    conversation = conversation_in(Status.NEW)
    for url in (
        f"/inbox/c/{conversation.pk}/",
        f"/contacts/{conversation.contact.pk}/",
        "/inbox/",
        "/inbox/poll/",
    ):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next="), url
    for url, data in posts_for(conversation):
        response = client.post(url, data)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/"), url
    assert refresh(conversation).status == Status.NEW


def test_anonymous_csrf_checked_client_also_gets_no_data(db):
    client = Client(enforce_csrf_checks=True)
    conversation = conversation_in(Status.NEW)
    response = client.get(f"/inbox/c/{conversation.pk}/", headers=hx())
    assert response.status_code == 401
    assert response["HX-Redirect"].startswith("/login/?next=")
    assert conversation.contact.display_name not in response.text
