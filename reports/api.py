"""``GET /api/v1/reports/{volume,speed,agents}``: the Reports page's numbers as JSON,
with the page's parameters (``range``, ``start``, ``end``, ``channel``, ``tag`` id,
``agent`` id). Times are seconds, each the upper edge of its bucket (``-1``: over
a week)."""

from datetime import date
from typing import Literal

from ninja import Query, Router, Schema

from conversations.exceptions import InvalidInput
from conversations.schemas import ErrorOut

from . import selectors
from .forms import ReportForm
from .rollup import EDGES

router = Router(tags=["reports"])
RESPONSES = {200: dict, 401: ErrorOut, 422: ErrorOut}


class ReportQuery(Schema):
    range: Literal["today", "7d", "30d", "month", "custom"] | None = None
    start: date | None = None
    end: date | None = None
    channel: str | None = None
    tag: int | None = None
    agent: int | None = None


def _params(request) -> selectors.Params:
    unknown = sorted(set(request.GET) - set(ReportQuery.model_fields))
    if unknown:
        raise InvalidInput(f"Unknown parameter {unknown[0]!r}.", code="invalid_request")
    form = ReportForm(request.GET, user=request.auth)
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        prefix = "" if field == "__all__" else f"{field}: "
        raise InvalidInput(prefix + errors[0])
    return form.params()


def _range(params) -> dict:
    return {"start": params.start, "end": params.end}


@router.get(
    "/reports/volume",
    url_name="reports_volume",
    response=RESPONSES,
    summary="Conversations opened, closed, by status",
)
def volume(request, query: Query[ReportQuery]):
    """Opened and closed per day (per hour when `start` = `end`) and the number of
    conversations in each status at the end of each day."""
    params = _params(request)
    data = selectors.volume(params)
    key = "hour" if params.hourly else "day"
    return {
        **_range(params),
        "per": key,
        "opened_closed": [
            {key: slot, "opened": data["opened"][slot], "closed": data["closed"][slot]}
            for slot in data["slots"]
        ],
        "statuses_at_end_of_day": [
            {"day": day, **counts} for day, counts in data["at_end"].items()
        ],
    }


@router.get(
    "/reports/speed",
    url_name="reports_speed",
    response=RESPONSES,
    summary="First response and resolution times",
)
def speed(request, query: Query[ReportQuery]):
    """Median and 90th percentile per day and over the range, and the distribution."""
    params = _params(request)
    bounds = [0, *EDGES, None]
    out = _range(params)
    for name, figure in selectors.speed(params).items():
        out[name] = {
            "median_seconds": figure["median"],
            "p90_seconds": figure["p90"],
            "days": [
                {"day": day, "median_seconds": median, "p90_seconds": p90}
                for day, (median, p90) in figure["days"].items()
            ],
            "histogram": [
                {"from_seconds": bounds[i], "to_seconds": bounds[i + 1], "conversations": n}
                for i, n in enumerate(figure["histogram"])
            ],
        }
    return out


@router.get(
    "/reports/agents",
    url_name="reports_agents",
    response=RESPONSES,
    summary="Load and outcome per agent",
)
def agents(request, query: Query[ReportQuery]):
    """Per agent: open conversations assigned now, replies sent, conversations closed,
    median first response, CSAT where it exists. A non-staff token sees its own row."""
    params = _params(request)
    only = None if request.auth.is_staff else request.auth.pk
    return {**_range(params), "agents": selectors.agents(params, only=only)}
