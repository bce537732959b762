"""Every report's figures on a hand-made history (tests/reports/history.py), from the
selectors, the page, the CSV and the API; the rollups kept by the triggers equal
the rollups rebuilt from the facts."""

import csv
import io
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from connectors.tokens import token_create
from conversations.models import Conversation
from conversations.transitions import Status
from flows.broadcasts import broadcast_create, broadcast_execute
from flows.models import Segment
from reports import rollup, selectors
from reports.models import ALL_CHANNELS, ANY_TAG
from reports.selectors import Params
from tests.api.conftest import ApiClient
from tests.factories import conversation_in
from tests.flows.conftest import make_flow

from .history import D1, D2, make

pytestmark = pytest.mark.django_db(transaction=False)
RANGE = "range=custom&start=2025-03-03&end=2025-03-04"


def at_most(seconds: int) -> int:
    """The bucket edge a time is reported as: the smallest edge above it."""
    return min(edge for edge in rollup.EDGES if edge > seconds)


@pytest.fixture
def history(agent, other_agent):
    return make(agent, other_agent)


def test_response_times_are_stored_when_they_happen(history, agent, other_agent):
    c1, c2 = (Conversation.objects.get(pk=history[k].pk) for k in ("c1", "c2"))
    assert (c1.first_response_seconds, c1.first_response_by, c1.resolution_seconds) == (
        600,
        agent,
        7200,
    )
    assert (c2.first_response_seconds, c2.first_response_by) == (88200, other_agent)
    assert c2.resolution_seconds is None


def test_volume(history):
    data = selectors.volume(Params(D1, D2))
    assert data["opened"] == {D1: 2, D2: 2}
    assert data["closed"] == {D1: 1, D2: 0}
    assert data["at_end"][D1] == {
        "not_contacted": 0,
        "new": 1,
        "in_progress": 0,
        "in_flow": 0,
        "closed": 1,
        "resolved": 0,
    }
    assert data["at_end"][D2] == {
        "not_contacted": 0,
        "new": 2,
        "in_progress": 1,
        "in_flow": 0,
        "closed": 1,
        "resolved": 0,
    }
    # Only D2: the statuses carry over from the days before the range.
    assert selectors.volume(Params(D2, D2))["at_end"][D2]["closed"] == 1
    one_day = selectors.volume(Params(D1, D1))
    assert one_day["opened"][9] == one_day["opened"][10] == 1
    assert one_day["closed"][11] == 1


def test_filters(history, agent):
    billing = history["c2"].tags.get().pk
    tagged = selectors.volume(Params(D1, D2, tag_id=billing))
    assert tagged["opened"] == {D1: 1, D2: 0}
    assert tagged["at_end"][D2]["in_progress"] == 1
    assert tagged["at_end"][D2]["new"] == 0
    whatsapp = selectors.volume(Params(D1, D2, channel="whatsapp"))
    assert whatsapp["opened"] == {D1: 1, D2: 0}
    assert selectors.volume(Params(D1, D2, agent_id=agent.pk))["closed"] == {D1: 1, D2: 0}


def test_speed(history):
    data = selectors.speed(Params(D1, D2))
    frt = data["first_response"]
    assert frt["days"][D1] == (at_most(600), at_most(600))
    assert frt["days"][D2] == (at_most(88200), at_most(88200))
    assert (frt["median"], frt["p90"]) == (at_most(600), at_most(88200))
    assert sum(frt["histogram"]) == 2
    assert data["resolution"]["days"][D1] == (at_most(7200), at_most(7200))
    assert data["resolution"]["days"][D2] == (None, None)


def test_agents_flows_and_busiest_hours(history, agent, other_agent):
    rows = {row["agent_id"]: row for row in selectors.agents(Params(D1, D2))}
    assert rows[agent.pk] | {} == {
        "agent_id": agent.pk,
        "assigned": 0,
        "replies": 1,
        "closed": 1,
        "first_response_median": at_most(600),
        "csat_average": None,
        "csat_count": 0,
    }
    assert (rows[other_agent.pk]["assigned"], rows[other_agent.pk]["replies"]) == (1, 1)
    assert selectors.agents(Params(D1, D2), only=agent.pk)[0]["agent_id"] == agent.pk
    assert len(selectors.agents(Params(D1, D2), only=agent.pk)) == 1
    runs = selectors.flows(Params(D1, D2))["runs"]
    assert runs == {"started": 1, "handed_off": 1, "closed": 0, "completed": 0, "abandoned": 0}
    grid = selectors.busiest_hours(Params(D1, D2))
    assert (grid[0][9], grid[0][10], grid[1][14], sum(map(sum, grid))) == (1, 1, 1, 3)


