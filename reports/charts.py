"""Charts drawn on the server as SVG: no script, a ``<title>`` on every mark for the
hover value, a title, axes with units and a legend. Each chart's numbers are also
shown as a table (the template), which is what screen readers read.

The colours reach at least 4.5:1 against white (WCAG AA for text, so for marks).
"""

import math

from django.utils.html import format_html
from django.utils.safestring import mark_safe

PALETTE = ["#1d4ed8", "#b91c1c", "#047857", "#7c3aed", "#b45309", "#0e7490", "#be185d", "#374151"]
WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 16, 40


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _frame(title_id: str, title: str, unit: str, labels: list[str], top: float, fmt) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        format_html(
            '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-labelledby="{}">'
            '<title id="{}">{}</title>',
            WIDTH,
            HEIGHT,
            title_id,
            title_id,
            title,
        )
    ]
    for i in range(5):
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
                LEFT,
                WIDTH - RIGHT,
                round(y, 1),
                round(y, 1),
                LEFT - 6,
                round(y + 4, 1),
                fmt(value),
            )
        )
    parts.append(
        format_html(
            '<text class="unit" x="4" y="{}" transform="rotate(-90 4 {})" dy="10">{}</text>',
            TOP + plot_h / 2,
            TOP + plot_h / 2,
            unit,
        )
    )
    band = plot_w / max(len(labels), 1)
    every = max(1, math.ceil(len(labels) / 12))
    for i, label in enumerate(labels):
        if i % every == 0:
            parts.append(
                format_html(
                    '<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>',
                    round(LEFT + band * (i + 0.5), 1),
                    HEIGHT - BOTTOM + 16,
                    label,
                )
            )
    parts.append(
        format_html(
            '<line class="axis" x1="{}" x2="{}" y1="{}" y2="{}"/>',
            LEFT,
            WIDTH - RIGHT,
            TOP + plot_h,
            TOP + plot_h,
        )
    )
    return parts


def _count(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def bars(title_id, title, unit, labels, series, *, stacked=True, fmt=_count) -> str:
    """``series``: [(name, [value per label])]; stacked or side by side."""
    plot_h = HEIGHT - TOP - BOTTOM
    plot_w = WIDTH - LEFT - RIGHT
    if stacked:
        peak = max([sum(s[1][i] for s in series) for i in range(len(labels))] or [0])
    else:
        peak = max([v for s in series for v in s[1]] or [0])
    top = _nice_max(peak)
    parts = _frame(title_id, title, unit, labels, top, fmt)
    band = plot_w / max(len(labels), 1)
    for i, label in enumerate(labels):
        base = 0
        for k, (name, values) in enumerate(series):
            value = values[i]
            h = plot_h * value / top
            if stacked:
                x, w, y = LEFT + band * i + band * 0.15, band * 0.7, TOP + plot_h - base - h
                base += h
            else:
                w = band * 0.8 / len(series)
                x, y = LEFT + band * i + band * 0.1 + w * k, TOP + plot_h - h
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}">'
                    "<title>{}: {} {}</title></rect>",
                    round(x, 1),
                    round(y, 1),
                    round(w, 1),
                    round(h, 1),
                    PALETTE[k % len(PALETTE)],
                    label,
                    name,
                    fmt(value),
                )
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every part is format_html


def lines(title_id, title, unit, labels, series, *, fmt=_count) -> str:
    """``series``: [(name, [value or None per label])]."""
    plot_h = HEIGHT - TOP - BOTTOM
    plot_w = WIDTH - LEFT - RIGHT
    top = _nice_max(max([v for s in series for v in s[1] if v is not None] or [0]))
    parts = _frame(title_id, title, unit, labels, top, fmt)
    band = plot_w / max(len(labels), 1)
    for k, (name, values) in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        points = [
            (LEFT + band * (i + 0.5), TOP + plot_h - plot_h * v / top, labels[i], v)
            for i, v in enumerate(values)
            if v is not None
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, *_ in points)
        parts.append(format_html('<polyline points="{}" fill="none" stroke="{}"/>', path, colour))
        for x, y, label, v in points:
            parts.append(
                format_html(
                    '<circle cx="{}" cy="{}" r="3.5" fill="{}"><title>{}: {} {}</title></circle>',
                    round(x, 1),
                    round(y, 1),
                    colour,
                    label,
                    name,
                    fmt(v),
                )
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every part is format_html


def heatmap(title_id, title, rows, row_labels, col_labels) -> str:
    """A grid of counts, darker for more (the table lists the numbers)."""
    cell_w, cell_h, left, top_pad = 26, 24, 48, 8
    peak = max([v for row in rows for v in row] or [0]) or 1
    width = left + cell_w * len(col_labels) + 8
    height = top_pad + cell_h * len(rows) + 24
    parts = [
        format_html(
            '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-labelledby="{}">'
            '<title id="{}">{}</title>',
            width,
            height,
            title_id,
            title_id,
            title,
        )
    ]
    for r, row in enumerate(rows):
        y = top_pad + cell_h * r
        parts.append(
            format_html(
                '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
                left - 6,
                y + 16,
                row_labels[r],
            )
        )
        for c, value in enumerate(row):
            # From light grey to the palette's blue (#1d4ed8) by share of the peak.
            share = value / peak
            fill = "#f3f4f6" if not value else _mix(share)
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}" class="cell">'
                    "<title>{} {}: {} inbound messages</title></rect>",
                    left + cell_w * c,
                    y,
                    cell_w - 2,
                    cell_h - 2,
                    fill,
                    row_labels[r],
                    col_labels[c],
                    f"{value:,}",
                )
            )
    for c, label in enumerate(col_labels):
        if c % 3 == 0:
            parts.append(
                format_html(
                    '<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>',
                    left + cell_w * c + cell_w / 2,
                    height - 6,
                    label,
                )
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every part is format_html


def _mix(share: float) -> str:
    low, high = (219, 234, 254), (29, 78, 216)
    rgb = [round(a + (b - a) * share) for a, b in zip(low, high, strict=True)]
    return "#" + "".join(f"{v:02x}" for v in rgb)
