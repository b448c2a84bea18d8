"""A first full run builds the findings' secondary indexes once, after its writes, instead of
keeping them up to date row by row; a run that stops before building them leaves them to the
next run; a run on a state that has findings, and a dry run, drop none."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tsos_rules.errors import ConnectorError
from tsos_rules.sync import job
from tsos_rules.sync.state import StateStore

NOTE = "no findings stored yet: their indexes are built after the batches"


def _indexes(db: sqlite3.Connection) -> dict[str, str]:
    rows = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'findings' "
        "AND sql IS NOT NULL"
    )
    return {str(name): str(sql) for name, sql in rows}


def _file_indexes(path: Path) -> dict[str, str]:
    db = sqlite3.connect(path)
    try:
        return _indexes(db)
    finally:
        db.close()


def _deferred(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [str(row[0]) for row in db.execute("SELECT name FROM deferred_indexes")]
    finally:
        db.close()


@pytest.fixture
def every_index(tmp_path: Path) -> dict[str, str]:
    """The findings indexes of a newly made state file: what every run must end with."""
    StateStore(tmp_path / "new.sqlite3").close()
    indexes = _file_indexes(tmp_path / "new.sqlite3")
    assert "findings_by_owner_id" in indexes and "findings_by_record" in indexes
    return indexes


@pytest.fixture
def during_batches(monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """The findings indexes present while each batch is processed."""
    seen: list[set[str]] = []
    process = job._Job._process

    def recording(self: Any, batch: Any, as_of: Any, **kwargs: Any) -> None:
        seen.append(set(_indexes(self.state.db)))
        process(self, batch, as_of, **kwargs)

    monkeypatch.setattr(job._Job, "_process", recording)
    return seen


def test_a_first_run_builds_the_indexes_after_its_writes(
    org: Any,
    every_index: dict[str, str],
    during_batches: list[set[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tsos_rules.sync.job")
    summary = org.sync(batch_size=20)
    assert summary.findings_new > 0
    assert NOTE in caplog.messages  # the progress says why the run's end takes a moment
    # While it wrote, only the lookup each batch needs was kept...
    assert during_batches and all(seen == {"findings_by_record"} for seen in during_batches)
    # ...and the state ends with every index, as defined by the migrations.
    assert _file_indexes(org.state_path) == every_index
    assert _deferred(org.state_path) == []


def test_a_run_on_a_state_with_findings_drops_none(
    org: Any,
    every_index: dict[str, str],
    during_batches: list[set[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    org.sync()
    during_batches.clear()
    caplog.set_level(logging.INFO, logger="tsos_rules.sync.job")
    org.sync(full=True)
    assert NOTE not in caplog.messages
    assert during_batches and all(seen == set(every_index) for seen in during_batches)
    assert _file_indexes(org.state_path) == every_index


def test_a_dry_first_run_drops_none(
    org: Any, every_index: dict[str, str], during_batches: list[set[str]]
) -> None:
    org.sync(dry_run=True)
    assert during_batches and all(seen == set(every_index) for seen in during_batches)
    assert _file_indexes(org.state_path) == every_index


def test_a_run_that_stops_leaves_the_build_to_the_next(
    org: Any,
    make_org: Any,
    demo_org: dict[str, Any],
    every_index: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    process = job._Job._process
    calls = 0

    def failing_late(self: Any, batch: Any, as_of: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise ConnectorError("the CRM went away")
        process(self, batch, as_of, **kwargs)

    monkeypatch.setattr(job._Job, "_process", failing_late)
    with pytest.raises(ConnectorError):
        org.sync(batch_size=20)
    assert set(_file_indexes(org.state_path)) == {"findings_by_record"}
    assert sorted(_deferred(org.state_path)) == sorted(set(every_index) - {"findings_by_record"})

    monkeypatch.setattr(job._Job, "_process", process)
    summary = org.sync(batch_size=20)
    assert summary.full and summary.findings_open > 0
    assert _file_indexes(org.state_path) == every_index
    assert _deferred(org.state_path) == []
    # The findings are those of a run that never stopped.
    never_stopped = make_org(demo_org)
    never_stopped.sync(batch_size=20)
    assert org.open_findings().keys() == never_stopped.open_findings().keys()
