"""A finding seen again is stored as the full upsert stores it, whether only its text and run
changed (written narrowly, without touching its indexed columns) or its owner, severity or
status did too."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import attrs

from tsos_rules.findings import Finding, Severity
from tsos_rules.sync.state import SeenFinding, StateStore

COLUMNS = (
    "rule, severity, message, details, owner_id, owner_name, partner_id, partner_name, "
    "record_name, account_id, account_name, record_url, shadow, status, resolved_at IS NULL, "
    "reopened, last_run, first_seen, last_seen"
)


def _seen(message: str, **fields: Any) -> SeenFinding:
    finding = Finding(
        rule="tsos.next-step-required",
        severity=Severity.BLOCK,
        record_type="opportunity",
        record_id="o1",
        reason="past",
        message=message,
        doctrine="d",
        details={"next_step_date": message},
    )
    names = {"owner_id": "u1", "owner_name": "Ann", "account_id": "a1", "account_name": "Acme"}
    return SeenFinding(finding, **{**names, **fields})


def _row(state: StateStore) -> dict[str, Any]:
    row = state.db.execute(f"SELECT {COLUMNS} FROM findings").fetchone()
    return dict(zip(COLUMNS.split(", "), tuple(row), strict=True))


def _run(state: StateStore) -> int:
    return state.start_run(
        "local",
        as_of=dt.date(2026, 11, 24),
        mode="annotate",
        full=False,
        dry_run=False,
        watermark_from=None,
    )


def test_a_finding_seen_again_is_stored_alike_however_it_is_written(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.sqlite3")
    try:
        first = _run(state)
        state.commit_batch("local", first, seen=[_seen("2026-11-01")])
        stored = _row(state)
        second = _run(state)
        state.commit_batch("local", second, seen=[_seen("2026-11-02", record_url="https://x")])
        again = _row(state)
        assert (
            again["message"] == "2026-11-02"
            and again["details"] == '{"next_step_date": "2026-11-02"}'
        )
        assert again["last_run"] == second and again["record_url"] == "https://x"
        assert again["first_seen"] == stored["first_seen"] and again["reopened"] == 0
        assert again["last_seen"] >= stored["last_seen"]

        renamed = _seen("2026-11-02", owner_name="Ann B.")
        state.commit_batch("local", _run(state), seen=[renamed])
        assert _row(state)["owner_name"] == "Ann B."
        renamed = attrs.evolve(renamed, shadow=True)
        state.commit_batch("local", _run(state), seen=[renamed])
        assert _row(state)["shadow"] == 1

        state.commit_batch("local", _run(state), resolved=[renamed.finding.fingerprint])
        assert _row(state)["status"] == "resolved" and not _row(state)["resolved_at IS NULL"]
        back = attrs.evolve(renamed, shadow=False)
        state.commit_batch("local", _run(state), seen=[back])
        reopened = _row(state)
        assert reopened["status"] == "open" and reopened["resolved_at IS NULL"]
        assert reopened["reopened"] == 1 and reopened["shadow"] == 0
        assert state.open_count("local") == 1
    finally:
        state.close()


def test_an_incremental_commit_writes_only_the_findings_whose_text_changed(
    tmp_path: Path,
) -> None:
    """An incremental run sees the same findings again on every record it judges: one stored as
    it is now is left alone, one whose text moved gets its text, and neither is marked with the
    run (only a full run marks what it saw, to resolve what it did not)."""
    state = StateStore(tmp_path / "state.sqlite3")
    try:
        first = _run(state)
        state.commit_batch("local", first, seen=[_seen("2026-11-01")])
        stored = _row(state)
        state.commit_batch("local", _run(state), seen=[_seen("2026-11-01")], full=False)
        assert _row(state) == stored  # not written: the same last_seen and last_run

        state.commit_batch("local", _run(state), seen=[_seen("2026-11-02")], full=False)
        moved = _row(state)
        assert moved["message"] == "2026-11-02" and moved["last_seen"] > stored["last_seen"]
        assert moved["last_run"] == first

        full = _run(state)
        unseen = [
            [f.fingerprint for f in chunk]
            for chunk in state.unseen_open("local", full, exclude=frozenset())
        ]
        assert unseen == [[_seen("x").finding.fingerprint]]  # a full run that missed it resolves it
        state.commit_batch("local", full, seen=[_seen("2026-11-02")])
        assert _row(state)["last_run"] == full
        assert list(state.unseen_open("local", full, exclude=frozenset())) == []
    finally:
        state.close()
