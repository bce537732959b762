"""The last-activity dates (issue 12.4): no date a URL can carry answers a 500, on the
list page, its htmx partial, the pane opened as a page, or a bulk action on "all
matching". A date the form accepts (years 1 to 9999) filters; anything else is a
clear filter error. The fix is in the FilterSet, so every user of it is safe."""

import pytest
from django.http import QueryDict

from conversations.models import Conversation
from conversations.transitions import Status
from inbox.filters import ConversationFilter
from tests.factories import conversation_in

from .conftest import hx, ids_in, refresh
from .test_bulk import BULK, result

pytestmark = pytest.mark.django_db

ZONES = ["UTC", "Pacific/Kiritimati", "Etc/GMT+12", "Asia/Tokyo", "America/St_Johns"]

# (query, every conversation listed?) for dates the form accepts.
ACCEPTED = [
    ("active_to=9999-12-31", True),
    ("active_to=9999-12-30", True),
    ("active_from=0001-01-01", True),
    ("active_from=0001-01-01&active_to=9999-12-31", True),
    ("active_from=9999-12-31", False),
    ("active_from=9999-12-31&active_to=9999-12-31", False),
    ("active_to=0001-01-01", False),
    ("active_from=0001-01-01&active_to=0001-01-01", False),
]
# (query, the error shown) for dates it does not.
REFUSED = [
    ("active_from=0000-01-01", "Active from: Enter a valid date."),
    ("active_to=10000-01-01", "Active until: Enter a valid date."),
    ("active_to=99999-12-31", "Active until: Enter a valid date."),
    ("active_to=" + "9" * 40, "Active until: Enter a valid date."),
    ("active_from=-0001-01-01", "Active from: Enter a valid date."),
    ("active_from=2024-13-01", "Active from: Enter a valid date."),
    ("active_to=2024-02-30", "Active until: Enter a valid date."),
    ("active_to=yesterday", "Active until: Enter a valid date."),
    ("active_to=2024-01-01T00:00:00%2B14:00", "Active until: Enter a valid date."),
    ("active_to=2024-01-01%00", "Active until: Enter a valid date."),
    ("active_from=9999-12-31&active_to=0001-01-01", "The end date is before the start date."),
]


@pytest.fixture
def rows(agent):
    # Both in the default view (open; unassigned or assigned to the agent).
    return [
        conversation_in(Status.NEW, agent=agent),
        conversation_in(Status.IN_PROGRESS, agent=agent),
    ]


def _expected(rows, everything: bool) -> set[int]:
    return {c.pk for c in rows} if everything else set()


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(("query", "everything"), ACCEPTED)
def test_accepted_dates_filter_on_every_page_in_every_zone(
    agent_client, rows, settings, zone, query, everything
):
    settings.TIME_ZONE = zone
    expected = _expected(rows, everything)

    page = agent_client.get(f"/inbox/?{query}")
    assert page.status_code == 200
    assert set(ids_in(page)) == expected

    partial = agent_client.get(f"/inbox/?{query}", headers=hx())
    assert partial.status_code == 200
    assert set(ids_in(partial)) == expected

    pane = agent_client.get(f"/inbox/c/{rows[0].pk}/?{query}")
    assert pane.status_code == 200
    assert set(ids_in(pane)) == expected
    assert 'id="conversation-pane"' in pane.text


@pytest.mark.parametrize(("query", "error"), REFUSED)
def test_other_dates_are_a_filter_error_never_a_500(agent_client, rows, query, error):
    page = agent_client.get(f"/inbox/?{query}")
    assert page.status_code == 400
    assert error in page.text
    assert ids_in(page) == []

    partial = agent_client.get(f"/inbox/?{query}", headers=hx())
    assert partial.status_code == 200
    assert error in partial.text

    pane = agent_client.get(f"/inbox/c/{rows[0].pk}/?{query}")
    assert pane.status_code == 200
    assert error in pane.text
    assert 'id="conversation-pane"' in pane.text


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "Etc/GMT+12"])
@pytest.mark.parametrize(("query", "everything"), ACCEPTED)
def test_bulk_on_all_matching_with_extreme_dates(
    agent_client, rows, settings, zone, query, everything
):
    settings.TIME_ZONE = zone
    filters = QueryDict(query).urlencode()
    response = agent_client.post(
        "/inbox/bulk/", {"action": "close", "scope": "all", "filters": filters}, headers=BULK
    )
    assert response.status_code == 200
    if everything:
        assert result(response) == "success: 2 closed."
        assert {refresh(c).status for c in rows} == {Status.CLOSED}
    else:
        assert result(response) == "error: No conversations match the filter."
        assert {refresh(c).status for c in rows} == {Status.NEW, Status.IN_PROGRESS}


@pytest.mark.parametrize(("query", "error"), REFUSED)
def test_bulk_on_all_matching_refuses_other_dates(agent_client, rows, query, error):
    filters = QueryDict(query).urlencode()
    response = agent_client.post(
        "/inbox/bulk/", {"action": "close", "scope": "all", "filters": filters}, headers=BULK
    )
    assert response.status_code == 200
    assert result(response).startswith("error: The filter is not valid:")
    assert error in result(response)
    assert {refresh(c).status for c in rows} == {Status.NEW, Status.IN_PROGRESS}


@pytest.mark.parametrize("zone", ZONES)
def test_the_filterset_itself_never_raises(rows, settings, zone):
    """What the API's list (moving onto this FilterSet) will see."""
    settings.TIME_ZONE = zone
    for query, everything in ACCEPTED:
        filterset = ConversationFilter(QueryDict(query), queryset=Conversation.objects.all())
        assert filterset.is_valid(), query
        assert set(filterset.qs.values_list("pk", flat=True)) == _expected(rows, everything)
    for query, _ in REFUSED:
        filterset = ConversationFilter(QueryDict(query), queryset=Conversation.objects.all())
        assert not filterset.is_valid(), query
