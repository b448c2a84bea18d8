"""The HTML run report: a self-contained page (inline CSS and SVG charts, no network needed).

Chart geometry is computed here, so the template only places rectangles: open findings by
rule, by owner and by partner, and close-date pushes per month. A few lines of inline script
check in the browser that every bar was laid out (``data-drawn``), which the Chromium test reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import jinja2

#: Bars shown in a ranking chart; the rest are summed into one "others" bar.
TOP = 15
BAR_HEIGHT = 18
BAR_GAP = 6
LABEL_WIDTH = 280
PLOT_WIDTH = 420
COLUMN_WIDTH = 26
COLUMN_GAP = 8
PLOT_HEIGHT = 180


@attrs.frozen
class Bar:
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float
    css: str = "bar"
    note: str = ""


@attrs.frozen
class Chart:
    id: str
    title: str
    caption: str
    width: int
    height: int
    bars: tuple[Bar, ...]
    horizontal: bool = True
    axis: tuple[tuple[str, float], ...] = ()
    legend: tuple[tuple[str, str], ...] = ()
    note: str = ""


def ranking_chart(
    chart_id: str, title: str, caption: str, rows: Sequence[tuple[str, int]], *, note: str = ""
) -> Chart:
    """Horizontal bars, largest first; the tail beyond the top bars is summed in a note."""
    rows = sorted(rows, key=lambda r: (-r[1], r[0]))
    notes = [note] if note else []
    if len(rows) > TOP:
        rest = rows[TOP:]
        notes.append(f"{len(rest)} more with {sum(v for _, v in rest):,} open findings.")
        rows = rows[:TOP]
    top = max((value for _, value in rows), default=0) or 1
    bars = tuple(
        Bar(
            label=label,
            value=value,
            x=LABEL_WIDTH,
            y=i * (BAR_HEIGHT + BAR_GAP),
            width=max(1.0, round(PLOT_WIDTH * value / top, 1)) if value else 0.0,
            height=BAR_HEIGHT,
        )
        for i, (label, value) in enumerate(rows)
    )
    height = max(1, len(bars)) * (BAR_HEIGHT + BAR_GAP)
    return Chart(
        chart_id, title, caption, LABEL_WIDTH + PLOT_WIDTH + 60, height, bars, note=" ".join(notes)
    )


def pushes_chart(rows: Sequence[Sequence[Any]]) -> Chart:
    """Columns per month: pushes of close dates to a later date, unapproved ones on locked deals
    stacked in red on top of the others."""
    rows = list(rows)[-24:]
    top = max((int(row[1]) for row in rows), default=0) or 1
    bars: list[Bar] = []
    axis: list[tuple[str, float]] = []
    for i, (month, total, bad) in enumerate(rows):
        total, bad = int(total), int(bad)
        x = 40 + i * (COLUMN_WIDTH + COLUMN_GAP)
        ok_height = round(PLOT_HEIGHT * (total - bad) / top, 1)
        bad_height = round(PLOT_HEIGHT * bad / top, 1)
        if total - bad:
            bars.append(
                Bar(
                    f"{month}",
                    total - bad,
                    x,
                    PLOT_HEIGHT - ok_height,
                    COLUMN_WIDTH,
                    max(1.0, ok_height),
                    "bar",
                    "approved or unlocked",
                )
            )
        if bad:
            bars.append(
                Bar(
                    f"{month}",
                    bad,
                    x,
                    PLOT_HEIGHT - ok_height - max(1.0, bad_height),
                    COLUMN_WIDTH,
                    max(1.0, bad_height),
                    "bar bad",
                    "unapproved, on a locked deal",
                )
            )
        if i % max(1, len(rows) // 8) == 0 or i == len(rows) - 1:
            axis.append((str(month), x + COLUMN_WIDTH / 2))
    width = 40 + max(1, len(rows)) * (COLUMN_WIDTH + COLUMN_GAP) + 20
    return Chart(
        "pushes",
        "Close-date pushes over time",
        "Pushes of a deal's close date to a later date, by month of the change "
        "(deals read by the sync).",
        max(width, 300),
        PLOT_HEIGHT + 30,
        tuple(bars),
        horizontal=False,
        axis=tuple(axis),
        legend=(
            ("bar", "approved, or deal not locked"),
            ("bar bad", "unapproved on a locked deal"),
        ),
    )


def charts(summary: Mapping[str, Any]) -> list[Chart]:
    data = summary.get("charts", {})
    return [
        ranking_chart(
            "by-rule",
            "Open findings by rule",
            "Every open finding in the state store, by the rule that raised it.",
            [(str(rule), int(n)) for rule, n in data.get("by_rule", [])],
        ),
        ranking_chart(
            "by-owner",
            "Open findings by owner",
            "Whose records the open findings are on (the owner gets the task).",
            [
                (str(label or key or "no owner"), int(n))
                for key, label, n in data.get("by_owner", [])
            ],
        ),
        ranking_chart(
            "by-partner",
            "Open findings by partner",
            "The partner on the deal, the lead or the account's partner of record.",
            [(str(label or key), int(n)) for key, label, n in data.get("by_partner", []) if key],
            note=_unpartnered(data.get("by_partner", [])),
        ),
        pushes_chart(data.get("pushes_by_month", [])),
    ]


def _unpartnered(rows: Sequence[Sequence[Any]]) -> str:
    count = sum(int(n) for key, _, n in rows if not key)
    return f"{count:,} open findings are on records with no partner." if count else ""


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("tsos_rules", "report/templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def render_html(summary: Mapping[str, Any]) -> str:
    """The whole report page for one run (``SyncSummary.to_dict()``)."""
    template = _environment().get_template("sync_report.html.j2")
    return template.render(s=summary, charts=charts(summary))
