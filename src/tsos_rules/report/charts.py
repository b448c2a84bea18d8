"""The HTML report's charts as geometry (the template only places rectangles and labels).

Bars are coloured by severity (block red, warn amber, info grey) and every bar's label says
the severity in words too, so the colour is never the only carrier of the meaning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

#: Bars shown in a ranking chart; the rest are summed into a note.
TOP = 15
BAR_HEIGHT = 18
BAR_GAP = 6
LABEL_WIDTH = 260
PLOT_WIDTH = 330
VALUE_WIDTH = 190
COLUMN_WIDTH = 22
COLUMN_GAP = 8
PLOT_HEIGHT = 170
AXIS_LABEL_WIDTH = 58
SEVERITIES = ("block", "warn", "info")
SEVERITY_LEGEND = (
    ("bar sev-block", "block: must be fixed"),
    ("bar sev-warn", "warn: should be fixed"),
    ("bar sev-info", "info: for information"),
)


@attrs.frozen
class Bar:
    """One rectangle; ``title`` is its tooltip."""

    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@attrs.frozen
class Label:
    x: float
    y: float
    text: str
    anchor: str = "start"
    css: str = ""


@attrs.frozen
class Chart:
    id: str
    title: str
    caption: str
    width: int
    height: int
    bars: tuple[Bar, ...]
    labels: tuple[Label, ...] = ()
    legend: tuple[tuple[str, str], ...] = ()
    note: str = ""
    empty: str = "Nothing to show."


@attrs.frozen
class Segment:
    """A part of a bar or column: its class (``bar sev-block``), value and name in words."""

    css: str
    value: int
    name: str


def severity_segments(counts: Mapping[str, int]) -> tuple[Segment, ...]:
    return tuple(
        Segment(f"bar sev-{severity}", int(counts.get(severity, 0)), severity)
        for severity in SEVERITIES
        if counts.get(severity)
    )


def ranking_chart(
    chart_id: str,
    title: str,
    caption: str,
    rows: Sequence[tuple[str, Sequence[Segment]]],
    *,
    note: str = "",
    legend: tuple[tuple[str, str], ...] = SEVERITY_LEGEND,
) -> Chart:
    """Horizontal stacked bars, largest total first; the tail beyond :data:`TOP` is summed in
    the note. Each bar ends with its values in words ("12 block, 30 warn")."""
    ranked = sorted(rows, key=lambda r: (-sum(s.value for s in r[1]), r[0]))
    notes = [note] if note else []
    if len(ranked) > TOP:
        rest = ranked[TOP:]
        total = sum(s.value for _, segments in rest for s in segments)
        notes.append(f"{len(rest)} more with {total:,} open problems.")
        ranked = ranked[:TOP]
    top = max((sum(s.value for s in segments) for _, segments in ranked), default=0) or 1
    bars: list[Bar] = []
    labels: list[Label] = []
    for i, (label, segments) in enumerate(ranked):
        y = i * (BAR_HEIGHT + BAR_GAP)
        x = float(LABEL_WIDTH)
        for segment in segments:
            if not segment.value:
                continue
            width = max(1.0, round(PLOT_WIDTH * segment.value / top, 1))
            bars.append(
                Bar(
                    x,
                    y,
                    width,
                    BAR_HEIGHT,
                    segment.css,
                    f"{label}: {segment.value:,} {segment.name}",
                )
            )
            x += width
        labels.append(Label(LABEL_WIDTH - 8, y + 13, _clip(label, 38), "end"))
        words = ", ".join(f"{s.value:,} {s.name}" for s in segments if s.value)
        labels.append(Label(x + 6, y + 13, words, "start", "value"))
    height = max(1, len(ranked)) * (BAR_HEIGHT + BAR_GAP)
    return Chart(
        chart_id,
        title,
        caption,
        LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH,
        height,
        tuple(bars),
        tuple(labels),
        legend,
        " ".join(notes),
    )


def column_chart(
    chart_id: str,
    title: str,
    caption: str,
    columns: Sequence[tuple[str, Sequence[Segment]]],
    *,
    legend: tuple[tuple[str, str], ...],
    grouped: bool = False,
    empty: str = "Nothing to show.",
    note: str = "",
) -> Chart:
    """Vertical columns, one per label (a month, a run): segments stacked, or side by side
    with ``grouped``; each column's value is written above it."""
    columns = list(columns)
    parts = max((len(segments) for _, segments in columns), default=1) if grouped else 1
    step = COLUMN_WIDTH * max(1, parts) + COLUMN_GAP
    if grouped:
        top = max((s.value for _, segments in columns for s in segments), default=0)
    else:
        top = max((sum(s.value for s in segments) for _, segments in columns), default=0)
    top = top or 1
    base = PLOT_HEIGHT + 14  # room above the tallest column for its value
    bars: list[Bar] = []
    labels: list[Label] = []
    every = max(1, math.ceil(AXIS_LABEL_WIDTH / step))  # axis labels never overlap
    for i, (label, segments) in enumerate(columns):
        x = 40 + i * step
        y = float(base)
        for j, segment in enumerate(segments):
            if not segment.value:
                continue
            height = max(1.0, round(PLOT_HEIGHT * segment.value / top, 1))
            left = x + j * COLUMN_WIDTH if grouped else x
            top_y = (base - height) if grouped else (y - height)
            bars.append(
                Bar(
                    left,
                    top_y,
                    COLUMN_WIDTH,
                    height,
                    segment.css,
                    f"{label}: {segment.value:,} {segment.name}",
                )
            )
            if grouped:
                labels.append(
                    Label(
                        left + COLUMN_WIDTH / 2, top_y - 3, f"{segment.value:,}", "middle", "value"
                    )
                )
            else:
                y -= height
        total = sum(s.value for s in segments)
        if not grouped and total:
            labels.append(Label(x + COLUMN_WIDTH / 2, y - 3, f"{total:,}", "middle", "value"))
        if i % every == 0 or i == len(columns) - 1:
            center = x + (COLUMN_WIDTH * parts) / 2
            labels.append(Label(center, base + 16, label, "middle"))
    width = 40 + max(1, len(columns)) * step + 20
    bars_tuple = tuple(bars)
    return Chart(
        chart_id,
        title,
        caption,
        max(width, 300),
        base + 26,
        bars_tuple,
        tuple(labels),
        legend,
        note,
        empty,
    )


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def charts(summary: Mapping[str, Any], titles: Mapping[str, str]) -> list[Chart]:
    """Every chart of the report for one run (``SyncSummary.to_dict()``); ``titles`` names the
    rules for people (a rule missing from it is shown by its id)."""
    data = summary.get("charts", {})
    severity_of = {
        rule: counts.get("severity", "") for rule, counts in summary["findings"]["by_rule"].items()
    }
    by_rule = [
        (
            titles.get(str(rule), str(rule)),
            (
                Segment(
                    f"bar sev-{severity_of.get(rule) or 'none'}",
                    int(n),
                    severity_of.get(rule) or "open",
                ),
            ),
        )
        for rule, n in data.get("by_rule", [])
    ]
    return [
        ranking_chart(
            "by-rule",
            "Open problems by rule",
            "Every open problem, by the rule of the doctrine it breaks.",
            by_rule,
        ),
        ranking_chart(
            "by-owner",
            "Open problems by owner",
            "Whose deals and leads the open problems are on (the owner gets the task).",
            _people(data, "owner", "no owner"),
        ),
        ranking_chart(
            "by-partner",
            "Open problems by partner",
            "The partner on the deal, the lead, or the account's partner of record.",
            [row for row in _people(data, "partner", "") if row[0]],
            note=_unpartnered(data),
        ),
        unapproved_chart(data.get("pushes_by_month", [])),
        pushes_chart(data.get("pushes_by_month", [])),
        open_trend_chart(data.get("trend", [])),
        flow_trend_chart(data.get("trend", [])),
    ]


