"""Issue 12.2: the anonymous web chat cannot flood the inbox. Limits per client
address and per visitor, on messages and on new conversations; a refusal is a 429
with a sentence the chat page shows, and writes nothing."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from connectors import ratelimit
from connectors.models import RateCounter
from connectors.ratelimit import Rate
from conversations import services
from conversations.models import Contact, Conversation, Message
from tests.factories import conversation_in

pytestmark = pytest.mark.django_db
FETCH = {"X-Requested-With": "fetch"}


def _send(client: Client, text="hello", **extra):
    return client.post("/chat/web/send/", {"text": text}, **extra)


def _limits(settings, **rates):
    settings.CHAT_LIMITS = {**settings.CHAT_LIMITS, **rates}


def test_a_client_without_the_cookie_opens_at_most_six_conversations(settings):
    # The flood of issue 12: every request a new visitor, from one address.
    statuses = [_send(Client(REMOTE_ADDR="203.0.113.5")).status_code for _ in range(30)]
    assert statuses == [302] * 6 + [429] * 24
    assert Contact.objects.count() == 6
    assert Conversation.objects.count() == 6


def test_the_refusal_is_a_429_with_a_sentence_the_page_shows(settings):
    _limits(settings, new_conversations_per_address="1/12h")
    assert _send(Client(REMOTE_ADDR="203.0.113.5")).status_code == 302
    response = _send(Client(REMOTE_ADDR="203.0.113.5"), "second flood")
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 12 * 3600
    html = response.content.decode()
    assert "Too many new conversations were started from your network" in html
    assert "second flood" in html  # the draft is kept
    fetched = _send(Client(REMOTE_ADDR="203.0.113.5"), headers=FETCH)
    assert fetched.status_code == 429
    assert "<html" not in fetched.content.decode()
    assert "Too many new conversations" in fetched.content.decode()
    assert Contact.objects.count() == 1


def test_another_address_is_not_affected(settings):
    _limits(settings, new_conversations_per_address="2/12h")
    for _ in range(3):
        _send(Client(REMOTE_ADDR="203.0.113.5"))
    assert _send(Client(REMOTE_ADDR="198.51.100.1")).status_code == 302
    assert Contact.objects.count() == 3


def test_messages_per_visitor(settings):
    _limits(settings, messages_per_visitor="3/1m")
    visitor = Client(REMOTE_ADDR="203.0.113.5")
    visitor.get("/chat/web/")
    assert [_send(visitor, f"m{n}").status_code for n in range(4)] == [302, 302, 302, 429]
    refused = _send(visitor, "too fast", headers=FETCH)
    assert refused.status_code == 429
    assert "sending messages too fast" in refused.content.decode()
    assert Message.objects.count() == 3
    # Another visitor at the same address still writes.
    other = Client(REMOTE_ADDR="203.0.113.5")
    other.get("/chat/web/")
    assert _send(other).status_code == 302


def test_messages_per_address_across_visitors(settings):
    _limits(settings, messages_per_address="4/1m", new_conversations_per_address="0/1h")
    statuses = []
    for _ in range(3):
        visitor = Client(REMOTE_ADDR="203.0.113.5")
        visitor.get("/chat/web/")
        statuses += [_send(visitor).status_code, _send(visitor).status_code]
    assert statuses == [302, 302, 302, 302, 429, 429]
    assert Message.objects.count() == 4


def test_new_conversations_per_visitor_count_conversations_reopened_after_close(settings, agent):
    _limits(settings, new_conversations_per_visitor="1/1h")
    visitor = Client(REMOTE_ADDR="203.0.113.5")
    visitor.get("/chat/web/")
    assert _send(visitor).status_code == 302
    assert _send(visitor).status_code == 302  # into the open conversation: not new
    services.conversation_close(conversation=Conversation.objects.get(), actor=agent)
    assert _send(visitor).status_code == 429  # would open a second one
    assert Conversation.objects.count() == 1


def test_the_limit_lifts_when_its_window_ends(settings):
    _limits(settings, new_conversations_per_address="1/12h")
    assert _send(Client(REMOTE_ADDR="203.0.113.5")).status_code == 302
    assert _send(Client(REMOTE_ADDR="203.0.113.5")).status_code == 429
    RateCounter.objects.update(window_ends_at=timezone.now() - timedelta(seconds=1))
    assert _send(Client(REMOTE_ADDR="203.0.113.5")).status_code == 302


def test_x_forwarded_for_is_ignored_unless_proxies_are_trusted(settings):
    _limits(settings, new_conversations_per_address="1/12h")
    spoofed = [
        _send(Client(REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")).status_code
        for n in range(3)
    ]
    assert spoofed == [302, 429, 429]


def test_behind_a_trusted_proxy_the_address_it_saw_counts(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    _limits(settings, new_conversations_per_address="1/12h")

    def via_proxy(forwarded: str):
        return _send(Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded))

    assert via_proxy("198.51.100.7").status_code == 302
    # A client writing its own X-Forwarded-For: the proxy appends the real address.
    assert via_proxy("1.2.3.4, 198.51.100.7").status_code == 429
    assert via_proxy("198.51.100.8").status_code == 302  # another client behind the proxy


def test_ipv6_clients_count_by_their_64(settings, rf):
    request = rf.get("/", REMOTE_ADDR="2001:db8:1:2:aaaa::1")
    assert ratelimit.client_address(request) == "2001:db8:1:2::/64"
    assert ratelimit.client_ip(request) == "2001:db8:1:2:aaaa::1"
    assert ratelimit.client_address(rf.get("/", REMOTE_ADDR="::ffff:192.0.2.1")) == "192.0.2.1"
    assert ratelimit.client_address(rf.get("/", REMOTE_ADDR="junk")) == "unknown"


def test_the_api_is_not_limited_by_the_chat(settings):
    _limits(settings, new_conversations_per_address="1/12h")
    for n in range(3):
        services.message_receive(channel="web", external_id=f"api-{n}", text="hi")
    assert conversation_in("new") is not None


@pytest.mark.parametrize(
    ("value", "limit", "seconds"),
    [("6/12h", 6, 43200), ("20/1m", 20, 60), ("20/m", 20, 60), (" 5 / 30s ", 5, 30)],
)
def test_rates_are_read_from_settings_text(value, limit, seconds):
    assert Rate.parse(value) == Rate(limit, seconds)


@pytest.mark.parametrize("value", ["", "six/h", "5/12", "5/1w", "-1/1m"])
def test_a_bad_rate_is_refused(value):
    with pytest.raises(ValueError, match="is not a rate"):
        Rate.parse(value)


def test_a_zero_limit_switches_the_check_off():
    assert ratelimit.hit("k", Rate(0, 60)).allowed
    assert not RateCounter.objects.exists()


@pytest.mark.parametrize("store", ["postgresql", "cache"])
def test_both_stores_count_within_a_window(settings, store):
    settings.RATE_LIMIT_STORE = store
    from django.core.cache import caches

    caches[settings.RATE_LIMIT_CACHE].clear()
    window = 30 * 86400  # the cache's windows are aligned: a long one is never straddled
    verdicts = [ratelimit.hit(f"store-test-{store}", Rate(3, window)) for _ in range(5)]
    assert [v.allowed for v in verdicts] == [True, True, True, False, False]
    assert [v.count for v in verdicts] == [1, 2, 3, 4, 5]
    assert all(0 < v.retry_after <= window for v in verdicts)


def test_purge_deletes_only_ended_windows():
    ratelimit.hit("live", Rate(5, 60))
    ratelimit.hit("ended", Rate(5, 60))
    RateCounter.objects.filter(key__startswith="ended").update(
        window_ends_at=timezone.now() - timedelta(seconds=1)
    )
    assert ratelimit.purge_expired() == 1
    assert [c.key.split(":")[0] for c in RateCounter.objects.all()] == ["live"]
