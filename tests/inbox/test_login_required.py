"""One login check for the agents' pages, the inbox's and the flows' (issue 11.3):
an ordinary request goes to the login page; an htmx request gets 401 with
``HX-Redirect`` (htmx then loads the login page whole, instead of swapping it into
the fragment it asked for), coming back to the page the browser showed."""

import pytest
from django.urls import reverse

from conversations.transitions import Status
from flows import views as flow_views
from inbox import views as inbox_views
from tests.factories import UserFactory, conversation_in

from .conftest import hx

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation():
    return conversation_in(Status.NEW)


def urls(conversation) -> list[tuple[str, str]]:
    pk = conversation.pk
    return [
        ("get", "/inbox/"),
        ("get", "/inbox/poll/"),
        ("get", f"/inbox/c/{pk}/"),
        ("get", f"/contacts/{conversation.contact.pk}/"),
        ("post", f"/inbox/c/{pk}/close/"),
        ("post", "/inbox/bulk/"),
        ("get", reverse("flows:index")),
        ("get", reverse("flows:start_flow", args=[pk])),
        ("post", reverse("flows:start_flow", args=[pk])),
        ("post", reverse("flows:broadcast_create")),
    ]


def test_both_apps_use_the_one_decorator():
    from flows.decorators import agent_required

    assert inbox_views.agent_required is agent_required
    assert flow_views.agent_required is agent_required
    assert not hasattr(flow_views, "login_required")


@pytest.mark.parametrize("who", ["anonymous", "inactive"])
def test_htmx_requests_get_401_and_a_redirect_for_the_whole_page(client, conversation, who):
    if who == "inactive":
        client.force_login(UserFactory(is_active=False))
    shown = "http://testserver/inbox/?status=new&q=a%20b"
    for method, url in urls(conversation):
        response = getattr(client, method)(url, headers=hx(**{"HX-Current-URL": shown}))
        assert response.status_code == 401, url
        assert response["HX-Redirect"] == "/login/?next=%2Finbox%2F%3Fstatus%3Dnew%26q%3Da%2520b"
        assert "<form" not in response.text and "<html" not in response.text
    assert conversation.status == Status.NEW


def test_an_htmx_request_from_another_site_comes_back_to_the_fragment(client, conversation):
    response = client.get("/inbox/", headers=hx(**{"HX-Current-URL": "https://evil.example/x"}))
    assert response.status_code == 401
    assert response["HX-Redirect"] == "/login/?next=%2Finbox%2F"


def test_ordinary_requests_get_the_usual_login_redirect(client, conversation):
    for method, url in urls(conversation):
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next="), url


def test_a_get_comes_back_to_itself(client):
    response = client.get("/inbox/?archived=yes")
    assert response["Location"] == "/login/?next=/inbox/%3Farchived%3Dyes"


def test_a_post_comes_back_to_the_page_its_form_was_on(client, conversation):
    pane = f"/inbox/c/{conversation.pk}/?status=new"
    response = client.post(
        f"/inbox/c/{conversation.pk}/close/", headers={"Referer": f"http://testserver{pane}"}
    )
    assert response["Location"] == f"/login/?next=/inbox/c/{conversation.pk}/%3Fstatus%3Dnew"
    # Not to a page of another site, nor to the action (a GET there is refused).
    response = client.post(
        f"/inbox/c/{conversation.pk}/close/", headers={"Referer": "https://evil.example/"}
    )
    # (The landing page: Mine for an agent with assigned conversations, see test_views.)
    assert response["Location"] == "/login/?next=/"
    response = client.post(f"/inbox/c/{conversation.pk}/close/")
    assert response["Location"] == "/login/?next=/"


def test_an_htmx_history_restore_gets_the_usual_redirect(client):
    response = client.get("/inbox/", headers=hx(**{"HX-History-Restore-Request": "true"}))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_agents_get_the_page(agent_client, conversation):
    assert agent_client.get("/inbox/", headers=hx()).status_code == 200
    assert agent_client.get(reverse("flows:index")).status_code == 200
