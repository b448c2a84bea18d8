"""The run summary's counts come from tallies the state keeps up to date (migration 10): they
must equal a count over every open finding and close-date push whatever a sync commits (new,
resolved, reopened findings, renamed owners and partners, shadow rules, pushes judged again,
a forgotten connector), and an older state file is upgraded with its counts intact."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

from state_rows import finding_row, insert_row
from tsos_rules.findings import Finding, Severity
from tsos_rules.sync.state import MIGRATIONS, SCHEMA_VERSION, Push, SeenFinding, StateStore

# The counts as the state answered them before the tallies: scans of the findings and pushes.
SCANS = {
    "by_rule": "SELECT rule, max(severity), count(*) FROM findings WHERE connector = ? "
    "AND status = 'open' AND shadow = 0 GROUP BY rule ORDER BY rule",
    "open": "SELECT count(*) FROM findings WHERE connector = ? AND status = 'open' AND shadow = 0",
    "block": "SELECT count(*) FROM findings WHERE connector = ? AND status = 'open' "
    "AND shadow = 0 AND severity = 'block'",
    "shadow": "SELECT count(*) FROM findings WHERE connector = ? AND status = 'open' "
    "AND shadow = 1",
    "by_owner": "SELECT owner_id, max(owner_name), count(*), sum(severity = 'block') "
    "FROM findings WHERE connector = ? AND status = 'open' AND shadow = 0 GROUP BY owner_id "
    "ORDER BY owner_id",
    **{
        f"counts_{by}": f"SELECT coalesce({key}, '') AS k, max(coalesce({label}, {key}, '')), "
        "count(*) AS n FROM findings WHERE connector = ? AND status = 'open' AND shadow = 0 "
        "GROUP BY k ORDER BY n DESC, k"
        for by, key, label in (
            ("rule", "rule", "rule"),
            ("owner", "owner_id", "owner_name"),
            ("partner", "partner_id", "partner_name"),
        )
    },
    **{
        f"severity_{by}": f"SELECT coalesce({key}, '') AS k, max(coalesce({label}, {key}, '')), "
        "severity, count(*) FROM findings WHERE connector = ? AND status = 'open' AND shadow = 0 "
        "GROUP BY k, severity ORDER BY k, severity"
        for by, key, label in (
            ("owner", "owner_id", "owner_name"),
            ("partner", "partner_id", "partner_name"),
        )
    },
    "pushes": "SELECT substr(changed_on, 1, 7) AS month, count(*), "
    "coalesce(sum(locked AND NOT approved), 0) FROM close_date_pushes WHERE connector = ? "
    "GROUP BY month ORDER BY month",
}


def _scanned(path: Path, connector: str = "local") -> dict[str, Any]:
    db = sqlite3.connect(path)
    try:
        return {
            name: [tuple(r) for r in db.execute(sql, (connector,))] for name, sql in SCANS.items()
        }
    finally:
        db.close()


def _tallied(state: StateStore, connector: str = "local") -> dict[str, Any]:
    """The same counts from the state's own methods, shaped as the scans' rows."""
    by_owner = state.open_by_owner(connector)
    return {
        "by_rule": [
            (r, s, n) for r, (s, n) in sorted(state.open_by_rule_severity(connector).items())
        ],
        "open": [(state.open_count(connector),)],
        "block": [(state.open_count(connector, severity="block"),)],
        "shadow": [(state.shadow_count(connector),)],
        "by_owner": by_owner,
        **{f"counts_{by}": state.open_counts(connector, by) for by in ("rule", "owner", "partner")},
        **{
            f"severity_{by}": state.open_counts_by_severity(connector, by)
            for by in ("owner", "partner")
        },
        "pushes": state.pushes_by_month(connector),
    }


def _owners_of(rows: list[tuple[Any, ...]]) -> dict[str, tuple[str | None, int, int]]:
    """``open_by_owner``'s answer from the scan's rows (NULL and empty owner ids merged)."""
    out: dict[str, tuple[str | None, int, int]] = {}
    for owner_id, name, n, blocks in rows:
        key = owner_id or ""
        had, total, block = out.get(key, (None, 0, 0))
        out[key] = (had or name, total + n, block + (blocks or 0))
    return out


def assert_tallies_match_scans(path: Path, connector: str = "local", after: str = "") -> None:
    scanned = _scanned(path, connector)
    scanned["by_owner"] = _owners_of(scanned["by_owner"])
    state = StateStore(path)
    try:
        tallied = _tallied(state, connector)
    finally:
        state.close()
    assert tallied == scanned, after


_finding, _insert = finding_row, insert_row


OLD_FINDINGS = [
    _finding("f1"),
    _finding("f2", severity="warn", owner_name="Ann B."),  # a renamed owner: the greater name
    _finding("f3", owner_id=None, owner_name=None),  # no owner
    _finding("f4", owner_id="", owner_name="Nobody"),  # an empty owner id, named
    _finding("f5", owner_name=None, partner_id="p1", partner_name=None),  # unnamed: ids shown
    _finding("f6", partner_id="p1", partner_name="Acme Channel", rule="channel.x"),
    _finding("f7", shadow=1),  # shadow: counted apart
    _finding("f8", status="resolved", resolved_at="2026-11-02T00:00:00+00:00"),  # not counted
    _finding("f9", connector="other", owner_id="u9"),  # another connector's
]


def test_an_old_state_file_is_upgraded_with_the_same_counts(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    db = sqlite3.connect(path)
    for version, _, sql in MIGRATIONS:
        if version < 10:
            db.executescript(sql)
    for row in OLD_FINDINGS:
        _insert(db, row)
    db.executemany(
        "INSERT INTO close_date_pushes VALUES (?, ?, ?, ?, ?)",
        [
            ("local", "o1", "2026-10-03", 1, 0),
            ("local", "o1", "2026-10-20", 1, 1),
            ("local", "o2", "2026-11-05", 0, 0),
            ("other", "o3", "2026-11-06", 1, 0),
        ],
    )
    db.execute("PRAGMA user_version = 9")
    db.commit()
    before = _scanned(path)
    db.close()

    state = StateStore(path)
    try:
        assert state.schema_version() == SCHEMA_VERSION
        assert state.open_by_owner("local") == {
            "u1": ("Ann B.", 4, 3),
            "": ("Nobody", 2, 2),  # no owner and the empty id merged, as before
        }
        # a partner's label: the greatest of its names, its id standing for a missing name
        assert state.open_counts("local", "partner") == [("", "", 4), ("p1", "p1", 2)]
        assert state.pushes_by_month("local") == [("2026-10", 2, 1), ("2026-11", 1, 0)]
        assert state.shadow_count("local") == 1
        assert state.open_count("other") == 1
    finally:
        state.close()
    assert _scanned(path) == before
    assert_tallies_match_scans(path)
    assert_tallies_match_scans(path, "other")


def _seen(record: str, severity: str = "block", **names: Any) -> SeenFinding:
    finding = Finding(
        rule="tsos.next-step-required",
        severity=Severity(severity),
        record_type="opportunity",
        record_id=record,
        reason="past",
        message="m",
        doctrine="d",
    )
    return SeenFinding(finding, **{"owner_id": "u1", "owner_name": "Ann", **names})


def _full_run(state: StateStore) -> int:
    """A full run started on 2026-11-24, as the sync starts one."""
    return state.start_run(
        "local",
        as_of=dt.date(2026, 11, 24),
        mode="annotate",
        full=True,
        dry_run=False,
        watermark_from=None,
    )


def test_the_tallies_follow_every_change_the_sync_commits(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    state = StateStore(path)
    run = _full_run(state)
    a, b, c = _seen("o1"), _seen("o2", "warn"), _seen("o3", owner_id=None, owner_name=None)
    steps: list[tuple[str, dict[str, Any]]] = [
        ("three new", {"seen": [a, b, c]}),
        ("seen again, unchanged", {"seen": [a, b, c]}),
        ("an owner renamed", {"seen": [_seen("o1", owner_name="Ann B.")]}),
        ("an owner with no name", {"seen": [_seen("o2", "warn", owner_name=None)]}),
        ("another partner", {"seen": [_seen("o3", partner_id="p1", partner_name=None)]}),
        ("a severity and shadow", {"seen": [_seen("o1", "warn", shadow=True)]}),
        ("resolved", {"resolved": [a.finding.fingerprint, b.finding.fingerprint]}),
        ("resolved twice", {"resolved": [a.finding.fingerprint]}),
        ("reopened", {"seen": [_seen("o1", owner_id="", owner_name="Nobody")]}),
        ("new and resolved", {"seen": [b], "resolved": [c.finding.fingerprint]}),
    ]
    try:
        for step, change in steps:
            state.commit_batch("local", run, **change)
            assert_tallies_match_scans(path, after=step)
        assert state.open_count("local") == 2
        state.forget("local")
        assert state.open_count("local") == 0 and state.open_counts("local", "owner") == []
    finally:
        state.close()
    assert_tallies_match_scans(path)


def test_a_sync_keeps_the_counts_of_a_full_scan(org: Any) -> None:
    """A full run, an incremental run after deals changed and one was deleted, a dry run and
    another full run: the counts are the scans' after each; a hand edit is counted again."""
    full = org.sync()
    assert full.findings_open > 20
    assert_tallies_match_scans(org.state_path)
    state = org.state()
    try:
        deals = [
            f.record_id
            for f in state.findings("local", status="open")
            if f.record_type == "opportunity"
        ]
    finally:
        state.close()
    for deal in deals[:5]:
        org.crm.update("opportunity", deal, {"next_step": "Pricing call with the CFO"}, by="u1")
    org.crm.delete("opportunity", deals[5])
    incremental = org.sync()
    assert not incremental.full and incremental.findings_resolved > 0
    assert_tallies_match_scans(org.state_path)
    org.crm.update("opportunity", deals[6], {"next_step": "Pricing call with the CFO"}, by="u1")
    org.sync(dry_run=True)
    assert_tallies_match_scans(org.state_path)
    again = org.sync(full=True, as_of=dt.date(2026, 11, 25))
    assert again.findings_open == _scanned(org.state_path)["open"][0][0]
    assert_tallies_match_scans(org.state_path)
    db = sqlite3.connect(org.state_path)
    db.execute("UPDATE findings SET owner_name = 'zz ' || owner_name WHERE severity = 'warn'")
    db.commit()
    db.close()
    state = org.state()
    try:
        state.recount("local")
    finally:
        state.close()
    assert_tallies_match_scans(org.state_path)


def test_a_deals_pushes_judged_again_are_replaced_with_their_monthly_counts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite3"
    state = StateStore(path)
    try:
        run = _full_run(state)
        october, november = dt.date(2026, 10, 3), dt.date(2026, 11, 5)
        twice = [Push("o1", october, True, False), Push("o1", october, True, False)]
        state.commit_batch(
            "local", run, pushes=(["o1", "o2"], [*twice, Push("o2", november, False, False)])
        )
        assert state.pushes_by_month("local") == [("2026-10", 2, 2), ("2026-11", 1, 0)]
        # o1 judged again: one of its two pushes approved since, one more in November
        again = [twice[0], Push("o1", october, True, True), Push("o1", november, True, False)]
        state.commit_batch("local", run, pushes=(["o1"], again))
        assert state.pushes_by_month("local") == [("2026-10", 2, 1), ("2026-11", 2, 1)]
        state.commit_batch("local", run, pushes=(["o1", "o2"], []))
        assert state.pushes_by_month("local") == []
    finally:
        state.close()
    assert_tallies_match_scans(path)
