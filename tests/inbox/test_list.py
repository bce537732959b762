"""The inbox list: full page and htmx partials, every filter, the archive, keyset
pages, bad parameters, the refresh heartbeat and the query budget."""

import json
import re
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations import services
from conversations.transitions import Status
from inbox.selectors import PAGE_SIZE, encode_cursor
from tests.factories import ContactFactory, TagFactory, UserFactory, conversation_in

from .conftest import aware, clock, hx, ids_in, receive

pytestmark = pytest.mark.django_db


@pytest.fixture
def every_status(agent):
    """One conversation per status plus an archived one, oldest first."""
    made = {}
    for status in (Status.NOT_CONTACTED, Status.NEW, Status.IN_PROGRESS, Status.IN_FLOW):
        made[status] = conversation_in(status, agent=agent)
    made[Status.CLOSED] = conversation_in(Status.CLOSED, agent=agent)
    made["archived"] = conversation_in(Status.CLOSED, agent=agent, archived=True)
    return made


# --- the page and its partials --------------------------------------------------------


def test_full_page_lists_every_non_archived_conversation_most_recent_first(
    agent_client, every_status
):
    # #15: "All" is view=all; the default view is what needs the agent (test_default_view).
    response = agent_client.get("/inbox/?view=all")

    assert response.status_code == 200
    assert "<html" in response.text
    expected = [
        every_status[s].pk
        for s in (
            Status.CLOSED,
            Status.IN_FLOW,
            Status.IN_PROGRESS,
            Status.NEW,
            Status.NOT_CONTACTED,
        )
    ]
    assert ids_in(response) == expected
    assert every_status["archived"].pk not in ids_in(response)
    assert "5 conversations" in response.text


def test_tabs_show_counts_and_mark_the_active_one(agent_client, every_status):
    response = agent_client.get("/inbox/?view=all")
    tabs = response.context["tabs"]
    counts = {tab["key"]: tab["count"] for tab in tabs}
    assert counts == {
        "all": 5,
        "new": 1,
        "in_progress": 1,
        "in_flow": 1,
        "not_contacted": 1,
        "closed": 1,
        "archived": 1,
    }
    assert [tab["key"] for tab in tabs if tab["active"]] == ["all"]
    assert re.search(r'class="tab tab-all"[^>]*aria-current="page"', response.text)

    response = agent_client.get("/inbox/?status=new")
    assert [tab["key"] for tab in response.context["tabs"] if tab["active"]] == ["new"]
    assert re.search(r'class="tab tab-new"[^>]*aria-current="page"', response.text)
    assert not re.search(r'class="tab tab-all"[^>]*aria-current', response.text)


def test_tab_links_keep_the_other_filters(agent_client, every_status):
    response = agent_client.get("/inbox/?q=help&assignee=me&status=new")
    urls = {tab["key"]: tab["url"] for tab in response.context["tabs"]}
    assert urls["closed"] == "/inbox/?q=help&status=closed&assignee=me"
    assert urls["archived"] == "/inbox/?q=help&archived=yes&assignee=me"
    assert urls["all"] == "/inbox/?q=help&assignee=me"


def test_htmx_request_gets_the_list_with_tabs_out_of_band_and_pushes_the_url(
    agent_client, every_status
):
    response = agent_client.get("/inbox/?status=new&archived=no&q=", headers=hx())

    assert response.status_code == 200
    assert "<html" not in response.text
    assert response.text.lstrip().startswith('<div id="conversation-list"')
    assert re.search(r'<nav id="status-tabs"[^>]*hx-swap-oob="true"', response.text)
    assert 'id="poller"' in response.text
    # Navigation from a tab: the filter form follows, the pane is reset.
    assert 'id="filter-form"' in response.text
    assert 'id="conversation-pane" class="pane pane-empty"' in response.text
    # Defaults and empty values are left out of the pushed URL.
    assert response["HX-Push-Url"] == "/inbox/?status=new"
    assert ids_in(response) == [every_status[Status.NEW].pk]
    assert "HX-Request" in response["Vary"]


def test_filter_form_request_does_not_send_the_form_back(agent_client, every_status):
    """The agent may still be typing in the search box."""
    response = agent_client.get("/inbox/?q=hel", headers=hx(trigger="filter-form"))
    assert 'id="filter-form"' not in response.text
    assert response["HX-Push-Url"] == "/inbox/?q=hel"


def test_self_refresh_keeps_the_url_and_the_pane(agent_client, every_status):
    response = agent_client.get(
        "/inbox/?status=new", headers=hx(target="conversation-list", trigger="conversation-list")
    )
    assert "HX-Push-Url" not in response
    assert 'id="conversation-pane"' not in response.text
    assert 'id="filter-form"' not in response.text
    assert 'id="status-tabs"' in response.text  # the counts refresh with the list