def _people(data: Mapping[str, Any], by: str, nobody: str) -> list[tuple[str, tuple[Segment, ...]]]:
    """Owners or partners with their open findings split by severity (or in one neutral bar
    from a summary that has no split)."""
    split = data.get(f"severity_by_{by}")
    if split is None:
        return [
            (str(label or key or nobody), (Segment("bar sev-none", int(n), "open"),))
            for key, label, n in data.get(f"by_{by}", [])
        ]
    grouped: dict[str, tuple[str, dict[str, int]]] = {}
    for key, label, severity, n in split:
        _, counts = grouped.setdefault(str(key), (str(label or key or nobody), {}))
        counts[str(severity)] = counts.get(str(severity), 0) + int(n)
    return [(name, severity_segments(counts)) for name, counts in grouped.values()]


def _unpartnered(data: Mapping[str, Any]) -> str:
    count = sum(int(n) for key, _, n in data.get("by_partner", []) if not key)
    return f"{count:,} open problems are on records with no partner." if count else ""


def unapproved_chart(rows: Sequence[Sequence[Any]]) -> Chart:
    """Unapproved moves of a locked deal's close date, by month: on their own scale, so one
    a month is never dwarfed by hundreds of approved pushes."""
    rows = list(rows)[-24:]
    if not any(int(bad) for _, _, bad in rows):
        rows = []
    return column_chart(
        "unapproved",
        "Close dates moved without approval",
        "Deals past the lock stage (or in commit) whose close date was moved later without an "
        "approval, by month of the move. The doctrine says: lock down the close date.",
        [
            (str(month), (Segment("bar sev-block", int(bad), "moved without approval"),))
            for month, _, bad in rows
        ],
        legend=(("bar sev-block", "moved without approval (block)"),),
        empty="None: no locked deal's close date was moved without approval.",
    )


