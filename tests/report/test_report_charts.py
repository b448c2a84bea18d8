"""The report's charts: bars by severity with the values in words, unapproved close-date moves
on a scale of their own, and the trend over the run log."""

from __future__ import annotations

from tsos_rules.report.charts import PLOT_HEIGHT, charts, pushes_chart, unapproved_chart
from tsos_rules.sync.trend import TREND_RUNS, trend, trend_point

PUSHES = [["2026-09", 700, 0], ["2026-10", 773, 1], ["2026-11", 500, 8]]


def test_an_unapproved_move_is_not_dwarfed_by_hundreds_of_approved_pushes() -> None:
    bad = unapproved_chart(PUSHES)
    assert bad.id == "unapproved" and [round(b.height) for b in bad.bars] == [
        round(PLOT_HEIGHT / 8),
        PLOT_HEIGHT,
    ]
    assert {b.css for b in bad.bars} == {"bar sev-block"}
    assert [t.text for t in bad.labels if t.css == "value"] == ["1", "8"]
    allowed = pushes_chart(PUSHES)
    assert [b.title for b in allowed.bars] == [
        "2026-09: 700 pushes allowed",
        "2026-10: 772 pushes allowed",
        "2026-11: 492 pushes allowed",
    ]
    assert not unapproved_chart([["2026-11", 40, 0]]).bars
    assert unapproved_chart([]).empty.startswith("None: no locked deal")


def _summary() -> dict[str, object]:
    return {
        "as_of": "2026-11-24",
        "findings": {
            "by_rule": {
                "tsos.close-date-locked": {"severity": "block", "open": 3},
                "tsos.close-date-slipping": {"severity": "warn", "open": 5},
            }
        },
        "charts": {
            "by_rule": [["tsos.close-date-slipping", 5], ["tsos.close-date-locked", 3]],
            "by_owner": [["u1", "Ray", 8]],
            "by_partner": [["", "", 8]],
            "severity_by_owner": [["u1", "Ray", "block", 3], ["u1", "Ray", "warn", 5]],
            "severity_by_partner": [["", "", "block", 3], ["", "", "warn", 5]],
            "pushes_by_month": PUSHES,
            "trend": [],
        },
    }


def test_bars_are_coloured_by_severity_and_say_it_in_words() -> None:
    made = {c.id: c for c in charts(_summary(), {"tsos.close-date-locked": "Lock down"})}
    by_rule = made["by-rule"]
    assert [(b.css, b.title) for b in by_rule.bars] == [
        ("bar sev-warn", "tsos.close-date-slipping: 5 warn"),
        ("bar sev-block", "Lock down: 3 block"),
    ]
    owner = made["by-owner"]
    assert [b.css for b in owner.bars] == ["bar sev-block", "bar sev-warn"]
    assert "3 block, 5 warn" in [t.text for t in owner.labels]
    assert [text for _, text in owner.legend] == [
        "block: must be fixed",
        "warn: should be fixed",
        "info: for information",
    ]
    assert not made["by-partner"].bars
    assert made["by-partner"].note == "8 open problems are on records with no partner."


def _run(run_id: int, *, dry: bool = False, outcome: str = "ok", block: int = 1) -> dict:
    counts = {
        "findings": {
            "new": run_id,
            "resolved": 1,
            "open_block": block,
            "by_rule": {"r": {"severity": "warn", "open": 4}},
        }
    }
    return {
        "id": run_id,
        "as_of": f"2026-11-{run_id:02}",
        "started_at": "t",
        "dry_run": dry,
        "outcome": outcome,
        "counts": counts,
    }


def test_the_trend_keeps_finished_runs_oldest_first_and_ends_with_this_one() -> None:
    log = [
        _run(6),  # this run, still "running" in the log
        _run(5, dry=True),
        _run(4, outcome="failed"),
        _run(3, block=2),
        _run(2),
        {"id": 1, "as_of": "2026-11-01", "started_at": "t", "dry_run": 0, "counts": None},
    ]
    current = trend_point(6, "2026-11-06", "t", {"new": 0, "resolved": 3, "open_block": 0})
    points = trend(log, current)
    assert [p["run_id"] for p in points] == [2, 3, 6]
    assert points[1] == {
        "run_id": 3,
        "as_of": "2026-11-03",
        "started_at": "t",
        "open_block": 2,
        "open_warn": 4,
        "open_info": 0,
        "new": 3,
        "resolved": 1,
    }
    many = [_run(i) for i in range(100, 1, -1)]
    assert len(trend(many, current)) == TREND_RUNS
    assert trend(many, current)[-2]["run_id"] == 100
