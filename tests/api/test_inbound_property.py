"""Property: whatever JSON (or not-JSON) a client sends to the inbound endpoint,
the answer is 201 or a 4xx in the error shape, never a 5xx, and a refused body
writes nothing at all."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conversations.models import Contact, Conversation, Message, StatusChange

pytestmark = pytest.mark.django_db

FIELDS = ("channel", "external_id", "text", "name")

# Text that includes what breaks naive code: NUL, lone surrogates, RTL marks,
# emoji, very long strings, whitespace only.
nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec=None), max_size=20),
    st.sampled_from(["\x00", "\ud800", "a\udfffb", "\u202e", "  \n\t ", "🎉" * 3, "x" * 10_001]),
    st.from_regex(r"[a-z0-9][a-z0-9_-]{0,40}", fullmatch=True),
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), nasty_text
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)
# Mostly bodies shaped like the real one, with any field missing or wrong.
inbound_like = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=8),
    st.one_of(nasty_text, json_values),
    max_size=6,
)
bodies = st.one_of(
    inbound_like.map(lambda body: json.dumps(body).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=40),
)


def _rows() -> tuple[int, int, int, int]:
    return (
        Contact.objects.count(),
        Conversation.objects.count(),
        Message.objects.count(),
        StatusChange.objects.count(),
    )


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=bodies)
def test_inbound_answers_201_or_4xx_and_never_half_writes(api, raw):
    before = _rows()
    response = api.post("/messages/inbound", raw=raw)
    assert response.status == 201 or 400 <= response.status < 500, response.body
    if response.status != 201:
        assert set(response.body) == {"error", "detail"}
        assert _rows() == before
        return
    message = Message.objects.select_related("conversation").get(pk=response.body["message_id"])
    assert message.conversation_id == response.body["conversation_id"]
    assert message.conversation.status == response.body["status"]
    contacts, conversations, messages, changes = _rows()
    assert messages == before[2] + 1
    assert contacts - before[0] == int(response.body["contact_created"])
    assert conversations - before[1] in (0, 1)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    channel=st.from_regex(r"[a-z][a-z0-9_-]{0,20}", fullmatch=True),
    external_id=st.text(min_size=1, max_size=30).filter(lambda s: s.strip() and "\x00" not in s),
    text=st.text(min_size=1, max_size=200).filter(lambda s: s.strip() and "\x00" not in s),
)
def test_well_formed_inbound_is_always_stored_as_written(api, channel, external_id, text):
    response = api.post(
        "/messages/inbound", {"channel": channel, "external_id": external_id, "text": text}
    )
    assert response.status == 201, response.body
    message = Message.objects.get(pk=response.body["message_id"])
    assert message.text == text.strip()
    assert message.conversation.contact.external_id == external_id.strip()


query_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["\x00", "%00", "\u202e", "' OR 1=1 --", "WzEsMl0", "W10", "bnVsbA"]),
)


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    params=st.lists(
        st.tuples(
            st.sampled_from(
                ["status", "archived", "tag", "channel", "assignee", "q", "cursor", "limit"]
                + ["active_from", "active_to"]
            ),
            query_text,
        ),
        max_size=4,
    )
)
def test_any_list_query_answers_200_or_422(api, params):
    from urllib.parse import urlencode

    response = api.get("/conversations?" + urlencode(params))
    assert response.status in (200, 422), response.body
    if response.status == 422:
        assert set(response.body) == {"error", "detail"}