def pushes_chart(rows: Sequence[Sequence[Any]]) -> Chart:
    """Approved pushes, and pushes of deals not yet locked, by month (unapproved moves of
    locked deals have their own chart)."""
    rows = list(rows)[-24:]
    return column_chart(
        "pushes",
        "Close dates pushed later (approved or not locked)",
        "Pushes of a deal's close date to a later date that were allowed: approved, or before "
        "the deal was locked. Many pushes mean a pipeline that is not qualified.",
        [
            (str(month), (Segment("bar push", int(total) - int(bad), "pushes allowed"),))
            for month, total, bad in rows
        ],
        legend=(("bar push", "pushed later: approved, or deal not locked yet"),),
    )


def open_trend_chart(points: Sequence[Mapping[str, Any]]) -> Chart:
    """Open block and warn problems after each of the last runs."""
    return column_chart(
        "trend-open",
        "Open problems after each run",
        "Open block and warn problems after each of the last runs, oldest on the left: "
        "falling columns mean a healthier pipeline.",
        [
            (
                _run_label(point),
                severity_segments({"block": point["open_block"], "warn": point["open_warn"]}),
            )
            for point in points
        ],
        legend=SEVERITY_LEGEND[:2],
    )


def flow_trend_chart(points: Sequence[Mapping[str, Any]]) -> Chart:
    """New and resolved problems in each of the last runs, side by side."""
    return column_chart(
        "trend-flow",
        "New and fixed problems per run",
        "Problems found for the first time (new) and problems fixed (resolved) in each of the "
        "last runs.",
        [
            (
                _run_label(point),
                (
                    Segment("bar flow-new", int(point["new"]), "new"),
                    Segment("bar flow-resolved", int(point["resolved"]), "resolved"),
                ),
            )
            for point in points
        ],
        legend=(("bar flow-new", "new"), ("bar flow-resolved", "resolved (fixed)")),
        grouped=True,
    )


def _run_label(point: Mapping[str, Any]) -> str:
    return f"#{point['run_id']} {str(point.get('as_of', ''))[5:]}"
