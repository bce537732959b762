"""#15: the new-broadcast form: what exists to choose from, the preview count (the
same segment and skip rules as the broadcast itself), the permission, the labels."""

import re

import pytest
from django.urls import reverse

from flows import broadcasts
from flows.models import Broadcast, Segment, segment_label
from tests.factories import ContactFactory, TagFactory, conversation_in, grant_broadcast
from tests.flows.conftest import make_flow

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def audience():
    vip = TagFactory(name="vip")
    conversation_in("new", tags=[vip])  # ongoing: skipped without priority
    conversation_in("in_progress", tags=[vip])  # ongoing
    conversation_in("closed", tags=[vip])  # closed: gets it
    ContactFactory(channel="sms", external_id="+3361234")  # not contacted
    conversation_in("not_contacted")
    return vip


def preview(client, **data):
    response = client.get(reverse("flows:broadcast_preview"), data, **HX)
    assert response.status_code == 200
    text = " ".join(response.content.decode().split())
    reach = re.search(r'data-reach="(\d+)"', text)
    skipped = re.search(r'data-skipped="(\d+)"', text)
    return text, int(reach.group(1)) if reach else None, int(skipped.group(1)) if skipped else 0


@pytest.mark.parametrize(
    ("data", "label", "reach", "skipped"),
    [
        ({"segment": "all"}, "Everyone", 5, 2),
        ({"segment": "tag", "tag": "vip"}, "Tagged “vip”", 3, 2),
        ({"segment": "channel", "channel": "sms"}, "On channel sms", 1, 0),
        ({"segment": "status", "status": "new"}, "Whose conversation is New", 1, 1),
        ({"segment": "status", "status": "closed"}, "Whose conversation is closed", 1, 0),
    ],
)
def test_the_preview_counts_what_the_broadcast_then_does(
    agent_client, audience, data, label, reach, skipped
):
    text, got_reach, got_skipped = preview(agent_client, **data)
    assert label in text
    assert (got_reach, got_skipped) == (reach, skipped)
    _, _, with_priority = preview(agent_client, **data, has_priority="on")
    assert with_priority == 0
    # The broadcast itself: the same segment, the same contacts skipped.
    flow = make_flow(("send_message", "Hello"))
    value = data.get(data["segment"], "")
    broadcast = broadcasts.broadcast_create(flow=flow, segment=data["segment"], segment_value=value)
    done = broadcasts.broadcast_execute(broadcast_id=broadcast.pk)
    assert (done.total, done.skipped, done.sent) == (reach, skipped, reach - skipped)


def test_the_preview_is_one_query_whatever_the_segments_size(
    agent_client, audience, django_assert_max_num_queries
):
    agent_client.get(reverse("flows:broadcast_preview"), {"segment": "all"}, **HX)
    for _ in range(5):
        ContactFactory()
    # session, user, the form's tags and channels, the count
    with django_assert_max_num_queries(5):
        _, reach, _ = preview(agent_client, segment="tag", tag="vip")
    assert reach == 3


def test_the_preview_says_what_is_missing(agent_client, audience):
    assert "Choose a tag." in preview(agent_client, segment="tag")[0]
    assert "That tag does not exist." in preview(agent_client, segment="tag", tag="nope")[0]


def test_the_form_offers_only_existing_tags_and_channels(agent_client, audience):
    page = agent_client.get(reverse("flows:index")).content.decode()
    tag_select = re.search(r'<select name="tag".*?</select>', page, re.S).group(0)
    assert '<option value="vip">vip</option>' in tag_select
    channel_select = re.search(r'<select name="channel".*?</select>', page, re.S).group(0)
    assert re.findall(r'<option value="(\w+)"', channel_select) == ["sms", "web"]
    assert '<option value="all" selected>Everyone</option>' in page
    assert (
        'id="broadcast-preview"' in page
        and 'hx-trigger="load, change from:#broadcast-form"' in page
    )


def test_a_plain_agent_sees_the_button_disabled_with_the_reason_and_is_refused(
    agent_client, agent, audience
):
    flow = make_flow(("send_message", "Hello"))
    page = agent_client.get(reverse("flows:index")).content.decode()
    assert re.search(r"<button[^>]*disabled[^>]*>Start broadcast</button>", page)
    assert "an admin can grant it to you" in page
    refused = agent_client.post(
        reverse("flows:broadcast_create"), {"flow": flow.pk, "segment": "all"}
    )
    assert refused.status_code == 403
    assert "permission" in refused.content.decode()
    assert not Broadcast.objects.exists()

    grant_broadcast(agent)
    page = agent_client.get(reverse("flows:index")).content.decode()
    assert not re.search(r"<button[^>]*disabled[^>]*>Start broadcast</button>", page)
    created = agent_client.post(
        reverse("flows:broadcast_create"), {"flow": flow.pk, "segment": "all"}
    )
    assert created.status_code == 302 and Broadcast.objects.count() == 1


def test_staff_may_broadcast_without_a_grant(staff_client, staff):
    flow = make_flow(("send_message", "Hello"))
    created = staff_client.post(
        reverse("flows:broadcast_create"), {"flow": flow.pk, "segment": "all"}
    )
    assert created.status_code == 302
    assert broadcasts.may_broadcast(staff)


def test_segment_labels_are_words_not_slugs():
    assert segment_label(Segment.ALL, "") == "Everyone"
    assert segment_label(Segment.STATUS, "in_progress") == "Whose conversation is In progress"
    assert Broadcast(segment=Segment.CHANNEL, segment_value="web").segment_label == "On channel web"
