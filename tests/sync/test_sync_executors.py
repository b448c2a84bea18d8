"""``[engine] executor`` for sync: a process pool or a Dask cluster judges the read batches, and
the state and the CRM's tasks come out exactly as when one process judges them."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.engine.executors import JudgingSession
from tsos_rules.errors import ConfigError
from tsos_rules.sync.job import run_sync
from tsos_rules.sync.summary import SyncSummary

AS_OF = dt.date(2026, 11, 24)
#: Task fields stamped with the wall clock (the runs being compared ran at other times).
CLOCK = ("created_at", "closed_at", "reopened_at", "due_date")
Org = Any


#: Every installed pack, contrib packs included (the sync fixtures turn them off).
pytestmark = pytest.mark.usefixtures("contrib_packs")


@pytest.fixture(scope="module")
def org_document() -> dict[str, Any]:
    return generate_org(opportunities=400, seed=11, as_of=AS_OF)


def _sync(org: Org, engine: Mapping[str, Any], *, batch_size: int = 60) -> SyncSummary:
    config = {**org.config(batch_size=batch_size), "engine": dict(engine)}
    return run_sync(config, as_of=AS_OF)


def _outcome(org: Org) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every finding the state holds, and every task in the CRM, ids and order included."""
    state = sqlite3.connect(org.state_path)
    findings = state.execute(
        "SELECT fingerprint, rule, record_type, record_id, status, severity, message, details, "
        "task_id, task_status FROM findings ORDER BY fingerprint"
    ).fetchall()
    state.close()
    crm = sqlite3.connect(org.crm_path)
    tasks = []
    for row in crm.execute(
        "SELECT id, external_id, what_id, owner_id, data FROM activities "
        "WHERE external_id IS NOT NULL ORDER BY id"
    ):
        data = {k: v for k, v in json.loads(row[4]).items() if k not in CLOCK}
        tasks.append((*row[:4], data))
    crm.close()
    return findings, tasks


def _edit(org: Org) -> None:
    """A day's edits: an amount, a rename, a deal gone."""
    org.crm.update("opportunity", "o000007", {"amount": 990_000})
    org.crm.update("opportunity", "o000031", {"name": "Renamed deal"})
    org.crm.update("opportunity", "o000052", {"stage": "Closed Lost", "is_closed": True})


def _run_twice(org: Org, engine: Mapping[str, Any]) -> list[Any]:
    first = _sync(org, engine)
    after_full = _outcome(org)
    _edit(org)
    second = _sync(org, engine)
    assert first.full and not second.full
    assert first.exit_code == second.exit_code
    return [after_full, _outcome(org), first.records_judged, second.records_judged]


@pytest.mark.parametrize(
    "engine",
    [
        {"executor": "processes", "workers": 2},
        pytest.param(
            {"executor": "dask", "workers": 2},  # a real LocalCluster of 2 worker processes
            # a loaded machine makes distributed warn (an unresponsive event loop, slow
            # scratch directories); warnings are errors in this suite, these are not
            marks=[
                pytest.mark.filterwarnings("ignore::UserWarning:distributed.*"),
                pytest.mark.filterwarnings("ignore::RuntimeWarning:distributed.*"),
            ],
        ),
    ],
    ids=["processes", "dask-local-cluster"],
)
def test_an_executor_gives_the_state_and_tasks_of_one_process(
    make_org: Callable[[Mapping[str, Any]], Org],
    org_document: dict[str, Any],
    engine: Mapping[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    judged_by_executor: list[int] = []
    judge = JudgingSession.judge

    def counted(self: JudgingSession, *args: Any, **kwargs: Any) -> list[Any]:
        found = judge(self, *args, **kwargs)
        judged_by_executor.append(len(found))
        return found

    monkeypatch.setattr(JudgingSession, "judge", counted)
    alone = _run_twice(make_org(org_document), {"executor": "local"})
    assert not judged_by_executor
    findings, tasks = alone[0]
    assert any(row[1] == "channel-economics.partner-credit-limit" for row in findings)
    assert tasks, "the full run opened tasks"
    assert alone[1] != alone[0], "the edits changed something"
    assert _run_twice(make_org(org_document), engine) == alone
    assert len(judged_by_executor) > 2 and sum(judged_by_executor) > 0  # batches went there


def test_a_bad_executor_names_the_config_key(
    make_org: Callable[[Mapping[str, Any]], Org], org_document: dict[str, Any], tmp_path: Path
) -> None:
    org = make_org(org_document)
    with pytest.raises(ConfigError, match=r"engine\.executor: expected local, processes, dask"):
        _sync(org, {"executor": "threads"})