def _rollups() -> set:
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT day, hour, channel, agent_id, tag_id, metric, sum(n) FROM (
                   SELECT * FROM reports_rollup UNION ALL SELECT * FROM reports_delta) r
               GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(n) <> 0"""
        )
        return set(cursor.fetchall())


def test_rebuilt_equals_incremental(history):
    from conversations import services

    services.conversation_tag_add(conversation=history["c3"], tag="vip")
    services.conversation_tag_remove(conversation=history["c2"], tag="billing")
    rollup.compact()
    incremental = _rollups()
    assert incremental
    rollup.rebuild("UTC")
    assert _rollups() == incremental


def test_days_follow_the_business_time_zone(history):
    # UTC+13 in March: D1 09:00 UTC is D1 22:00 there, D2 14:00 UTC is D3 03:00.
    rollup.rebuild("Pacific/Auckland")
    d3 = D2 + timedelta(1)
    assert selectors.volume(Params(D1, d3))["opened"] == {D1: 2, D2: 0, d3: 2}


def test_page_shows_the_figures(history, staff_client, django_assert_max_num_queries):
    with django_assert_max_num_queries(25):
        response = staff_client.get(f"/reports/?{RANGE}")
    html = response.content.decode()
    assert '<th scope="row">2025-03-03</th><td>2</td><td>1</td>' in html
    assert (
        '<th scope="row">2025-03-04</th><td>0</td><td>2</td><td>1</td><td>0</td><td>1</td>' in html
    )
    assert "<svg" in html and "<title>2025-03-03: Opened 2 </title>" not in html
    assert "alice" in html.lower() and "bob" in html.lower()
    assert "<script" not in html.split("</header>")[-1]


def test_plain_agent_sees_their_own_row(history, agent_client):
    html = agent_client.get(f"/reports/?{RANGE}").content.decode()
    agents_table = html.split('id="table-agents"')[1].split("</table>")[0]
    assert "Alice" in agents_table and "Bob" not in agents_table


def test_csv_export(history, staff_client):
    response = staff_client.get(f"/reports/?{RANGE}&export=opened-closed")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows == [["Day", "Opened", "Closed"], ["2025-03-03", "2", "1"], ["2025-03-04", "2", "0"]]


def test_the_agent_filter_reads_that_agents_rows_only(history, agent, other_agent, staff_client):
    """The per-agent table of one agent reads that agent's rollup rows, not every
    agent's (a large team's 30 days are ~100,000 rows)."""
    rows = selectors.agents(Params(D1, D2, agent_id=agent.pk))
    assert [row["agent_id"] for row in rows] == [agent.pk]
    assert (rows[0]["replies"], rows[0]["closed"]) == (1, 1)
    with CaptureQueriesContext(connection) as queries:
        selectors.agents(Params(D1, D2, agent_id=agent.pk))
    assert not any("agent_id >= 1" in q["sql"] for q in queries.captured_queries)
    html = staff_client.get(f"/reports/?{RANGE}&agent={agent.pk}").content.decode()
    agents_table = html.split('id="table-agents"')[1].split("</table>")[0]
    assert "Alice" in agents_table and "Bob" not in agents_table


def test_a_csv_export_builds_its_own_report_only(history, staff_client):
    with CaptureQueriesContext(connection) as everything:
        assert staff_client.get(f"/reports/?{RANGE}").status_code == 200
    with CaptureQueriesContext(connection) as export:
        response = staff_client.get(f"/reports/?{RANGE}&export=agents")
    assert response["Content-Type"].startswith("text/csv")
    assert "reports_rollup" in " ".join(q["sql"] for q in export.captured_queries)
    assert len(export.captured_queries) < len(everything.captured_queries) - 3
    # An id that names no report: the page, not an empty one.
    page = staff_client.get(f"/reports/?{RANGE}&export=nothing")
    assert page["Content-Type"].startswith("text/html") and 'id="table-agents"' in page.text


def test_bad_range_is_a_message_not_a_500(staff_client):
    response = staff_client.get("/reports/?range=custom&start=2025-03-05&end=2025-03-01")
    assert response.status_code == 400
    assert "ends before it starts" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_api_gives_the_same_figures(live_server, agent, other_agent, staff):
    make(agent, other_agent)
    api = ApiClient(live_server.url, token_create(user=staff)[1])
    volume = api.get(f"/reports/volume?{RANGE}")
    assert volume.status == 200
    assert volume.body["opened_closed"] == [
        {"day": "2025-03-03", "opened": 2, "closed": 1},
        {"day": "2025-03-04", "opened": 2, "closed": 0},
    ]
    assert volume.body["statuses_at_end_of_day"][1]["in_progress"] == 1
    speed = api.get(f"/reports/speed?{RANGE}").body
    assert speed["first_response"]["median_seconds"] == at_most(600)
    assert speed["resolution"]["days"][0]["median_seconds"] == at_most(7200)
    people = {row["agent_id"]: row for row in api.get(f"/reports/agents?{RANGE}").body["agents"]}
    assert people[agent.pk]["closed"] == 1 and people[other_agent.pk]["assigned"] == 1
    bad = api.get("/reports/volume?range=custom&start=2025-03-05&end=2025-03-01")
    assert (bad.status, bad.error) == (422, "invalid_input")
    assert api.get("/reports/volume?colour=red").error == "invalid_request"
    assert ALL_CHANNELS == "*" and ANY_TAG == 0


def test_csat_and_resolution_count_at_resolved(history, agent, other_agent):
    from conversations import services
    from conversations.transitions import Status
    from tests.factories import inbox_settings_set

    from .history import at

    inbox_settings_set(csat_enabled=True)
    with at(D2, 14, 30):
        services.conversation_reply(conversation=history["c3"], agent=agent, text="there")
    with at(D2, 15, 30):
        services.conversation_close(conversation=history["c3"], actor=agent)  # resolved
    with at(D2, 16):
        c5 = services.message_receive(channel="web", external_id="e", text="hi").conversation
        services.conversation_reply(conversation=c5, agent=other_agent, text="yes")
        services.conversation_close(conversation=c5, actor=other_agent)
    with at(D2 + timedelta(1), 9):  # answers the next day: dated by the resolution
        services.message_receive(channel="web", external_id="c", text="4")
        services.message_receive(channel="web", external_id="e", text="2")
    c3 = Conversation.objects.get(pk=history["c3"].pk)
    assert (c3.status, c3.rating, c3.resolution_seconds) == (Status.CLOSED, 4, 5400)

    assert selectors.csat_by_agent(Params(D1, D2)) == {agent.pk: (4.0, 1), other_agent.pk: (2.0, 1)}
    assert selectors.csat_by_agent(Params(D1, D1)) == {}
    rows = {row["agent_id"]: row for row in selectors.agents(Params(D1, D2))}
    # Resolved, then closed by the answer: one close, at the resolution.
    assert (rows[agent.pk]["closed"], rows[agent.pk]["csat_average"]) == (2, 4.0)
    assert (rows[other_agent.pk]["closed"], rows[other_agent.pk]["csat_count"]) == (1, 1)
    assert selectors.volume(Params(D2, D2))["closed"][15] == 1
    assert sum(selectors.speed(Params(D2, D2))["resolution"]["histogram"]) == 2
    rollup.compact()
    incremental = _rollups()
    rollup.rebuild("UTC")
    assert _rollups() == incremental


def test_per_agent_figures_are_not_split_by_tag(history, staff_client, agent):
    billing = history["c2"].tags.get().pk
    assert selectors.agents(Params(D1, D2, tag_id=billing)) == selectors.agents(Params(D1, D2))
    page = staff_client.get(f"/reports/?{RANGE}&tag={billing}")
    assert "per agent, the figures are not split by tag" in page.content.decode()
    page = staff_client.get(f"/reports/?{RANGE}&tag={billing}&agent={agent.pk}")
    assert "Choose a tag or an agent" in page.content.decode()


@pytest.mark.parametrize(
    ("query", "selected"),
    [("", "7d"), ("?channel=web", "7d"), ("?start=2025-03-03&end=2025-03-04", "custom")],
)
def test_the_range_in_force_is_the_one_shown_selected(staff_client, query, selected):
    """Without a range the figures are the last 7 days: the select says so (it showed
    its first choice, "Today", and the next Show then asked for today)."""
    html = staff_client.get(f"/reports/{query}").content.decode()
    select = html.split('name="range"')[1].split("</select>")[0]
    assert re.findall(r'<option value="(\w+)"[^>]*selected', select) == [selected]


def test_an_unknown_range_is_a_message_not_a_500(staff_client):
    response = staff_client.get("/reports/?range=fortnight")
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_broadcasts_new_conversations_are_counted_as_they_are_rebuilt():
    """A broadcast writes its new conversations behind their history lines: they are
    opened and In a flow in the rollups as in a rebuild (they were missing)."""
    for _ in range(3):  # contacts whose last conversation is over: a new one opens
        conversation_in(Status.CLOSED)
    flow = make_flow(("ask", "Your order number?", "order"))
    rollup.compact()
    before = _rollups()
    broadcast = broadcast_create(flow=flow, segment=Segment.ALL, enqueue=False)
    broadcast_execute(broadcast_id=broadcast.pk)
    assert Conversation.objects.filter(status=Status.IN_FLOW).count() == 3

    rollup.compact()
    incremental = _rollups()

    def total(rows, metric):
        return sum(row[-1] for row in rows if row[2:6] == ("*", -1, 0, metric))

    assert total(incremental, "opened") - total(before, "opened") == 3
    assert total(incremental, "status:in_flow") == 3
    rollup.rebuild("UTC")
    assert _rollups() == incremental
