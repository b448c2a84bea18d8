"""What the sync hands the HTML report: every open finding for the worklist (a dry run's too),
and the trend over the run log."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from tsos_rules.sync.job import run_sync

AS_OF = dt.date(2026, 11, 24)


def _embedded(page: str) -> Any:
    match = re.search(r'<script type="application/json" id="worklist-data">(.*?)</script>', page)
    assert match, "no worklist data in the page"
    return json.loads(match.group(1))


def test_the_html_report_carries_every_open_finding(
    org: Any, demo_org: dict[str, Any], cli: Any, tmp_path: Path
) -> None:
    config = tmp_path / "sync.toml"
    config.write_text(
        f'[connector]\ntype = "local"\npath = "{org.crm_path}"\n'
        f'[state]\npath = "{org.state_path}"\n',
        encoding="utf-8",
    )
    page = tmp_path / "report.html"
    done = cli("sync", "--config", str(config), "--html", str(page), "--format", "json", "-q")
    assert done.code == 1, done.err
    summary = done.json()
    assert "worklist" not in summary  # the rows are for the page only
    data = _embedded(page.read_text(encoding="utf-8"))
    fields = {name: i for i, name in enumerate(data["fields"])}
    assert len(data["rows"]) == summary["findings"]["open"] > 0
    stored = org.open_findings()
    ids = {
        (row[fields["record_id"]], data["rules"][row[fields["rule"]]]["id"]) for row in data["rows"]
    }
    assert ids == {(f.record_id, f.rule) for f in stored.values()}
    blocks = sum(
        1 for row in data["rows"] if data["severities"][row[fields["severity"]]] == "block"
    )
    assert blocks == summary["findings"]["open_block"]
    # Owners by name, as the demo CRM's users are called, not by id.
    users = {user["id"]: user["name"] for user in demo_org["users"]}
    owned = [f for f in stored.values() if f.owner_id in users]
    assert owned and set(data["owners"]) == {users[f.owner_id] for f in owned}


def test_a_dry_run_lists_what_it_would_have_open(org: Any) -> None:
    summary = run_sync(org.config(), as_of=AS_OF, dry_run=True, worklist=True)
    assert summary.worklist is not None
    assert len(summary.worklist.rows) == summary.findings_open > 0
    assert org.open_findings() == {}  # nothing was committed
    assert run_sync(org.config(), as_of=AS_OF).worklist is None  # only when asked


def test_the_trend_follows_the_committed_runs(org: Any) -> None:
    first = org.sync().to_dict()
    [point] = first["charts"]["trend"]
    assert point["run_id"] == first["run_id"] and point["new"] == first["findings"]["new"]
    assert point["open_block"] == first["findings"]["open_block"]
    org.sync(dry_run=True)
    third = org.sync(full=True).to_dict()
    points = third["charts"]["trend"]
    assert [p["run_id"] for p in points] == [first["run_id"], third["run_id"]]
    assert points[-1]["new"] == 0 and points[-1]["open_block"] == point["open_block"]
