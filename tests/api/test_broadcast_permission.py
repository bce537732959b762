"""#15: broadcasting needs a permission through the API too (real HTTP)."""

import pytest

from connectors import tokens
from connectors.tokens import token_create
from flows.models import Broadcast
from tests.api.conftest import ApiClient
from tests.factories import ContactFactory, StaffFactory, grant_broadcast
from tests.flows.conftest import make_flow

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_plain_agents_token_is_refused_with_403_and_a_code(api, agent):
    flow = make_flow(("send_message", "Hello"))
    ContactFactory()
    refused = api.post("/broadcasts", {"flow_id": flow.pk, "segment": "all"})
    assert refused.status == 403
    assert refused.error == "broadcast_not_permitted"
    assert "permission" in refused.body["detail"]
    assert not Broadcast.objects.exists()

    grant_broadcast(agent)
    tokens.forget_tokens()  # a token's user is trusted for TOKEN_CACHE_SECONDS
    assert api.post("/broadcasts", {"flow_id": flow.pk, "segment": "all"}).status == 201


def test_a_staff_token_may_broadcast_without_a_grant(live_server):
    staff = StaffFactory(username="root", is_superuser=False)
    api = ApiClient(live_server.url, token_create(user=staff, name="t")[1])
    flow = make_flow(("send_message", "Hello"))
    assert api.post("/broadcasts", {"flow_id": flow.pk, "segment": "all"}).status == 201
