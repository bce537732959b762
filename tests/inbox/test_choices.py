"""The dropdown choices (agents, tags, channels, flows) come from a per-process
memory (inbox.choices): a change made here shows at once, a change made by another
process (simulated by writes that send no signal: ``bulk_create``, ``update``) shows
when the memory expires, or at once where the page needs the new value."""

import pytest
from django.contrib.auth import get_user_model

from conversations.memo import Memo
from conversations.models import ConversationTag, Tag
from conversations.transitions import Status
from flows.models import Flow
from inbox import choices
from tests.factories import ContactFactory, TagFactory, UserFactory, conversation_in

from .conftest import hx, ids_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(Memo, "clock", staticmethod(lambda: now[0]))
    return now


def tag_options(response) -> list[str]:
    return list(response.context["form"].fields["tag"].choices)


def test_a_tag_saved_here_shows_at_once(agent_client):
    conversation_in(Status.NEW)
    agent_client.get("/inbox/")  # the memory warm
    TagFactory(name="fresh")
    response = agent_client.get("/inbox/?tag=fresh")
    assert response.status_code == 200
    assert ("fresh", "fresh") in tag_options(response)


def test_a_tag_made_elsewhere_on_a_row_reloads_the_tags(agent_client):
    conversation = conversation_in(Status.NEW)
    agent_client.get("/inbox/")
    (elsewhere,) = Tag.objects.bulk_create(
        [Tag(name="elsewhere", key="elsewhere", colour="#123456")]
    )
    ConversationTag.objects.bulk_create([ConversationTag(conversation=conversation, tag=elsewhere)])

    page = agent_client.get("/inbox/")
    assert (
        '<span class="tag" style="--tag: #123456" title="elsewhere">elsewhere</span>' in page.text
    )
    pane = agent_client.get(f"/inbox/c/{conversation.pk}/", headers=hx(target="conversation-pane"))
    assert '<span class="tag-name" title="elsewhere">elsewhere</span>' in pane.text


def test_a_filter_on_a_value_made_elsewhere_is_not_refused(agent_client):
    tagged = conversation_in(Status.NEW, contact=ContactFactory(channel="web"))
    on_pigeon = conversation_in(Status.NEW, contact=ContactFactory(channel="pigeon"))
    tag = TagFactory(name="late")
    ConversationTag.objects.create(conversation=tagged, tag=tag)
    newcomer = UserFactory(username="newcomer")
    # What the memory holds if these were made by another process a moment ago.
    choices._tags.put(None, choices.Tags(all=(), by_id={}))
    choices._channels.put(None, ("web",))
    choices._agents.put(None, ())

    assert ids_in(agent_client.get("/inbox/?tag=late")) == [tagged.pk]
    assert ids_in(agent_client.get("/inbox/?channel=pigeon")) == [on_pigeon.pk]
    assert agent_client.get(f"/inbox/?assignee={newcomer.pk}").status_code == 200


def test_an_unknown_value_is_still_refused(agent_client):
    conversation_in(Status.NEW)
    for query, label in [
        ("tag=nope", "Tag"),
        ("channel=nope", "Channel"),
        ("assignee=9999", "Assignee"),
    ]:
        response = agent_client.get(f"/inbox/?{query}")
        assert response.status_code == 400
        assert f"{label}: Select a valid choice." in response.text


def test_a_change_made_elsewhere_shows_when_the_memory_expires(agent_client, agent, clock):
    conversation_in(Status.NEW)
    bob = UserFactory(username="bob", first_name="Bob")
    assert (bob.pk, "Bob") in choices.agents()
    get_user_model().objects.filter(pk=bob.pk).update(first_name="Robert")  # no signal
    assert (bob.pk, "Bob") in choices.agents()
    clock[0] += choices.SECONDS + 0.1
    assert (bob.pk, "Robert") in choices.agents()

    carol = UserFactory(username="carol")  # saved here: forgotten at once
    assert carol.pk in dict(choices.agents())


def test_the_flows_the_pane_offers(agent_client):
    conversation = conversation_in(Status.NEW)
    pane_url = f"/inbox/c/{conversation.pk}/"
    assert "No active flow to start." in agent_client.get(pane_url, headers=hx()).text
    Flow.objects.create(name="Welcome", is_active=True)
    assert ">Welcome</option>" in agent_client.get(pane_url, headers=hx()).text
    Flow.objects.filter(name="Welcome").first().delete()
    assert "No active flow to start." in agent_client.get(pane_url, headers=hx()).text
