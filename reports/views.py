"""The Reports page: a GET form (range and filters in the URL), each report as an
SVG chart with a table of the same numbers, and each table as CSV (``?export=``).

Who sees what: every agent reads the team's figures; the per-agent table shows a
staff user every agent and a plain agent their own row only (docs/decisions.md).
"""

import csv
import itertools
from dataclasses import dataclass, field
from html import escape

from django.http import HttpResponse
from django.shortcuts import render
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from flows.decorators import agent_required
from inbox import choices

from . import charts, selectors
from .forms import ReportForm
from .models import ANY_TAG

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


@dataclass
class Report:
    id: str
    title: str
    headers: list[str]
    rows: list[list]
    svg: str = ""
    legend: list[str] = field(default_factory=list)
    note: str = ""

    def body(self) -> str:
        """The table's rows as HTML, built here: a template loop over every cell of a
        large team's table costs more than all the report's queries."""
        if not self.rows:
            return format_html(
                '<tr><td colspan="{}">Nothing in this range.</td></tr>', len(self.headers)
            )
        return mark_safe(  # noqa: S308 (every cell escaped)
            "".join(
                f'<tr><th scope="row">{escape(str(first))}</th>'
                + "".join(f"<td>{escape(str(cell))}</td>" for cell in rest)
                + "</tr>"
                for first, *rest in self.rows
            )
        )


def duration(seconds: int | None) -> str:
    """A percentile as the bucket edge it is: "≤ 15 min", "> 7 d", "—"."""
    if seconds is None:
        return "—"
    if seconds == -1:
        return "> 7 d"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"≤ {seconds / size:g} {unit}"
    return f"≤ {seconds} s"


def _minutes(seconds):
    if seconds is None:
        return None
    return (seconds if seconds != -1 else 604800) / 60


def volume_reports(params, user) -> list[Report]:
    reports = []
    vol = selectors.volume(params)
    slot_labels = [f"{s:02d}:00" if params.hourly else s.isoformat() for s in vol["slots"]]
    per = "hour" if params.hourly else "day"
    flow_rows = [
        [label, vol["opened"][s], vol["closed"][s]]
        for label, s in zip(slot_labels, vol["slots"], strict=True)
    ]
    reports.append(
        Report(
            "opened-closed",
            f"Conversations opened and closed per {per}",
            [per.capitalize(), "Opened", "Closed"],
            flow_rows,
            charts.bars(
                "opened-closed-title",
                f"Conversations opened and closed per {per}",
                "conversations",
                slot_labels,
                [("Opened", [r[1] for r in flow_rows]), ("Closed", [r[2] for r in flow_rows])],
                stacked=False,
            ),
            ["Opened", "Closed"],
        )
    )
    statuses = selectors.statuses()
    days = [d.isoformat() for d in params.days]
    status_rows = [
        [day.isoformat(), *(vol["at_end"][day][s] for s, _ in statuses)] for day in params.days
    ]
    reports.append(
        Report(
            "statuses",
            "Conversations in each status at the end of each day",
            ["Day", *(label for _, label in statuses)],
            status_rows,
            charts.bars(
                "statuses-title",
                "Conversations in each status at the end of each day",
                "conversations",
                days,
                [(label, [r[i + 1] for r in status_rows]) for i, (_, label) in enumerate(statuses)],
            ),
            [label for _, label in statuses],
            "Counts every conversation of the channel and tag; the agent filter does not apply.",
        )
    )
    return reports


def speed_reports(params, user) -> list[Report]:
    reports, days = [], [d.isoformat() for d in params.days]
    spd = selectors.speed(params)
    for key, name in (("first_response", "First response"), ("resolution", "Resolution")):
        figure = spd[key]
        rows = [
            [day.isoformat(), duration(figure["days"][day][0]), duration(figure["days"][day][1])]
            for day in params.days
        ]
        reports.append(
            Report(
                f"{key.replace('_', '-')}-time",
                f"{name} time per day: median and 90th percentile",
                ["Day", "Median", "90th percentile"],
                rows,
                charts.lines(
                    f"{key}-title",
                    f"{name} time per day (minutes, at most)",
                    "minutes",
                    days,
                    [
                        ("Median", [_minutes(figure["days"][d][0]) for d in params.days]),
                        ("90th percentile", [_minutes(figure["days"][d][1]) for d in params.days]),
                    ],
                ),
                ["Median", "90th percentile"],
                f"Over the range: median {duration(figure['median'])}, "
                f"90th percentile {duration(figure['p90'])}.",
            )
        )
        buckets = bucket_labels()
        reports.append(
            Report(
                f"{key.replace('_', '-')}-distribution",
                f"{name} time: distribution",
                ["Time", "Conversations"],
                [[b, n] for b, n in zip(buckets, figure["histogram"], strict=True)],
                charts.bars(
                    f"{key}-dist-title",
                    f"{name} time: how many conversations in each band",
                    "conversations",
                    buckets,
                    [("Conversations", figure["histogram"])],
                ),
            )
        )
    return reports