# --- filters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=new", [Status.NEW]),
        ("status=new&status=in_flow", [Status.IN_FLOW, Status.NEW]),
        ("status=closed", [Status.CLOSED]),
        ("archived=yes", ["archived"]),
        ("archived=any&status=closed", ["archived", Status.CLOSED]),
        (
            "archived=any",
            [
                "archived",
                Status.CLOSED,
                Status.IN_FLOW,
                Status.IN_PROGRESS,
                Status.NEW,
                Status.NOT_CONTACTED,
            ],
        ),
    ],
)
def test_status_and_archived_filters(agent_client, every_status, query, expected):
    response = agent_client.get(f"/inbox/?{query}")
    assert response.status_code == 200
    assert ids_in(response) == [every_status[key].pk for key in expected]


def test_archived_view_is_a_shareable_link(agent_client, every_status):
    response = agent_client.get("/inbox/?archived=yes")
    assert ids_in(response) == [every_status["archived"].pk]
    assert [tab["key"] for tab in response.context["tabs"] if tab["active"]] == ["archived"]
    assert 'class="badge badge-archived"' in response.text


def test_assignee_filter(agent_client, agent, other_agent):
    mine = conversation_in(Status.IN_PROGRESS, agent=agent)
    theirs = conversation_in(Status.IN_PROGRESS, agent=other_agent)
    nobodys = conversation_in(Status.NEW)

    assert ids_in(agent_client.get("/inbox/?assignee=me")) == [mine.pk]
    assert ids_in(agent_client.get("/inbox/?assignee=none")) == [nobodys.pk]
    assert ids_in(agent_client.get(f"/inbox/?assignee={other_agent.pk}")) == [theirs.pk]


def test_tag_and_channel_filters(agent_client):
    billing = TagFactory(name="billing")
    tagged = conversation_in(Status.NEW, tags=[billing])
    conversation_in(Status.NEW)
    on_whatsapp = conversation_in(Status.NEW, contact=ContactFactory(channel="whatsapp"))

    assert ids_in(agent_client.get("/inbox/?tag=billing")) == [tagged.pk]
    assert ids_in(agent_client.get("/inbox/?channel=whatsapp")) == [on_whatsapp.pk]
    # A closed conversation keeps its (locked) tags and is still found by them.
    services.conversation_close(conversation=tagged)
    assert ids_in(agent_client.get("/inbox/?tag=billing&status=closed")) == [tagged.pk]


def test_text_search_matches_contact_name_or_message_text_without_duplicates(agent_client):
    by_name = conversation_in(Status.NEW, contact=ContactFactory(name="Zelda Fitzgerald"))
    by_text = conversation_in(Status.NEW, text="My parcel never arrived")
    for _ in range(3):  # several matching messages still make one row
        receive(by_text, "the parcel, again")
    conversation_in(Status.NEW, text="Something else entirely")

    assert ids_in(agent_client.get("/inbox/?q=zelda")) == [by_name.pk]
    response = agent_client.get("/inbox/?q=PARCEL")
    assert ids_in(response) == [by_text.pk]
    assert "1 conversation" in response.text


def test_last_activity_range(agent_client):
    with clock(aware(2024, 3, 1, 10)):
        march = conversation_in(Status.NEW)
    with clock(aware(2024, 3, 5, 23, 30)):
        fifth = conversation_in(Status.NEW)
    with clock(aware(2024, 4, 2, 9)):
        april = conversation_in(Status.NEW)

    assert ids_in(agent_client.get("/inbox/?active_from=2024-03-02")) == [april.pk, fifth.pk]
    # "until" includes the whole day.
    assert ids_in(agent_client.get("/inbox/?active_to=2024-03-05")) == [fifth.pk, march.pk]
    response = agent_client.get("/inbox/?active_from=2024-03-05&active_to=2024-03-05")
    assert ids_in(response) == [fifth.pk]


def test_longest_waiting_sort_puts_the_oldest_waiting_first_and_the_rest_last(agent_client, agent):
    with clock(aware(2024, 5, 1, 8)):
        old_wait = conversation_in(Status.NEW)
    with clock(aware(2024, 5, 1, 9)):
        answered = conversation_in(Status.IN_PROGRESS, agent=agent)
    with clock(aware(2024, 5, 1, 10)):
        new_wait = conversation_in(Status.NEW)
    with clock(aware(2024, 5, 1, 11)):
        receive(old_wait, "Anyone there?")  # still waiting since 8:00

    by_activity = ids_in(agent_client.get("/inbox/"))
    assert by_activity == [old_wait.pk, new_wait.pk, answered.pk]
    assert ids_in(agent_client.get("/inbox/?sort=waiting")) == [
        old_wait.pk,
        new_wait.pk,
        answered.pk,
    ]


