"""The pane's Snooze (presets and a date/time), the Snoozed view and its count."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from conversations import snooze
from conversations.models import Conversation
from conversations.transitions import Status
from tests.factories import conversation_in

from .conftest import hx

pytestmark = pytest.mark.django_db


def _listed(response, conversation) -> bool:
    return f'data-id="{conversation.pk}"' in response.text


def _view_count(response, key) -> str:
    return re.search(rf'data-view-count="{key}">([^<]*)<', response.text).group(1)


def test_a_preset_snoozes_it_out_of_the_default_view_into_snoozed(agent_client, agent):
    conversation = conversation_in(Status.NEW, agent=agent)
    services_pane = agent_client.get(f"/inbox/c/{conversation.pk}/")
    assert "Tomorrow morning" in services_pane.text and 'name="until"' in services_pane.text

    response = agent_client.post(
        f"/inbox/c/{conversation.pk}/snooze/",
        {"preset": "tomorrow"},
        headers=hx(target="conversation-pane"),
    )
    assert response.status_code == 200
    assert "conversationChanged" in response["HX-Trigger"]
    assert "Snoozed until" in response.text and ">Unsnooze<" in response.text
    conversation.refresh_from_db()
    local = timezone.localtime(conversation.snoozed_until)
    assert (local.hour, local.minute) == (9, 0)
    assert local.date() == timezone.localdate() + timedelta(days=1)

    inbox = agent_client.get("/inbox/")
    assert not _listed(inbox, conversation)
    assert _view_count(inbox, "snoozed") == "1"
    assert _view_count(inbox, "mine") == "0"
    snoozed = agent_client.get("/inbox/?snoozed=yes")
    assert _listed(snoozed, conversation)
    assert 'aria-current="page"' in re.search(r"<a[^>]*tab-snoozed[^>]*>", snoozed.text).group(0)
    assert "Snoozed" in agent_client.get(f"/inbox/c/{conversation.pk}/").text

    woke = agent_client.post(f"/inbox/c/{conversation.pk}/unsnooze/", headers=hx())
    assert "back in the inbox" in woke.text
    assert _listed(agent_client.get("/inbox/"), conversation)


def test_the_snoozed_view_lists_every_snoozed_conversation_its_count_counts(
    agent_client, agent, other_agent
):
    later = timezone.now() + timedelta(hours=3)
    mine = conversation_in(Status.IN_PROGRESS, agent=agent)
    theirs = conversation_in(Status.IN_PROGRESS, agent=other_agent)
    for conversation in (mine, theirs):
        snooze.conversation_snooze(conversation=conversation, until=later)

    snoozed = agent_client.get("/inbox/?snoozed=yes")

    assert _view_count(snoozed, "snoozed") == "2"
    assert _listed(snoozed, mine) and _listed(snoozed, theirs)
    # Each row says when it comes back.
    back = timezone.localtime(later)
    expected = f"snoozed until {back.day} {back:%b}, {back:%H:%M}"
    assert snoozed.text.count(f'<span class="snoozed-until">{expected}</span>') == 2
    assert "snoozed-until" not in agent_client.get("/inbox/?view=all").text


def test_a_chosen_time_is_read_in_the_business_time_zone(agent_client):
    conversation = conversation_in(Status.IN_PROGRESS)
    moment = timezone.localtime() + timedelta(days=2)
    agent_client.post(
        f"/inbox/c/{conversation.pk}/snooze/", {"until": moment.strftime("%Y-%m-%dT%H:%M")}
    )
    conversation.refresh_from_db()
    assert conversation.snoozed_until == moment.replace(second=0, microsecond=0)


@pytest.mark.parametrize(
    ("data", "sentence"),
    [
        ({"until": "2001-02-03T10:00"}, "is in the past"),
        ({"until": ""}, "Choose a date and time"),
        ({"preset": "never"}, "Choose one of the snooze times"),
    ],
)
def test_refusals_are_a_message_in_the_pane(agent_client, data, sentence):
    conversation = conversation_in(Status.NEW)
    response = agent_client.post(
        f"/inbox/c/{conversation.pk}/snooze/", data, headers=hx(target="conversation-pane")
    )
    assert response.status_code == 200
    assert sentence in response.text
    assert Conversation.objects.get(pk=conversation.pk).snoozed_until is None


def test_closed_conversations_offer_no_snooze(agent_client):
    conversation = conversation_in(Status.CLOSED)
    pane = agent_client.get(f"/inbox/c/{conversation.pk}/")
    assert "snooze-menu" not in pane.text
    response = agent_client.post(
        f"/inbox/c/{conversation.pk}/snooze/", {"preset": "hour"}, headers=hx()
    )
    assert "closed" in response.text


def test_the_snoozed_view_counts_with_the_tabs(agent_client):
    conversations = [conversation_in(Status.NEW) for _ in range(3)]
    snooze.conversation_snooze(
        conversation=conversations[0], until=timezone.now() + timedelta(hours=1)
    )
    inbox = agent_client.get("/inbox/")
    assert _view_count(inbox, "snoozed") == "1"
    assert re.search(r'data-tab-count="new">2<', inbox.text)
    assert re.search(r'data-tab-count="all">2<', inbox.text)
