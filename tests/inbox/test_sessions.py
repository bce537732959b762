"""Sessions that read their user with them (inbox.sessions): a page reads both in one
query, and every check Django makes on a session's user still holds."""

from datetime import timedelta

import pytest
from django.contrib.auth import SESSION_KEY
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from conversations.tasks import housekeeping
from inbox.models import AgentSession
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a long enough password 1"


@pytest.fixture
def logged_in(agent):
    """A client logged in through the login form, as a browser is."""
    agent.set_password(PASSWORD)
    agent.save()
    client = Client()
    response = client.post("/login/", {"username": agent.username, "password": PASSWORD})
    assert response.status_code == 302
    return client


def test_the_session_row_names_its_user(logged_in, agent):
    (session,) = AgentSession.objects.all()
    assert session.user_id == agent.pk
    assert session.get_decoded()[SESSION_KEY] == str(agent.pk)


def test_a_page_reads_the_session_and_its_user_in_one_query(logged_in, agent):
    with CaptureQueriesContext(connection) as queries:
        response = logged_in.get("/inbox/")
    assert response.status_code == 200
    assert response.context["user"] == agent
    sql = [q["sql"] for q in queries]
    sessions = [q for q in sql if "inbox_agentsession" in q]
    assert len(sessions) == 1
    assert "JOIN auth_user" in sessions[0]
    # Django's own two reads are gone: the session by its key, the user by its id.
    assert not [q for q in sql if 'WHERE "auth_user"."id" =' in q]
    assert not [q for q in sql if "django_session" in q]


def test_a_changed_password_ends_the_other_sessions(logged_in, agent):
    agent.set_password("another long password 2")
    agent.save()
    response = logged_in.get("/inbox/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert not AgentSession.objects.exists()  # flushed, as Django does


def test_a_deactivated_agent_is_logged_out_at_once(logged_in, agent):
    agent.is_active = False
    agent.save()
    assert logged_in.get("/inbox/").status_code == 302


def test_a_deleted_agent_is_logged_out(logged_in, agent):
    agent.delete()
    assert logged_in.get("/inbox/").status_code == 302


def test_logging_out_deletes_the_row_and_the_cookie_no_longer_works(logged_in):
    cookie = logged_in.cookies["sessionid"].value
    logged_in.post("/logout/")
    assert not AgentSession.objects.exists()
    stale = Client()
    stale.cookies["sessionid"] = cookie
    assert stale.get("/inbox/").status_code == 302


def test_a_session_of_a_backend_no_longer_configured_is_anonymous(logged_in):
    with override_settings(AUTHENTICATION_BACKENDS=["axes.backends.AxesStandaloneBackend"]):
        assert logged_in.get("/inbox/").status_code == 302


def test_a_session_signed_under_the_previous_secret_survives_its_rotation(agent, settings):
    """Django's own path (the fallback secret): the session is kept, its key cycled."""
    settings.SECRET_KEY = "the old secret, long enough to be a real one: 0123456789"
    client = Client()
    client.force_login(agent)
    before = client.cookies["sessionid"].value
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "the new secret, long enough to be a real one: 9876543210"
    response = client.get("/inbox/")
    assert response.status_code == 200
    assert client.cookies["sessionid"].value != before


def test_an_unknown_cookie_is_anonymous_and_reads_no_user():
    client = Client()
    client.cookies["sessionid"] = "x" * 32
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/inbox/").status_code == 302
    assert len(queries) == 1


def test_another_agents_row_is_never_taken(logged_in, agent):
    """The id in the session's data decides; a row naming someone else (never written
    by the store) falls back to Django's path, which reads the data's user."""
    other = UserFactory(username="mallory")
    AgentSession.objects.update(user=other)
    response = logged_in.get("/inbox/")
    assert response.status_code == 200
    assert response.context["user"] == agent


def test_housekeeping_deletes_expired_sessions_and_keeps_live_ones(logged_in):
    live = AgentSession.objects.get()
    expired = [
        AgentSession.objects.create(
            session_key=f"expired{n:032d}", session_data="", expire_date=timezone.now()
        )
        for n in range(3)
    ]
    AgentSession.objects.filter(pk__in=[s.pk for s in expired]).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )

    assert housekeeping.call()["sessions_expired"] == 3

    assert list(AgentSession.objects.values_list("pk", flat=True)) == [live.pk]
    assert logged_in.get("/inbox/").status_code == 200
