"""The reports' numbers, read from the rollups (``models``): a few small indexed
aggregates per report, whatever the size of the history."""

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, timedelta

from django.db import connection
from django.db.models import Count, Sum

from conversations.models import Conversation
from conversations.transitions import STATUS_CHOICES, Status
from flows.models import Broadcast

from .models import ALL_AGENTS, ALL_CHANNELS, ANY_TAG
from .rollup import EDGES

FLOW_METRICS = [
    ("started", "Runs started"),
    ("handed_off", "Handed off to an agent"),
    ("closed", "Closed by the flow"),
    ("completed", "Completed"),
    ("abandoned", "Abandoned (an agent took over or closed)"),
]


@dataclass(frozen=True)
class Params:
    start: date
    end: date
    channel: str = ALL_CHANNELS
    tag_id: int = ANY_TAG
    agent_id: int = ALL_AGENTS

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(n) for n in range((self.end - self.start).days + 1)]

    @property
    def hourly(self) -> bool:
        return self.start == self.end


def statuses() -> list[tuple[str, str]]:
    """Every status of the model's choices: a status added there shows up here."""
    return list(STATUS_CHOICES)


def _sums(params: Params, patterns: list[str], *, start=None, end=None, agents=False):
    """{(day, hour, metric, agent): n} for the metrics LIKE ``patterns`` between
    ``start`` and ``end`` (default: the range), rollup and pending deltas added;
    with ``agents``, each agent's totals over the range (day and hour None): every
    agent's, or only ``params.agent_id``'s when one is chosen."""
    every_agent = agents and params.agent_id == ALL_AGENTS
    agent = "agent_id >= 1" if every_agent else "agent_id = %(agent)s"
    match = "LIKE" if any("%" in p for p in patterns) else "="
    keys = "NULL::date, NULL::int, metric, agent_id" if agents else "day, hour, metric, agent_id"
    part = f"""SELECT day, hour, metric, agent_id, n FROM {{table}}
        WHERE channel = %(channel)s AND tag_id = %(tag)s AND {agent}
          AND day BETWEEN %(start)s AND %(end)s AND metric {match} ANY (%(patterns)s)"""
    sql = f"""SELECT {keys}, sum(n) FROM (
        {part.format(table="reports_rollup")} UNION ALL {part.format(table="reports_delta")}
        ) r GROUP BY 1, 2, 3, 4"""
    args = {
        "channel": params.channel,
        "tag": params.tag_id,
        "agent": params.agent_id,
        "start": start or params.start,
        "end": end or params.end,
        "patterns": patterns,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, args)
        return {(d, h, m, a): int(n) for d, h, m, a, n in cursor.fetchall()}


def volume(params: Params) -> dict:
    """Opened and closed per day (per hour for one day) and the conversations in
    each status at the end of each day."""
    rows = _sums(params, ["opened", "closed", "status:%"])
    slots = list(range(24)) if params.hourly else params.days
    flow = {name: dict.fromkeys(slots, 0) for name in ("opened", "closed")}
    change = defaultdict(int)
    for (day, hour, metric, _), n in rows.items():
        if metric in flow:
            flow[metric][hour if params.hourly else day] += n
        else:
            change[day, metric[7:]] += n
    # Exact names: an index range per status (reports_rollup_metric), not every row.
    names = [f"status:{status}" for status, _ in statuses()]
    before = _sums(params, names, start=date(1, 1, 1), end=params.start - timedelta(1))
    level = defaultdict(int)
    for (_, _, metric, _), n in before.items():
        level[metric[7:]] += n
    at_end = {}
    for day in params.days:
        for status, _ in statuses():
            level[status] += change[day, status]
        at_end[day] = {status: level[status] for status, _ in statuses()}
    return {"slots": slots, "opened": flow["opened"], "closed": flow["closed"], "at_end": at_end}


def percentile(counts: list[int], q: float) -> int | None:
    """The upper edge of the bucket holding the ``q`` quantile: ``q`` of the times
    are at most this many seconds (None: no times; ``-1``: over the last edge)."""
    total = sum(counts)
    if not total:
        return None
    rank, seen = q * total, 0
    for index, n in enumerate(counts):
        seen += n
        if seen >= rank:
            return EDGES[index] if index < len(EDGES) else -1
    return -1


def _histograms(rows, prefix: str, key) -> dict:
    out = defaultdict(lambda: [0] * (len(EDGES) + 1))
    for row, n in rows.items():
        day, _, metric, agent = row
        if metric.startswith(prefix):
            out[key(day, agent)][int(metric[len(prefix) :])] += n
    return out


