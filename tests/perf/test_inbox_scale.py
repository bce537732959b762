"""The query shapes chosen for a million conversations (docs/performance.md) give the
same answers as the simple ones, in a constant number of queries.

Search has two shapes: a rare term fetches its few matching conversations by key, a
common one walks the inbox newest first (its contacts as a list, or beyond
``SEARCH_CONTACTS_LISTED`` as a subquery). The limits are lowered here so that a
handful of rows exercises every shape.
"""

import pytest
from django.db import connection
from django.http import QueryDict
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from conversations import services
from conversations.models import Contact
from conversations.transitions import Status
from inbox import choices, filters
from inbox.selectors import conversation_list
from tests.factories import ContactFactory, TagFactory, conversation_in

pytestmark = pytest.mark.django_db


def listed(agent, query: str):
    request = RequestFactory().get("/inbox/?" + query)
    request.user = agent
    choices.agents(), choices.tags(), choices.channels()  # the memory warm
    with CaptureQueriesContext(connection) as queries:
        page = conversation_list(request=request, params=QueryDict(query))
    assert not page.errors, page.errors
    return [c.pk for c in page.rows], page, len(queries)


@pytest.fixture
def inbox(agent):
    by_message = conversation_in(Status.NEW, text="My dishwasher is leaking")
    by_name = conversation_in(Status.NEW, contact=ContactFactory(name="Ada Dishwasher"))
    by_external_id = conversation_in(Status.NEW, contact=ContactFactory(external_id="dishwasher"))
    archived = conversation_in(Status.CLOSED, text="dishwasher again", archived=True)
    other = conversation_in(Status.NEW, text="Where is my parcel?")
    return {
        "matches": {by_message.pk, by_name.pk, by_external_id.pk},
        "archived": archived.pk,
        "other": other.pk,
    }


SHAPES = pytest.mark.parametrize(
    ("rare_limit", "contacts_listed"),
    [(200, 5000), (1, 5000), (1, 1)],
    ids=["rare-term shape", "common-term shape", "common-term shape, contacts by subquery"],
)


@SHAPES
def test_search_finds_the_same_conversations_in_every_shape(
    agent, inbox, monkeypatch, rare_limit, contacts_listed
):
    monkeypatch.setattr(filters, "SEARCH_RARE_LIMIT", rare_limit)
    monkeypatch.setattr(filters, "SEARCH_CONTACTS_LISTED", contacts_listed)
    ids, page, _ = listed(agent, "q=DishWasher")
    assert set(ids) == inbox["matches"]
    ids, _, _ = listed(agent, "q=dishwasher&archived=yes")
    assert ids == [inbox["archived"]]
    ids, _, _ = listed(agent, "q=dishwasher&archived=any")
    assert set(ids) == inbox["matches"] | {inbox["archived"]}
    if rare_limit == 1:
        assert page.total is None  # a common term is not counted
    else:
        assert page.total == 3


@SHAPES
def test_search_queries_do_not_grow_with_the_matches(
    agent, monkeypatch, rare_limit, contacts_listed
):
    monkeypatch.setattr(filters, "SEARCH_RARE_LIMIT", rare_limit)
    monkeypatch.setattr(filters, "SEARCH_CONTACTS_LISTED", contacts_listed)
    for _ in range(2):
        conversation_in(Status.NEW, text="a refund please")
    _, _, few = listed(agent, "q=refund&view=all")
    for _ in range(20):
        conversation_in(Status.IN_PROGRESS, text="a refund please")
    ids, _, many = listed(agent, "q=refund&view=all")
    assert len(ids) == 22
    assert few == many


def test_totals_come_from_the_tab_counts_without_counting_rows(agent):
    for status in ("new", "new", "in_progress", "closed"):
        conversation_in(status)
    conversation_in("closed", archived=True)
    expected = {
        "view=all": 4,
        "status=new": 2,
        "status=new&status=closed": 3,
        "archived=yes": 1,
        "archived=any": 5,
        "archived=any&status=closed": 2,
        "archived=yes&status=new": 0,
    }
    for query, total in expected.items():
        ids, page, _ = listed(agent, query)
        assert page.total == total == len(ids), query


def test_a_filtered_total_is_counted_only_up_to_a_limit(agent, monkeypatch):
    from inbox import selectors

    monkeypatch.setattr(selectors, "TOTAL_LIMIT", 2)
    for _ in range(2):
        conversation_in(Status.NEW, contact=ContactFactory(channel="web"))
    _, page, _ = listed(agent, "channel=web")
    assert page.total == 2
    conversation_in(Status.NEW, contact=ContactFactory(channel="web"))
    _, page, _ = listed(agent, "channel=web")
    assert page.total is None  # more than the limit: rows, no number


@pytest.mark.parametrize("filters", ["", "tag=vip&"], ids=["inbox", "tag filter (ids first)"])
def test_the_next_pages_continue_where_the_last_ended(agent, monkeypatch, filters):
    from inbox import selectors

    monkeypatch.setattr(selectors, "PAGE_SIZE", 3)
    vip = TagFactory(name="vip")
    for index in range(7):
        conversation_in(Status.NEW, tags=[vip] if index % 3 else [])
    # Two conversations with the same last activity: the id breaks the tie.
    first = conversation_in(Status.NEW, tags=[vip])
    services.message_receive(
        channel=first.contact.channel, external_id=first.contact.external_id, text="again"
    )
    conversation_in(Status.CLOSED, tags=[vip], archived=True)  # not in the inbox
    everything, page, _ = listed(agent, f"{filters}limit=200")
    assert page.total == len(everything) == (5 if filters else 8)
    seen, cursor = [], None
    while True:
        query = filters + ("" if cursor is None else f"cursor={cursor}")
        request = RequestFactory().get("/inbox/")
        request.user = agent
        page = selectors.conversation_list(request=request, params=QueryDict(query))
        assert not page.errors
        seen += [c.pk for c in page.rows]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == everything


def test_the_planner_knows_how_the_inbox_filters_go_together():
    # Without them it took "open, mine or unassigned" for 2% of its real size and
    # read every such conversation instead of walking the newest (docs/performance.md).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT stxkind, ARRAY(SELECT attname FROM pg_attribute a"
            " WHERE a.attrelid = s.stxrelid AND a.attnum = ANY(s.stxkeys) ORDER BY attname)"
            " FROM pg_statistic_ext s WHERE stxname = 'conv_inbox_mcv'"
        )
        kinds, columns = cursor.fetchone()
    assert kinds == ["m"]
    assert columns == ["archived_at", "assignee_id", "snoozed_until", "status"]


def test_a_phone_number_search_matches_a_name_as_one_phrase():
    pat = ContactFactory(channel="sms", external_id="+33 6 12 34 56 78", name="Pat")
    ContactFactory(channel="chat", external_id="v-1", name="Desk 12 34 6")  # words apart
    phrase = ContactFactory(channel="chat", external_id="v-2", name="Order 6 12 34")
    found = set(Contact.objects.matching("6 12 34").values_list("pk", flat=True))
    assert found == {pat.pk, phrase.pk}
