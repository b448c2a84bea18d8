"""An incremental read of the demo CRM finds people's edits in its modstamp window and leaves
the sync's own tasks out without walking them: the first incremental run after a full sync
would otherwise visit every task that run wrote (740,000 at a million deals)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tsos_rules.connectors.base import Action, ActionKind
from tsos_rules.connectors.local.connector import LocalConnector
from tsos_rules.connectors.local.crm import LocalCRM, decode_watermark
from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.connectors.local.reader import changed_rows_sql

pytestmark = pytest.mark.usefixtures("isolated_env")

AS_OF = dt.date(2026, 11, 24)


def _seeded(path: Path) -> LocalConnector:
    crm = LocalCRM(path)
    crm.seed(json.loads(json.dumps(generate_org(opportunities=40, seed=5, as_of=AS_OF))))
    return LocalConnector(crm)


def _task(n: int, deal: str) -> Action:
    return Action(
        kind=ActionKind.CREATE_TASK,
        fingerprint=f"{n:032x}",
        record_type="opportunity",
        record_id=deal,
        owner_id="u1",
        subject=f"[tsos-rules] Next step missing: deal {deal}",
        description="Agree a next step with the buyer.",
        rule="tsos.next-step-required",
    )


def test_a_read_after_the_syncs_tasks_finds_only_peoples_edits(tmp_path: Path) -> None:
    connector = _seeded(tmp_path / "crm.sqlite3")
    since = connector.read(None).watermark
    assert since is not None
    deals = [deal.id for deal in connector.read(None).snapshot.opportunities]
    connector.write([_task(n, deal) for n, deal in enumerate(deals[:20])])
    connector.crm.update("opportunity", deals[25], {"next_step": "Call the buyer"})

    changed = connector.read(since).changed

    assert changed == {("opportunity", deals[25])}
    connector.close()


def test_the_change_window_over_activities_uses_the_index_of_peoples_edits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "crm.sqlite3"
    _seeded(path).close()
    # a file written before the index existed gets it when it is next opened
    older = LocalCRM(path)
    older.db.execute("DROP INDEX activities_human_modstamp")
    older.close()
    crm = LocalCRM(path)
    low = decode_watermark("2026-11-01T00:00:00+00:00")

    plan = crm.db.execute(
        "EXPLAIN QUERY PLAN " + changed_rows_sql("activities"), (low, low + 1)
    ).fetchall()

    assert any("activities_human_modstamp" in str(row[-1]) for row in plan), plan
    crm.close()
