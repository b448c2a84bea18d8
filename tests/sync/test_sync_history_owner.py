"""History per owner and retention: what each sync stores per owner, ``history --by owner``,
``[sync] history_days`` pruning at the end of a sync, and ``history --prune``."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tsos_rules.sync.state.worklist import WorklistQuery

Cli = Callable[..., Any]


def _config(org: Any, tmp_path: Path, **sync: Any) -> str:
    lines = [
        f"[connector]\ntype = 'local'\npath = '{org.crm_path}'",
        f"[state]\npath = '{org.state_path}'",
        "[sync]",
        *(f"{key} = {json.dumps(value)}" for key, value in sync.items()),
    ]
    path = tmp_path / "tsos.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _age(org: Any, days: int, sql: str, *params: Any) -> None:
    """Move rows of the state file ``days`` into the past (a year of runs, in a test)."""
    when = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).isoformat()
    db = sqlite3.connect(org.state_path)
    with db:
        db.execute(sql, (when, *params))
    db.close()


def test_each_run_keeps_new_resolved_and_open_per_owner(org: Any) -> None:
    first = org.sync()
    owners = first.owners
    assert sum(c.new for c in owners.values()) == first.findings_new > 0
    assert sum(c.open for c in owners.values()) == first.findings_open
    assert sum(c.open_block for c in owners.values()) == first.open_block

    # A deal of one owner goes away: its findings resolve, on that owner's row.
    state = org.state()
    try:
        deal = next(f for f in state.findings("local", status="open") if _deal(f))
        on_deal = len(state.findings("local", status="open", record_id=deal.record_id))
        shown = state.worklist("local", WorklistQuery(owner=deal.owner_id, limit=1))[0].owner
    finally:
        state.close()
    org.crm.delete("opportunity", deal.record_id)
    second = org.sync()
    mine = second.owners[deal.owner_id]
    assert mine.resolved >= on_deal and mine.name == shown  # named as the worklist names them
    assert mine.open == owners[deal.owner_id].open - mine.resolved + mine.new

    state = org.state()
    try:
        stored = state.owner_history("local", [second.run_id, first.run_id])
    finally:
        state.close()
    row = next(o for o in stored[second.run_id] if o.owner_id == deal.owner_id)
    assert (row.owner_name, row.new, row.resolved, row.open) == (
        shown,
        mine.new,
        mine.resolved,
        mine.open,
    )
    assert sum(o.new for o in stored[first.run_id]) == first.findings_new


def test_history_by_owner_in_json_and_as_a_table(cli: Cli, org: Any, tmp_path: Path) -> None:
    first = org.sync()
    config = _config(org, tmp_path)
    runs = json.loads(cli("history", "--config", config, "--by", "owner", "--format", "json").out)
    by_owner = runs[0]["by_owner"]
    assert sum(o["new"] for o in by_owner) == first.findings_new
    top = max(by_owner, key=lambda o: (o["open_block"], o["open"]))
    assert top["owner"] == first.owners[top["owner_id"]].name
    table = cli("history", "--config", config, "--by", "owner").out.splitlines()
    assert "open/block (+new/-res)" in table[0]
    line = table[1]  # most open blocks first
    assert line.startswith(top["owner"])
    assert f"{top['open']}/{top['open_block']} (+{top['new']}/-0)" in line


def test_history_of_one_owner(cli: Cli, org: Any, tmp_path: Path) -> None:
    first = org.sync()
    owner_id, counts = max(first.owners.items(), key=lambda item: item[1].open)
    config = _config(org, tmp_path)
    table = cli("history", "--config", config, "--owner", counts.name.upper()).out.splitlines()
    assert len(table) == 2 and table[1].startswith(counts.name)
    runs = json.loads(
        cli("history", "--config", config, "--owner", owner_id, "--format", "json").out
    )
    assert [o["owner"] for o in runs[0]["by_owner"]] == [counts.name]


def test_a_sync_prunes_runs_and_resolved_findings_older_than_history_days(org: Any) -> None:
    org.sync()
    state = org.state()
    try:
        deal = next(f for f in state.findings("local", status="open") if _deal(f))
    finally:
        state.close()
    org.crm.delete("opportunity", deal.record_id)
    resolving = org.sync()
    assert resolving.findings_resolved > 0
    # The first run and the findings the second resolved are now 40 days old.
    _age(org, 40, "UPDATE runs SET started_at = ? WHERE id = 1")
    _age(org, 40, "UPDATE findings SET resolved_at = ? WHERE status = 'resolved'")
    open_before = len(org.open_findings())

    assert org.sync(history_days=30, dry_run=True).pruned is None  # a dry run prunes nothing

    summary = org.sync(history_days=30)
    assert summary.pruned is not None
    assert summary.pruned["runs"] == 1 and summary.pruned["owner_rows"] > 0
    assert summary.pruned["findings"] == resolving.findings_resolved
    assert len(org.open_findings()) == open_before  # open findings are never pruned
    state = org.state()
    try:
        assert [r["id"] for r in state.runs("local")] == [summary.run_id, resolving.run_id]
        assert state.findings("local", status="resolved") == []
    finally:
        state.close()


def test_pruning_keeps_what_is_still_needed(org: Any) -> None:
    org.sync()
    state = org.state()
    try:
        found = [f for f in state.findings("local", status="open")][:3]
    finally:
        state.close()
    pending, exempted, plain = found
    db = sqlite3.connect(org.state_path)
    with db:
        db.execute("UPDATE findings SET status = 'resolved', resolved_at = '2000-01-01'")
        db.execute(
            "INSERT INTO pending_writes (connector, fingerprint, kind, record_type, record_id, "
            "rule, run_id, planned_at) VALUES ('local', ?, 'close_task', 'opportunity', 'x', "
            "'r', 1, '2000-01-01')",
            (pending.fingerprint,),
        )
        db.execute(
            "INSERT INTO exemptions (connector, fingerprint, rule, record_type, record_id, "
            "reason, approver, created_at, expires) VALUES ('local', ?, 'r', 'opportunity', "
            "'x', 'merger', 'VP Sales', '2000-01-01', '2000-06-01')",
            (exempted.fingerprint,),
        )
        db.execute("UPDATE findings SET task_status = 'closed'")
        db.execute(
            "UPDATE findings SET task_status = 'open' WHERE fingerprint = ?", (plain.fingerprint,)
        )
    db.close()
    state = org.state()
    try:
        pruned = state.prune("local", dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
        kept = {f.fingerprint for f in state.findings("local")}
        assert kept == {pending.fingerprint, exempted.fingerprint, plain.fingerprint}
        assert pruned.findings > 0
        assert len(state.exemptions("local")) == 1  # the audit trail stays
        assert state.runs("local")  # the run started now is younger than the cut
    finally:
        state.close()


def test_history_prune_on_demand_says_what_it_removed(cli: Cli, org: Any, tmp_path: Path) -> None:
    org.sync()
    org.sync()
    _age(org, 500, "UPDATE runs SET started_at = ? WHERE id = 1")
    config = _config(org, tmp_path)
    result = cli("history", "--config", config, "--prune")
    assert result.code == 0
    assert "older than 400 days" in result.out and "1 run(s)" in result.out
    again = json.loads(cli("history", "--config", config, "--prune", "--format", "json").out)
    assert again["history_days"] == 400 and again["pruned"]["runs"] == 0
    runs = json.loads(cli("history", "--config", config, "--format", "json").out)
    assert [r["run_id"] for r in runs] == [2]


def test_history_days_zero_keeps_everything(cli: Cli, org: Any, tmp_path: Path) -> None:
    org.sync()
    _age(org, 5000, "UPDATE runs SET started_at = ? WHERE id = 1")
    summary = org.sync(history_days=0)
    assert summary.pruned is None
    config = _config(org, tmp_path, history_days=0)
    assert "nothing pruned" in cli("history", "--config", config, "--prune").out
    assert len(json.loads(cli("history", "--config", config, "--format", "json").out)) == 2


def test_a_bad_history_days_is_refused_naming_the_key(cli: Cli, org: Any, tmp_path: Path) -> None:
    config = _config(org, tmp_path, history_days="a year")
    result = cli("history", "--config", config, "--prune")
    assert result.code == 2 and "sync.history_days" in result.err
    assert "Traceback" not in result.err


def _deal(finding: Any) -> bool:
    return bool(finding.record_type == "opportunity" and finding.owner_id)


def test_a_sync_prunes_a_bounded_share_and_the_next_runs_the_rest(
    org: Any, monkeypatch: Any
) -> None:
    from tsos_rules.sync.state import store as store_module

    org.sync()
    org.sync()
    _age(org, 900, "UPDATE runs SET started_at = ? WHERE id IN (1, 2)")
    monkeypatch.setattr(store_module, "PRUNED_PER_RUN", 1)
    assert org.sync().pruned["runs"] == 1
    assert org.sync().pruned["runs"] == 1
    state = org.state()
    try:
        assert [r["id"] for r in state.runs("local")] == [4, 3]
    finally:
        state.close()
