"""``read_batches`` on an SQL source: pages of company groups that together judge the org
exactly once, each page with every related record, none holding the whole org; the sync
finds the same findings paged as whole. A CSV folder comes whole, in one batch."""

from __future__ import annotations

import collections
import datetime as dt
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from tabular_support import create_schema, generated_org, seed, settings

from tsos_rules.connectors.base import ReadResult
from tsos_rules.connectors.tabular import source as tabular_source
from tsos_rules.connectors.tabular.connector import TabularConnector
from tsos_rules.sync.job import run_sync
from tsos_rules.testing.contract import CONTRACT_SNAPSHOT, ConnectorContract, missing_related

SEEDED = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
LATER = dt.datetime(2026, 11, 10, 9, 30, tzinfo=dt.UTC)
UNTIL = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("paging") / "crm.sqlite3"
    tables = generated_org(path, 120)
    # closing(): sqlite3's own context manager commits but never closes (3.13 warns)
    with closing(sqlite3.connect(path)) as db, db:  # a lead naming only its company
        account, owner = db.execute(
            "SELECT a.name, o.owner_id FROM accounts a JOIN opportunities o ON o.account_id = a.id "
            "WHERE o.is_closed = 0 ORDER BY a.id LIMIT 1"
        ).fetchone()
        rival = db.execute(
            "SELECT id FROM users WHERE id <> ? ORDER BY id LIMIT 1", (owner,)
        ).fetchone()[0]
        db.execute(
            "INSERT INTO leads (id, company, owner_id, status, source, updated_at) "
            "VALUES ('lead-by-name', ?, ?, 'Working', 'web', ?)",
            (f"{account.upper()}, Inc.", rival, SEEDED.isoformat()),
        )
    return path, tables


def _connector(path: Path, tables: dict[str, Any]) -> TabularConnector:
    return TabularConnector.from_settings(
        {"type": "tabular", "url": f"sqlite:///{path}", "tables": tables}
    )


def _judged(batches: list[ReadResult]) -> collections.Counter[tuple[str, str]]:
    return collections.Counter(k for b in batches for k in b.changed | b.affected)


def test_pages_judge_the_org_once_each_with_its_context(org: tuple[Path, dict[str, Any]]) -> None:
    connector = _connector(*org)
    try:
        whole = connector.read(None, until=UNTIL)
        batches = list(connector.read_batches(None, until=UNTIL, batch_size=2))
    finally:
        connector.close()
    assert len(batches) > 5
    judged = _judged(batches)
    assert set(judged) == set(whole.changed)
    assert max(judged.values()) == 1, judged.most_common(3)  # no record judged twice
    dangling = set(missing_related(whole))  # the generator names a partner that is not there
    for batch in batches:
        assert set(missing_related(batch)) <= dangling, batch.progress
        assert batch.watermark == whole.watermark
    deals = len(whole.snapshot.opportunities)
    assert max(len(b.snapshot.opportunities) for b in batches) < deals / 3  # never the org
    assert batches[-1].progress == (len(batches), len(batches))


def test_incremental_pages_judge_what_changed(org: tuple[Path, dict[str, Any]]) -> None:
    path, tables = org
    copy = path.with_name("incremental.sqlite3")
    with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(copy)) as target:
        source.backup(target)
    with closing(sqlite3.connect(copy)) as db, db:
        deals = [r[0] for r in db.execute("SELECT id FROM opportunities ORDER BY id LIMIT 3")]
        db.executemany(
            "UPDATE opportunities SET amount = amount + 1, updated_at = ? WHERE id = ?",
            [(LATER.isoformat(), d) for d in deals],
        )
        db.execute(
            "UPDATE leads SET updated_at = ? WHERE id = (SELECT min(id) FROM leads "
            "WHERE account_id IS NULL)",
            (LATER.isoformat(),),
        )
    connector = _connector(copy, tables)
    try:
        first = connector.read(None, until=SEEDED + dt.timedelta(days=1))
        whole = connector.read(first.watermark, until=UNTIL)
        batches = list(connector.read_batches(first.watermark, until=UNTIL, batch_size=1))
    finally:
        connector.close()
    changed = {k for b in batches for k in b.changed}
    assert changed == set(whole.changed) and len(changed) == 4
    affected = {k for b in batches for k in b.affected}
    assert set(whole.affected) <= affected  # the rest of each changed record's company
    assert max(_judged(batches).values()) == 1
    dangling = set(missing_related(whole))
    for batch in batches:
        assert set(missing_related(batch)) <= dangling
    assert {b.watermark for b in batches} == {UNTIL.isoformat()}


def test_long_in_lists_are_cut_under_the_driver_limit(
    org: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tabular_source, "IN_CHUNK", 3)
    connector = _connector(*org)
    try:
        whole = connector.read(None, until=UNTIL)
        (page,) = connector.read_batches(None, until=UNTIL, batch_size=10_000)
    finally:
        connector.close()
    assert page.changed == whole.changed
    assert {o.id for o in page.snapshot.opportunities} == {
        o.id for o in whole.snapshot.opportunities
    }


def test_the_sync_finds_the_same_paged_as_whole(
    org: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """Company groups keep what the rules compare together (a lead with only a company name
    and that company's deals): a sync in small pages finds what one whole read finds."""
    path, tables = org

    def sync(name: str, batch_size: int) -> dict[str, Any]:
        config = {
            "connector": {"type": "tabular", "url": f"sqlite:///{path}", "tables": tables},
            "state": {"path": str(tmp_path / f"{name}.sqlite3")},
            "sync": {"mode": "report", "batch_size": batch_size},
        }
        summary = run_sync(config, as_of=dt.date(2026, 11, 24), full=True).to_dict()
        return dict(summary["findings"]["by_rule"])

    paged = sync("paged", 3)
    whole = sync("whole", 100_000)  # every company group in one page: the whole org
    assert paged == whole and whole


def test_a_csv_folder_comes_whole_in_one_batch(tmp_path: Path) -> None:
    connector = TabularConnector.from_settings(
        settings({"folder": str(tmp_path / "export")}, csv=True)
    )
    create_schema(connector)
    seed(connector, CONTRACT_SNAPSHOT, ConnectorContract.T0)
    try:
        whole = connector.read(None, until=UNTIL.replace(year=2100))
        (batch,) = connector.read_batches(None, until=UNTIL.replace(year=2100), batch_size=1)
    finally:
        connector.close()
    assert batch.changed == whole.changed and batch.snapshot == whole.snapshot


def test_incremental_pages_report_deletions_once(tmp_path: Path) -> None:
    t0 = ConnectorContract.T0
    connector = TabularConnector.from_settings(
        settings({"url": f"sqlite:///{tmp_path / 'crm.sqlite3'}"}, csv=False)
    )
    try:
        create_schema(connector)
        seed(connector, CONTRACT_SNAPSHOT, t0)
        first = connector.read(None, until=t0 + dt.timedelta(seconds=1))
        gone = t0 + dt.timedelta(seconds=10)
        connector.source.update(
            "crm_deals",
            ("deal_id", "o2"),
            {
                "is_deleted": True,
                "updated_at": connector.codecs["opportunity"].encode_modified(gone, text=False),
            },
            None,
        )
        whole = connector.read(first.watermark, until=gone + dt.timedelta(seconds=10))
        batches = list(
            connector.read_batches(first.watermark, until=gone + dt.timedelta(seconds=10))
        )
    finally:
        connector.close()
    assert ("opportunity", "o2") in whole.deleted
    assert [b.deleted for b in batches if b.deleted] == [whole.deleted]
    assert all(("opportunity", "o2") not in b.changed for b in batches)