# --- keyset pages ---------------------------------------------------------------------


@pytest.mark.parametrize("sort", ["activity", "waiting"])
def test_load_more_walks_every_row_once_in_order(agent_client, agent, sort):
    total = PAGE_SIZE + 7
    for index in range(total):
        conversation_in(Status.NEW if index % 3 else Status.IN_PROGRESS, agent=agent)
    first = agent_client.get(f"/inbox/?sort={sort}")
    seen = ids_in(first)
    assert len(seen) == PAGE_SIZE
    cursor = first.context["page"].next_cursor
    assert cursor

    more = agent_client.get(f"/inbox/?sort={sort}&cursor={cursor}", headers=hx(target="load-more"))
    assert more.status_code == 200
    assert 'id="conversation-list"' not in more.text  # just the next rows
    assert 'id="load-more"' not in more.text  # and nothing after the last one
    seen += ids_in(more)

    full = agent_client.get(f"/inbox/?sort={sort}&limit=200")
    assert seen == ids_in(full)
    assert len(set(seen)) == total


def test_load_more_button_carries_the_filters(agent_client, agent):
    for _ in range(PAGE_SIZE + 1):
        conversation_in(Status.NEW)
    response = agent_client.get("/inbox/?status=new&q=help")
    button = re.search(r'hx-get="([^"]*cursor=[^"]*)"', response.text).group(1)
    assert button.startswith("/inbox/?q=help&amp;status=new&amp;cursor=")


def test_refresh_with_a_limit_keeps_the_loaded_rows(agent_client):
    for _ in range(PAGE_SIZE + 5):
        conversation_in(Status.NEW)
    response = agent_client.get(
        f"/inbox/?limit={PAGE_SIZE + 5}",
        headers=hx(target="conversation-list", trigger="conversation-list"),
    )
    assert len(ids_in(response)) == PAGE_SIZE + 5


# --- bad parameters --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("archived=maybe", "Archived: Select a valid choice."),
        ("status=lost", "Status: Select a valid choice."),
        ("assignee=999999", "Assignee: Select a valid choice."),
        ("assignee=%00", "Assignee: Select a valid choice."),
        ("tag=nope", "Tag: Select a valid choice."),
        ("channel=pigeon", "Channel: Select a valid choice."),
        ("active_from=2024-02-31", "Active from: Enter a valid date."),
        ("active_from=2024-03-05&active_to=2024-03-01", "The end date is before the start date."),
        ("sort=random", "Sort by: Select a valid choice."),
        ("cursor=not-a-cursor", "The page link is not valid"),
        ("limit=lots", "Limit: must be a whole number."),
        ("q=" + "x" * 201, "Search: Ensure this value has at most 200 characters"),
    ],
)
def test_bad_parameters_show_the_errors_never_a_500(agent_client, every_status, query, message):
    response = agent_client.get(f"/inbox/?{query}")
    assert response.status_code == 400
    assert message in response.text
    assert ids_in(response) == []  # nothing listed under a filter that was not understood

    partial = agent_client.get(f"/inbox/?{query}", headers=hx())
    assert partial.status_code == 200  # htmx swaps it in
    assert message in partial.text


def test_a_cursor_from_the_other_sort_is_refused(agent_client, agent):
    conversation = conversation_in(Status.NEW)
    cursor = encode_cursor("waiting", conversation)
    response = agent_client.get(f"/inbox/?cursor={cursor}")
    assert response.status_code == 400
    assert "The page link is not valid" in response.text


def test_tabs_drop_the_bad_parameter(agent_client, every_status):
    response = agent_client.get("/inbox/?archived=maybe&q=help")
    urls = {tab["key"]: tab["url"] for tab in response.context["tabs"]}
    assert urls["new"] == "/inbox/?q=help&status=new"


# --- escaping -------------------------------------------------------------------------


def test_contact_names_and_previews_are_escaped(agent_client):
    contact = ContactFactory(name="<b>Bold</b>")
    conversation_in(Status.NEW, contact=contact, text="<script>alert(1)</script>")
    response = agent_client.get("/inbox/")
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert "&lt;b&gt;Bold&lt;/b&gt;" in response.text


# --- the heartbeat ----------------------------------------------------------------------