def speed(params: Params) -> dict:
    """First response and resolution: median and 90th percentile per day (as bucket
    edges) and the distribution over the range."""
    rows = _sums(params, ["frt:%", "res:%"])
    result = {}
    for name, prefix in (("first_response", "frt:"), ("resolution", "res:")):
        by_day = _histograms(rows, prefix, lambda day, agent: day)
        total = [sum(h[i] for h in by_day.values()) for i in range(len(EDGES) + 1)]
        result[name] = {
            "days": {
                day: (percentile(by_day[day], 0.5), percentile(by_day[day], 0.9))
                for day in params.days
            },
            "histogram": total,
            "median": percentile(total, 0.5),
            "p90": percentile(total, 0.9),
        }
    return result


def csat_by_agent(params: Params, rows=None) -> dict[int, tuple[float, int]]:
    """{agent id: (average rating, count)} of the ratings of the conversations each
    agent resolved in the range (dated by the resolution)."""
    rows = _sums(params, ["csat:%"], agents=True) if rows is None else rows
    sums = defaultdict(lambda: [0, 0])
    for (_, _, metric, agent), n in rows.items():
        if metric in ("csat:sum", "csat:n"):
            sums[agent][metric == "csat:n"] += n
    return {
        agent: (round(total / count, 2), count) for agent, (total, count) in sums.items() if count
    }


def agents(params: Params, *, only: int | None = None) -> list[dict]:
    """Per agent: open conversations assigned now, replies sent, conversations closed
    and the median first response in the range; CSAT where it exists."""
    # Per-agent rollups exist for "any tag" only: the table is not split by tag.
    # One agent (``only``, or the agent filter): that agent's rows alone are read.
    if only is None and params.agent_id != ALL_AGENTS:
        only = params.agent_id
    params = replace(params, tag_id=ANY_TAG, agent_id=ALL_AGENTS if only is None else only)
    rows = _sums(params, ["closed", "replies", "frt:%", "csat:%"], agents=True)
    totals = defaultdict(lambda: {"closed": 0, "replies": 0})
    for (_, _, metric, agent), n in rows.items():
        if metric in ("closed", "replies"):
            totals[agent][metric] += n
    frt = _histograms(rows, "frt:", lambda day, agent: agent)
    # The predicate of the index conv_open_assignee, so the count is index-only.
    assigned_rows = Conversation.objects.not_archived().exclude(status=Status.CLOSED)
    assigned_rows = assigned_rows.filter(assignee__isnull=False)
    if params.channel != ALL_CHANNELS:
        assigned_rows = assigned_rows.filter(contact__channel=params.channel)
    if only is not None:
        assigned_rows = assigned_rows.filter(assignee_id=only)
    assigned = dict(assigned_rows.values_list("assignee_id").annotate(n=Count("*")).order_by())
    csat = csat_by_agent(params, rows)
    ids = sorted(set(totals) | set(assigned) | set(frt))
    return [
        {
            "agent_id": pk,
            "assigned": assigned.get(pk, 0),
            "replies": totals[pk]["replies"],
            "closed": totals[pk]["closed"],
            "first_response_median": percentile(frt[pk], 0.5) if pk in frt else None,
            "csat_average": csat.get(pk, (None, 0))[0],
            "csat_count": csat.get(pk, (None, 0))[1],
        }
        for pk in ids
    ]


def flows(params: Params) -> dict:
    """Flow runs by how they went, and the broadcasts created in the range."""
    rows = _sums(params, ["flow:%"])
    runs = dict.fromkeys((name for name, _ in FLOW_METRICS), 0)
    for (_, _, metric, _), n in rows.items():
        runs[metric[5:]] += n
    made = Broadcast.objects.filter(
        created_at__date__gte=params.start, created_at__date__lte=params.end
    )
    sent = made.aggregate(
        broadcasts=Count("id"), sent=Sum("sent"), skipped=Sum("skipped"), failed=Sum("failed")
    )
    return {"runs": runs, "broadcasts": {k: v or 0 for k, v in sent.items()}}


def busiest_hours(params: Params) -> list[list[int]]:
    """Inbound messages by weekday (Monday first) and hour."""
    grid = [[0] * 24 for _ in range(7)]
    for (day, hour, _, _), n in _sums(params, ["inbound"]).items():
        grid[day.weekday()][hour] += n
    return grid
