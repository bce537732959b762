"""#15: the default view is what needs the agent (open conversations assigned to them
or to nobody), "All" is one click away, and a search that finds nothing here says
how many conversations it finds elsewhere."""

import re

import pytest
from django.db import connection

from conversations import services
from conversations.transitions import Status
from tests.factories import ContactFactory, UserFactory, conversation_in
from tests.inbox.conftest import hx, ids_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def inbox(agent):
    bob = UserFactory(username="bob")
    return {
        "mine": conversation_in(Status.IN_PROGRESS, agent=agent),
        "waiting": conversation_in(Status.NEW),
        "not_contacted": conversation_in(Status.NOT_CONTACTED),
        "bobs": conversation_in(Status.IN_PROGRESS, agent=bob),
        "closed": conversation_in(Status.CLOSED),
        "archived": conversation_in(Status.CLOSED, archived=True),
    }


def test_the_default_view_is_open_conversations_mine_or_unassigned(agent_client, inbox):
    response = agent_client.get("/inbox/")
    expected = {inbox[k].pk for k in ("mine", "waiting", "not_contacted")}
    assert set(ids_in(response)) == expected
    assert "3 conversations" in response.text
    assert re.search(r'class="tab tab-view tab-needs-me"[^>]*aria-current="page"', response.text)
    assert not re.search(r'class="tab tab-all"[^>]*aria-current', response.text)
    # The counts say plainly whose they are.
    assert "Counts are for the whole inbox" in response.text


def test_all_is_one_click_away_and_status_tabs_choose_among_all(agent_client, inbox):
    page = agent_client.get("/inbox/").text
    all_url = re.search(r'href="([^"]+)" class="tab tab-all"', page).group(1)
    assert all_url == "/inbox/?view=all"
    everything = agent_client.get(all_url)
    assert set(ids_in(everything)) == {c.pk for k, c in inbox.items() if k != "archived"}
    assert re.search(r'class="tab tab-all"[^>]*aria-current="page"', everything.text)
    assert "Counts are for the whole inbox" not in everything.text
    assert ids_in(agent_client.get("/inbox/?status=closed")) == [inbox["closed"].pk]
    assert ids_in(agent_client.get("/inbox/?status=in_progress&view=needs_me")) == [
        inbox["mine"].pk
    ]
    assert ids_in(agent_client.get("/inbox/?archived=yes")) == [inbox["archived"].pk]


def test_a_search_keeps_the_view_it_was_typed_in(agent_client, inbox):
    bobs_name = inbox["bobs"].contact.name
    assert ids_in(agent_client.get("/inbox/", {"q": bobs_name})) == []
    found = agent_client.get("/inbox/", {"q": bobs_name, "view": "all"})
    assert ids_in(found) == [inbox["bobs"].pk]
    # The filter form carries view=all along, so the next search stays there.
    assert '<input type="hidden" name="view" value="all">' in found.text


def test_an_empty_search_says_how_many_match_archived_or_closed_with_a_link(agent_client):
    contact = ContactFactory(name="Quentin Ortolan")
    conversation_in(Status.CLOSED, contact=contact, archived=True)
    again = services.message_receive(channel="web", external_id=contact.external_id, text="hi")
    services.conversation_close(conversation=again.conversation, actor=None)
    conversation_in(Status.NOT_CONTACTED, contact=ContactFactory(name="Someone"))
    # Its survey awaited: resolved, not closed (someone else's, so out of Needs me).
    conversation_in(
        Status.RESOLVED, contact=ContactFactory(name="Ortolan Two"), agent=UserFactory()
    )
    for headers in ({}, hx(trigger="filter-form")):
        response = agent_client.get("/inbox/", {"q": "ortolan"}, headers=headers)
        assert ids_in(response) == []
        hint = re.search(r'<p class="elsewhere" id="elsewhere">(.*?)</p>', response.text, re.S)
        text = " ".join(hint.group(1).split())
        assert "3 conversations elsewhere match: 1 archived, 1 closed, 1 resolved." in text
        link = re.search(r'href="([^"]+)">Show them', text).group(1).replace("&amp;", "&")
        assert len(ids_in(agent_client.get(link))) == 3
    nothing = agent_client.get("/inbox/", {"q": "zzzz-none"})
    assert 'id="elsewhere"' not in nothing.text
    assert "Nothing matches these filters" in nothing.text


def test_the_default_view_walks_its_own_index():
    """The default view's filter matches the predicate of ``conv_open_activity``, so
    its rows can come from that index newest first, without a sort. (Which plan wins
    depends on the data; at scale it is measured by bench/run. Here the other shapes
    are switched off to see that this one is possible.)"""
    from django.db.models import Q

    from conversations.models import Conversation
    from inbox.filters import NOT_OPEN

    queryset = (
        Conversation.objects.filter(archived_at__isnull=True)
        .exclude(status__in=NOT_OPEN)
        .filter(Q(assignee_id=1) | Q(assignee__isnull=True))
        .order_by("-last_activity_at", "-id")[:51]
    )
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        for setting in ("seqscan", "bitmapscan", "sort"):
            cursor.execute(f"SET LOCAL enable_{setting} = off")
        # The other ordered indexes, dropped inside the test's transaction (rolled
        # back): on a near-empty table their costs tie and the planner may take any.
        cursor.execute(
            """SELECT indexname FROM pg_indexes
               WHERE tablename = 'conversations_conversation'
                 AND indexname <> 'conv_open_activity'
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint
                                 WHERE conindid = indexname::regclass)"""
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "conv_open_activity" in plan, plan
    assert "Sort" not in plan, plan