def test_poll_answers_nothing_until_something_changes(agent_client, every_status):
    version = agent_client.get("/inbox/").context["version"]

    unchanged = agent_client.get(f"/inbox/poll/?v={version}", headers=hx())
    assert unchanged.status_code == 204
    assert "HX-Trigger" not in unchanged

    receive(every_status[Status.NEW], "One more thing")
    changed = agent_client.get(f"/inbox/poll/?v={version}", headers=hx())
    assert changed.status_code == 200
    assert "conversationChanged" in json.loads(changed["HX-Trigger"])


def test_poll_notices_tag_changes(agent_client, every_status):
    version = agent_client.get("/inbox/").context["version"]
    services.conversation_tag_add(conversation=every_status[Status.NEW], tag="urgent")
    assert agent_client.get(f"/inbox/poll/?v={version}").status_code == 200
    version = agent_client.get("/inbox/").context["version"]
    services.conversation_tag_remove(conversation=every_status[Status.NEW], tag="urgent")
    assert agent_client.get(f"/inbox/poll/?v={version}").status_code == 200


def test_list_response_carries_the_new_version_for_the_poller(agent_client, every_status):
    before = agent_client.get("/inbox/").context["version"]
    receive(every_status[Status.NEW])
    response = agent_client.get("/inbox/", headers=hx(trigger="conversation-list"))
    assert f"/inbox/poll/?v={before}" not in response.text
    assert f"/inbox/poll/?v={response.context['version']}" in response.text


# --- login ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/inbox/", "/inbox/?archived=yes", "/inbox/poll/"])
def test_anonymous_users_are_sent_to_the_login_page(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_anonymous_htmx_requests_redirect_the_whole_page(client):
    response = client.get(
        "/inbox/", headers=hx(**{"HX-Current-URL": "http://testserver/inbox/?q=x"})
    )
    # Not a 302 that htmx would follow and swap into the list: 401, and htmx loads
    # the login page as a whole page, coming back to the page the browser showed.
    assert response.status_code == 401
    assert response["HX-Redirect"] == "/login/?next=%2Finbox%2F%3Fq%3Dx"
    assert "<form" not in response.text


def test_inactive_users_are_sent_to_the_login_page(client):
    user = UserFactory(is_active=False)
    client.force_login(user)
    assert client.get("/inbox/").status_code == 302


# --- query budget -------------------------------------------------------------------------


def _many(count: int, agent) -> None:
    """Conversations that every URL below lists, each with a contact, an assignee,
    tags and messages: the parts a row shows."""
    vip, billing = TagFactory(name="vip"), TagFactory(name="billing")
    for index in range(count):
        contact = ContactFactory(channel="web" if index % 2 else "email")
        conversation = conversation_in(
            Status.IN_PROGRESS, contact=contact, agent=agent, tags=[vip, billing][: 1 + index % 2]
        )
        if index % 2:
            receive(conversation, "I still need help")  # waiting again


def _queries(client, url: str, headers: dict | None = None) -> int:
    """Queries of one request, the choices memory warm (as it is but once every
    ``inbox.choices.SECONDS`` per process; a cold one is tested below)."""
    assert client.get(url, headers=headers or {}).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, headers=headers or {})
    assert response.status_code == 200
    return len(queries)


class _Row:
    """A cursor's position after every row (for "load more")."""

    pk = 2**31
    last_activity_at = datetime(2100, 1, 1, tzinfo=UTC)
    waiting_since = None


@pytest.mark.parametrize(
    ("url", "headers", "budget"),
    [
        # the session with its user (one query: inbox.sessions), tab counts, rows
        # (with their tags' ids and the capped total), the heartbeat's version; the
        # agents, tags and channels come from memory
        ("/inbox/", None, 4),
        ("/inbox/?tag=vip&assignee=me&sort=waiting", None, 4),
        ("/inbox/?status=new&status=in_progress&channel=email", hx(), 4),
        ("/inbox/", hx(trigger="conversation-list"), 4),
        # plus the search's two probes (matching contacts, matching messages)
        ("/inbox/?q=help&tag=vip&assignee=me&sort=waiting", None, 6),
        # "load more": the session with its user, rows
        ("/inbox/?cursor=" + encode_cursor("activity", _Row()), hx(target="load-more"), 2),
    ],
)
def test_list_queries_do_not_grow_with_the_rows(agent_client, agent, url, headers, budget):
    _many(1, agent)
    one = _queries(agent_client, url, headers)
    _many(49, agent)
    response = agent_client.get(url, headers=headers or {})
    assert len(ids_in(response)) >= 25  # the page really shows the rows
    fifty = _queries(agent_client, url, headers)
    assert one == fifty
    assert fifty == budget, f"{fifty} queries for the inbox list"


