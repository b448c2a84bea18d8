"""``tsos-rules history``: the run log, per run and per rule, after real syncs of the demo org."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Cli = Callable[..., Any]


def _config(org: Any, tmp_path: Path) -> str:
    path = tmp_path / "tsos.toml"
    path.write_text(
        f"[connector]\ntype = 'local'\npath = '{org.crm_path}'\n"
        f"[state]\npath = '{org.state_path}'\n",
        encoding="utf-8",
    )
    return str(path)


def test_each_run_is_listed_newest_first_with_its_counts(
    cli: Cli, org: Any, tmp_path: Path
) -> None:
    first = org.sync()
    second = org.sync(as_of=first_as_of(first) + dt.timedelta(days=1))
    config = _config(org, tmp_path)
    runs = json.loads(cli("history", "--config", config, "--format", "json").out)
    assert [r["run_id"] for r in runs] == [second.run_id, first.run_id]
    assert runs[1]["full"] is True and runs[1]["findings"]["new"] == first.findings_new > 0
    assert runs[0]["findings"]["open_block"] == second.open_block
    assert runs[0]["findings"]["by_rule"]  # per-rule counts are kept in the log
    table = cli("history", "--config", config).out
    assert f"#{second.run_id}" in table and "open blocks:" in table


def test_per_rule_counts_run_by_run(cli: Cli, org: Any, tmp_path: Path) -> None:
    summary = org.sync()
    config = _config(org, tmp_path)
    table = cli("history", "--config", config, "--by", "rule").out
    some_rule, counts = next(iter(summary.to_dict()["findings"]["by_rule"].items()))
    line = next(row for row in table.splitlines() if row.startswith(some_rule))
    assert f"{counts['open']} (+{counts['new']}/-{counts['resolved']})" in line


def test_no_run_yet_says_what_to_do(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "tsos.toml"
    path.write_text(f"[state]\npath = '{tmp_path / 'state.sqlite3'}'\n", encoding="utf-8")
    result = cli("history", "--config", str(path))
    assert result.code == 0 and "run 'tsos-rules sync'" in result.out


def first_as_of(summary: Any) -> dt.date:
    return dt.date.fromisoformat(summary.as_of)
