import hashlib
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from connectors.models import ApiToken
from connectors.tokens import token_revoke
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_a_valid_token_is_accepted_and_its_use_recorded(api, agent):
    response = api.get("/conversations")
    assert response.status == 200
    assert ApiToken.objects.get(user=agent).last_used_at is not None


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no token at all
        {"Authorization": "Bearer prl_not-a-real-token"},
        {"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "wrong", "basic-scheme", "empty"],
)
def test_no_token_or_a_wrong_one_is_401_json(api, headers):
    response = api.get("/conversations", token=None, headers=headers)
    assert response.status == 401
    assert response.body["error"] == "unauthorized"
    assert "Bearer" in response.body["detail"]
    assert response.headers.get("WWW-Authenticate") == "Bearer"


def test_every_endpoint_needs_the_token(api):
    calls = [
        ("POST", "/contacts", {"channel": "web", "external_id": "x"}),
        ("POST", "/messages/inbound", {"channel": "web", "external_id": "x", "text": "hi"}),
        ("GET", "/conversations/1", None),
        ("POST", "/conversations/1/reply", {"text": "hi"}),
        ("POST", "/conversations/1/close", None),
        ("POST", "/conversations/1/archive", None),
        ("POST", "/conversations/1/unarchive", None),
        ("POST", "/conversations/1/tags", {"name": "vip"}),
        ("DELETE", "/conversations/1/tags/vip", None),
        ("GET", "/messages/1/delivery", None),
    ]
    for method, path, body in calls:
        response = api.request(method, path, body, token=None)
        assert (method, path, response.status) == (method, path, 401)
    assert get_user_model().objects.count() == 1  # nothing was created on the way


def test_a_revoked_token_is_refused(api, token):
    token_revoke(token=ApiToken.objects.get())
    response = api.get("/conversations")
    assert response.status == 401
    assert response.error == "unauthorized"


def test_the_token_of_an_inactive_user_is_refused(api, agent):
    agent.is_active = False
    agent.save(update_fields=["is_active"])
    assert api.get("/conversations").status == 401


def test_the_token_is_stored_hashed(token):
    stored = ApiToken.objects.get()
    assert stored.digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {stored.digest, stored.prefix, stored.name}
    assert token.startswith(stored.prefix)


def test_create_api_token_prints_a_working_token(live_server):
    from tests.api.conftest import ApiClient

    UserFactory(username="integrator")
    out = StringIO()
    call_command("create_api_token", "integrator", stdout=out)
    secret = out.getvalue().strip()
    assert secret.startswith("prl_") and len(secret) > 40
    response = ApiClient(live_server.url, secret).post(
        "/messages/inbound", {"channel": "sms", "external_id": "+331234", "text": "Hello"}
    )
    assert response.status == 201
    assert ApiToken.objects.get(user__username="integrator").last_used_at is not None


def test_create_api_token_for_an_unknown_user_fails_clearly(db):
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("create_api_token", "ghost")
    assert not ApiToken.objects.exists()


def test_the_admin_shows_a_new_token_once_and_stores_only_its_hash(staff_client, agent):
    response = staff_client.post(
        "/admin/connectors/apitoken/add/", {"user": agent.pk, "name": "CRM"}, follow=True
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(user=agent)
    shown = [str(m) for m in response.context["messages"] if "will not be shown" in str(m)]
    assert len(shown) == 1
    secret = shown[0].split(": ", 1)[1].split(" ")[0]
    assert secret.startswith("prl_") and len(secret) > 40
    assert hashlib.sha256(secret.encode()).hexdigest() == token.digest
    # The change page never shows it again.
    page = staff_client.get(f"/admin/connectors/apitoken/{token.pk}/change/")
    assert secret not in page.content.decode()
    assert token.prefix in page.content.decode()


def test_the_admin_revokes_tokens(staff_client, agent, token):
    stored = ApiToken.objects.get(user=agent)
    response = staff_client.post(
        "/admin/connectors/apitoken/",
        {"action": "revoke", "_selected_action": [stored.pk]},
        follow=True,
    )
    assert response.status_code == 200
    stored.refresh_from_db()
    assert stored.revoked_at is not None


# --- the per-process token cache (connectors/tokens.py) --------------------------------


def _token_queries(client, token) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/conversations", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (200, 401)
    if response.status_code == 401:
        return -1
    return sum("connectors_apitoken" in q["sql"] for q in queries.captured_queries)


def test_an_accepted_token_is_not_looked_up_again(client, token):
    assert _token_queries(client, token) == 2  # looked up; its first use recorded
    assert _token_queries(client, token) == 0
    assert _token_queries(client, token) == 0


def test_a_token_revoked_in_this_process_is_refused_at_once(client, token):
    assert _token_queries(client, token) >= 0
    token_revoke(token=ApiToken.objects.get())
    assert _token_queries(client, token) == -1


def test_a_deactivated_user_is_refused_at_once(client, token, agent):
    assert _token_queries(client, token) >= 0
    agent.is_active = False
    agent.save(update_fields=["is_active"])
    assert _token_queries(client, token) == -1


def test_a_token_revoked_elsewhere_is_refused_within_the_cache_delay(client, token, monkeypatch):
    from django.utils import timezone

    from connectors import tokens

    now = [1000.0]
    monkeypatch.setattr(tokens.accepted, "clock", lambda: now[0])
    assert _token_queries(client, token) >= 0
    # As another process would: no signal reaches this one.
    ApiToken.objects.update(revoked_at=timezone.now())
    now[0] += tokens.TOKEN_CACHE_SECONDS - 0.5
    assert _token_queries(client, token) == 0  # still trusted, for a few seconds at most
    now[0] += 0.5
    assert _token_queries(client, token) == -1


def test_an_unknown_token_is_looked_up_every_time(client, token):
    assert _token_queries(client, "prl_unknown") == -1
    assert _token_queries(client, "prl_unknown") == -1
    assert _token_queries(client, token) >= 0