def test_the_choices_are_read_once_per_process_not_per_page(agent_client, agent):
    _many(3, agent)
    with CaptureQueriesContext(connection) as cold:
        agent_client.get("/inbox/")
    with CaptureQueriesContext(connection) as warm:
        agent_client.get("/inbox/")
    read_by_cold = [q["sql"] for q in cold.captured_queries[len(warm.captured_queries) :]]
    assert len(cold) == len(warm) + 4, read_by_cold  # agents, tags, channels, inbox settings
    sql = " ".join(q["sql"] for q in warm.captured_queries)
    assert 'WHERE "auth_user"."is_active"' not in sql  # the agents
    assert 'FROM "conversations_tag"' not in sql
    assert "RECURSIVE channels" not in sql


def test_a_tampered_load_more_link_shows_the_error_in_the_list(agent_client):
    conversation_in(Status.NEW)
    response = agent_client.get("/inbox/?cursor=bogus", headers=hx(target="load-more"))
    assert response.status_code == 200
    assert "The page link is not valid" in response.text
    assert response.text.lstrip().startswith('<li class="notice notice-error')


def test_relative_times(agent_client):
    from datetime import timedelta

    from django.utils import timezone

    from inbox.templatetags.inbox_tags import ago

    now = timezone.now()
    assert ago(now) == "now"
    assert ago(now - timedelta(minutes=5)) == "5 min"
    assert ago(now - timedelta(hours=3)) == "3 h"
    assert ago(now - timedelta(days=2)) == "2 d"
    assert ago(aware(2001, 3, 9, 12)) == "9 Mar 2001"
    assert ago(None) == ""


@pytest.mark.parametrize("query", ["q=nothing-matches-this", "q=nothing-matches-this&tag=vip"])
def test_a_search_without_matches_shows_an_empty_list(agent_client, query):
    conversation_in(Status.NEW, text="Hello", tags=[TagFactory(name="vip")])
    response = agent_client.get(f"/inbox/?{query}")
    assert response.status_code == 200
    assert ids_in(response) == []
    assert "0 conversations" in response.text


def test_filtersets_share_no_per_request_state(agent, other_agent):
    """The filters are copied shallowly and the form's fields shared (no deep copies
    per request): each FilterSet still filters with its own request and data."""
    from django.http import QueryDict
    from django.test import RequestFactory

    from conversations.models import Conversation
    from inbox.filters import ConversationFilter

    mine = conversation_in(Status.IN_PROGRESS, agent=agent)
    theirs = conversation_in(Status.IN_PROGRESS, agent=other_agent)
    requests = []
    for user in (agent, other_agent):
        request = RequestFactory().get("/inbox/?assignee=me")
        request.user = user
        requests.append(request)
    first, second = (
        ConversationFilter(QueryDict("assignee=me"), queryset=Conversation.objects.all(), request=r)
        for r in requests
    )
    assert first.filters["assignee"] is not second.filters["assignee"]
    assert first.form.fields["assignee"] is second.form.fields["assignee"]  # shared, read only
    assert list(first.qs) == [mine]
    assert list(second.qs) == [theirs]
    assert not hasattr(ConversationFilter.base_filters["assignee"], "parent")


def test_a_row_is_drawn_once_while_it_looks_the_same_and_again_when_it_changes(
    agent_client, agent, monkeypatch
):
    """The list keeps each row's HTML by what the row shows: a refresh that changes
    nothing draws no row, and a row whose preview changed is drawn anew (never the
    stale one)."""
    from inbox import display

    first = conversation_in(Status.NEW)
    receive(first, "Where is my parcel?")
    receive(conversation_in(Status.NEW), "Hello")
    display._row_html.clear()
    drawn = []
    real = display.fragment_macro

    def counting(name, template="inbox/macros.html"):
        macro = real(name, template)
        if name != "row_html":
            return macro
        return lambda row: drawn.append(row.pk) or macro(row)

    monkeypatch.setattr(display, "fragment_macro", counting)
    refresh = hx(target="conversation-list", trigger="conversation-list")
    shown = ids_in(agent_client.get("/inbox/?view=all", headers=refresh))
    assert sorted(drawn) == sorted(shown)
    assert first.pk in shown

    drawn.clear()
    agent_client.get("/inbox/?view=all", headers=refresh)
    assert drawn == []

    receive(first, "Any news?")
    response = agent_client.get("/inbox/?view=all", headers=refresh)
    assert drawn == [first.pk]
    assert "Any news?" in response.text
    assert "Where is my parcel?" not in response.text
