"""The GoldMine preset on a SQLite database with GoldMine's tables and columns: read-only,
findings to an outbox, and ``check`` naming GoldMine stage values the site has not mapped."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from goldmine_sample import SITE_TABLES, TODAY, build

from tsos_rules.api import check as judge
from tsos_rules.connectors.base import Action, ActionKind, ActionStatus
from tsos_rules.connectors.tabular.connector import TabularConnector
from tsos_rules.errors import ConfigError
from tsos_rules.sync.job import run_sync

LADDER = [
    "mql", "business_driver", "sql", "engagement", "single_sales_opportunity", "date_locked",
    "draft_proposal", "trial_close", "closing", "commitment", "closed_won", "closed_lost",
]  # fmt: skip


def goldmine(tmp_path: Path, tables: Any = SITE_TABLES) -> dict[str, Any]:
    database = build(tmp_path / "goldmine.sqlite3")
    return {
        "type": "tabular",
        "preset": "goldmine",
        "url": f"sqlite:///{database}",
        "tables": tables,
        "write": {"folder": str(tmp_path / "outbox")},
    }


def test_reads_goldmine_tables_into_the_snapshot(tmp_path: Path) -> None:
    connector = TabularConnector.from_settings(goldmine(tmp_path))
    try:
        result = connector.read(None)
    finally:
        connector.close()
    assert not result.errors, [str(e) for e in result.errors]
    snap = result.snapshot
    deals = {o.id: o for o in snap.opportunities}
    assert set(deals) == {"OPP0001", "OPP0002", "OPP0003"}  # not the OT team-member row
    boeing = deals["OPP0001"]
    assert boeing.stage == "draft_proposal" and boeing.amount == 120000.0
    assert str(boeing.close_date) == "2026-12-15" and boeing.probability == 60
    assert boeing.partner_id == "A6091500017(/7A4EZ" and not boeing.is_closed
    assert deals["OPP0003"].is_closed and deals["OPP0003"].is_won
    accounts = {a.id: a for a in snap.accounts}
    assert accounts["C3110811482%]1UX3L"].partner_of_record_id == "A6091500017(/7A4EZ"
    assert {p.id for p in snap.partners} == {"A6091500017(/7A4EZ", "B2071219354!5G*J+E"}
    roles = {u.id: u.role.value for u in snap.users}
    assert roles == {"RAY": "channel", "DANA": "direct", "MASTER": "other"}
    activities = {a.id: (a.what_id, a.status) for a in snap.activities}
    assert activities == {"CAL0001": ("OPP0001", "open"), "HIS0001": ("OPP0002", "completed")}
    (referral,) = snap.leads
    assert (referral.account_id, referral.partner_id, referral.source) == (
        "E7081013090*N@A4VK",
        "B2071219354!5G*J+E",
        "partner_referral",
    )


def test_goldmine_findings_are_judged(tmp_path: Path) -> None:
    """The Boeing deal's pending CAL activity is its next step; Airbus has none."""
    connector = TabularConnector.from_settings(goldmine(tmp_path))
    try:
        snapshot = connector.read(None).snapshot
    finally:
        connector.close()
    findings = judge(snapshot, as_of=TODAY)
    missing = {f.record_id for f in findings.for_rule("tsos.next-step-required")}
    assert missing == {"OPP0002"}


def test_preset_is_read_only_and_writes_to_the_outbox(tmp_path: Path) -> None:
    connector = TabularConnector.from_settings(goldmine(tmp_path))
    capabilities = connector.capabilities()
    assert capabilities.tasks and not capabilities.field_updates
    assert not capabilities.incremental  # GoldMine has no single modified-time column
    action = Action(
        kind=ActionKind.CREATE_TASK,
        fingerprint="a" * 32,
        record_type="opportunity",
        record_id="OPP0002",
        owner_id="DANA",
        subject="tsos-rules: next step missing",
        rule="tsos.next-step-required",
    )
    try:
        assert [r.status for r in connector.write([action, action])] == [
            ActionStatus.WRITTEN,
            ActionStatus.ALREADY_DONE,
        ]
    finally:
        connector.close()
    with (tmp_path / "outbox" / "tsos_tasks.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["record_id"], r["owner_id"], r["status"]) for r in rows] == [
        ("OPP0002", "DANA", "open")
    ]
    db = sqlite3.connect(tmp_path / "goldmine.sqlite3")
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert "tsos_tasks" not in tables  # nothing written into GoldMine's database


def test_writing_into_goldmine_tables_is_refused(tmp_path: Path) -> None:
    settings = goldmine(tmp_path)
    settings["write"] = {"mode": "table"}
    with pytest.raises(ConfigError, match="read_only"):
        TabularConnector.from_settings(settings)


def test_check_names_unmapped_goldmine_stages(tmp_path: Path) -> None:
    connector = TabularConnector.from_settings(goldmine(tmp_path, tables={}))
    try:
        problems = connector.check(LADDER)
    finally:
        connector.close()
    errors = [str(p) for p in problems if p.level == "error"]
    assert any(
        "OPMGR.STAGE" in e and "'Proposal' (1 row)" in e and "values.stage" in e for e in errors
    ), errors
    assert any("USERS.USERGROUP" in e and "'CHANNEL'" in e for e in errors), errors


def test_sync_on_goldmine_writes_findings_to_the_outbox(tmp_path: Path) -> None:
    config = {
        "connector": goldmine(tmp_path),
        "state": {"path": str(tmp_path / "state.sqlite3")},
    }
    summary = run_sync(config, as_of=TODAY)
    assert summary.findings_new > 0
    with (tmp_path / "outbox" / "tsos_tasks.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert ("OPP0002", "tsos.next-step-required") in {(r["record_id"], r["rule"]) for r in rows}
