"""The trend over the last runs, from the run log: open block / warn / info findings after each
run, and how many were new or resolved in it (the HTML report's "Is it getting better?")."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: Runs drawn in the report's trend charts (the newest ones).
TREND_RUNS = 30


def trend_point(
    run_id: int, as_of: str, started_at: str, findings: Mapping[str, Any]
) -> dict[str, Any]:
    """One run's point: its ``findings`` counts (``SyncSummary.to_dict()["findings"]``)."""
    by_rule = findings.get("by_rule") or {}
    open_by = {"block": 0, "warn": 0, "info": 0}
    for counts in by_rule.values():
        severity = counts.get("severity")
        if severity in open_by:
            open_by[severity] += int(counts.get("open") or 0)
    if "open_block" in findings:
        open_by["block"] = int(findings["open_block"])
    return {
        "run_id": run_id,
        "as_of": as_of,
        "started_at": started_at,
        "open_block": open_by["block"],
        "open_warn": open_by["warn"],
        "open_info": open_by["info"],
        "new": int(findings.get("new") or 0),
        "resolved": int(findings.get("resolved") or 0),
    }


def trend(runs: Iterable[Mapping[str, Any]], current: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Points for the finished, committed runs of ``runs`` (the run log, newest first) and the
    ``current`` point last, oldest first; at most :data:`TREND_RUNS`."""
    points = [dict(current)]
    for run in runs:
        counts = run.get("counts")
        if run["id"] == current["run_id"] or run.get("dry_run") or not counts:
            continue
        if run.get("outcome") not in ("ok", None):
            continue
        findings = counts.get("findings") or {}
        points.append(trend_point(run["id"], run["as_of"], run["started_at"], findings))
        if len(points) >= TREND_RUNS:
            break
    return points[::-1]
