"""``tsos-rules findings``: the worklist read from the state store after a sync."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tsos_rules.sync.state import StateStore
from tsos_rules.sync.state.worklist import WorklistQuery

Cli = Callable[..., Any]


@pytest.fixture
def synced(org: Any, tmp_path: Path) -> tuple[Any, str]:
    """The demo org synced once in annotate mode, and a config file pointing at it."""
    org.sync()
    path = tmp_path / "tsos.toml"
    path.write_text(
        f"[connector]\ntype = 'local'\npath = '{org.crm_path}'\n"
        f"[state]\npath = '{org.state_path}'\n",
        encoding="utf-8",
    )
    return org, str(path)


def _json(cli: Cli, config: str, *args: str) -> tuple[int, list[dict[str, Any]]]:
    result = cli("findings", "--config", config, "--format", "json", *args)
    return result.code, json.loads(result.out)


def test_every_open_finding_is_one_row_naming_record_people_and_remedy(
    cli: Cli, synced: tuple[Any, str]
) -> None:
    org, config = synced
    code, rows = _json(cli, config)
    assert code == 1  # block findings are listed
    assert len(rows) == len(org.open_findings())
    assert len({row["fingerprint"] for row in rows}) == len(rows)
    deal = next(r for r in rows if r["record_type"] == "opportunity" and r["partner"])
    assert deal["record_name"] and deal["record_name"] != deal["record_id"]
    assert deal["owner"] and deal["account"] and deal["message"] and deal["remedy"]
    assert deal["url"] is None  # the local CRM has no web UI to link to
    assert deal["age_days"] == 0 and deal["status"] == "open"
    # block first, then warn
    severities = [row["severity"] for row in rows]
    assert severities == sorted(severities, key=["block", "warn", "info"].index)


def test_filters_narrow_the_list_to_what_was_asked(cli: Cli, synced: tuple[Any, str]) -> None:
    _, config = synced
    _, everything = _json(cli, config)
    owner = everything[0]["owner"]
    code, mine = _json(cli, config, "--owner", owner.upper())
    assert mine and {row["owner"] for row in mine} == {owner}
    assert len(mine) == sum(1 for row in everything if row["owner"] == owner)
    _, closes = _json(cli, config, "--rule", "tsos.close-*")
    assert closes and all(row["rule"].startswith("tsos.close-") for row in closes)
    code, warns = _json(cli, config, "--severity", "warn")
    assert code == 0 and warns and {row["severity"] for row in warns} == {"warn"}
    partner = next(row["partner"] for row in everything if row["partner"])
    _, theirs = _json(cli, config, "--partner", partner, "--limit", "2")
    assert len(theirs) <= 2 and {row["partner"] for row in theirs} == {partner}
    _, none = _json(cli, config, "--older-than", "3")
    assert none == []  # everything was first seen today
    _, resolved = _json(cli, config, "--status", "resolved")
    assert resolved == []


def test_older_than_and_age_use_first_seen(synced: tuple[Any, str]) -> None:
    org, _ = synced
    store = org.state()
    try:
        old = store.db.execute("SELECT fingerprint FROM findings LIMIT 1").fetchone()[0]
        store.db.execute(
            "UPDATE findings SET first_seen = ? WHERE fingerprint = ?",
            ((dt.datetime.now(dt.UTC) - dt.timedelta(days=20)).isoformat(), old),
        )
        rows = store.worklist("local", WorklistQuery(older_than_days=14, status="open"))
        assert [row.fingerprint for row in rows] == [old]
        assert rows[0].age_days == 20
        by_age = store.worklist("local", WorklistQuery(sort="age", limit=1))
        assert by_age[0].fingerprint == old
    finally:
        store.close()


def test_csv_and_table_formats(cli: Cli, synced: tuple[Any, str]) -> None:
    _, config = synced
    result = cli("findings", "--config", config, "--format", "csv", "--limit", "5")
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert len(rows) == 5 and rows[0]["rule"] and rows[0]["remedy"] and rows[0]["record_name"]
    table = cli("findings", "--config", config, "--limit", "1", "--severity", "warn")
    assert table.code == 0 and "What to do:" in table.out and "1 finding(s)" in table.out


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--sort", "colour"), "--sort"),
        (("--status", "closed"), "--status"),
        (("--older-than", "-1"), "--older-than"),
        (("--limit", "0"), "--limit"),
    ],
)
def test_bad_options_exit_2_naming_the_option(
    cli: Cli, synced: tuple[Any, str], args: tuple[str, ...], named: str
) -> None:
    _, config = synced
    result = cli("findings", "--config", config, *args)
    assert result.code == 2 and named in result.err and "Traceback" not in result.err


def test_an_old_state_file_gains_the_worklist_columns(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite3")
    try:
        columns = {row[1] for row in store.db.execute("PRAGMA table_info(findings)")}
        assert {"record_name", "account_name", "record_url", "shadow"} <= columns
        plan = store.db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM findings WHERE connector = 'x' "
            "AND owner_name = 'Ray' COLLATE NOCASE"
        ).fetchall()
        assert "findings_by_owner_name" in " ".join(str(tuple(row)) for row in plan)
    finally:
        store.close()