def agent_reports(params, user) -> list[Report]:
    only = None if user.is_staff else user.pk
    people = selectors.agents(params, only=only)
    labels = choices.user_labels([p["agent_id"] for p in people])
    return [
        Report(
            "agents",
            "Load and outcome per agent",
            [
                "Agent",
                "Assigned now (open)",
                "Replies sent",
                "Closed",
                "Median first response",
                "CSAT average",
                "CSAT answers",
            ],
            [
                [
                    labels.get(p["agent_id"], f"#{p['agent_id']}"),
                    p["assigned"],
                    p["replies"],
                    p["closed"],
                    duration(p["first_response_median"]),
                    "—" if p["csat_average"] is None else f"{p['csat_average']:.2f}",
                    p["csat_count"],
                ]
                for p in people
            ],
            note=" ".join(
                filter(
                    None,
                    [
                        "" if user.is_staff else "You see your own row; staff see every agent.",
                        ""
                        if params.tag_id == ANY_TAG
                        else "Every tag counts here: per agent, the figures are not split by tag.",
                    ],
                )
            ),
        )
    ]


def flow_reports(params, user) -> list[Report]:
    fl = selectors.flows(params)
    return [
        Report(
            "flows",
            "Flow runs and broadcasts",
            ["What", "Count"],
            [[label, fl["runs"][name]] for name, label in selectors.FLOW_METRICS]
            + [
                ["Broadcasts created", fl["broadcasts"]["broadcasts"]],
                ["Broadcast messages sent", fl["broadcasts"]["sent"]],
                ["Broadcast contacts skipped", fl["broadcasts"]["skipped"]],
                ["Broadcast contacts failed", fl["broadcasts"]["failed"]],
            ],
            charts.bars(
                "flows-title",
                "Flow runs by how they went",
                "runs",
                [label.split(" (")[0] for _, label in selectors.FLOW_METRICS],
                [("Runs", [fl["runs"][name] for name, _ in selectors.FLOW_METRICS])],
            ),
        )
    ]


def busiest_reports(params, user) -> list[Report]:
    grid = selectors.busiest_hours(params)
    hours = [f"{h:02d}" for h in range(24)]
    return [
        Report(
            "busiest-hours",
            "Busiest hours: inbound messages by weekday and hour",
            ["Weekday", *hours],
            [[WEEKDAYS[d], *grid[d]] for d in range(7)],
            charts.heatmap(
                "busiest-title",
                "Inbound messages by weekday and hour (darker = more)",
                grid,
                WEEKDAYS,
                hours,
            ),
        )
    ]


# The reports in page order, by the selector each group reads once; a CSV export
# builds its own group only.
GROUPS = (
    (("opened-closed", "statuses"), volume_reports),
    (
        (
            "first-response-time",
            "first-response-distribution",
            "resolution-time",
            "resolution-distribution",
        ),
        speed_reports,
    ),
    (("agents",), agent_reports),
    (("flows",), flow_reports),
    (("busiest-hours",), busiest_reports),
)


def build(params, user, *, only: str | None = None) -> list[Report]:
    """Every report for ``params`` as seen by ``user`` (``only``: the group of the
    report with that id)."""
    return [
        report
        for ids, make in GROUPS
        if only is None or only in ids
        for report in make(params, user)
    ]


def bucket_labels() -> list[str]:
    edges = [0, *selectors.EDGES]
    labels = [
        f"{duration(lo)[2:] if lo else '0'}–{duration(hi)[2:]}"
        for lo, hi in itertools.pairwise(edges)
    ]
    return [*labels, f"over {duration(edges[-1])[2:]}"]


@agent_required
@require_GET
def index(request):
    form = ReportForm(request.GET, user=request.user)
    export = request.GET.get("export")
    export = export if any(export in ids for ids, _ in GROUPS) else None
    reports = build(form.params(), request.user, only=export) if form.is_valid() else []
    for report in reports if export else ():
        if report.id == export:
            return _csv(report)
    query = request.GET.copy()
    query.pop("export", None)
    return render(
        request,
        "reports/index.html",
        {"form": form, "reports": reports, "query": query.urlencode()},
        status=200 if form.is_valid() else 400,
    )


def _csv(report: Report) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="parley-{report.id}.csv"'
    writer = csv.writer(response)
    writer.writerow(report.headers)
    writer.writerows(report.rows)
    return response
