"""The demo CRM writes a batch of task creations in a few statements: the tasks, their ids and
order, and the results must be exactly those of writing the actions one at a time, and one bad
item must still fail alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from tsos_rules.connectors.base import Action, ActionKind, ActionResult, ActionStatus
from tsos_rules.connectors.local.connector import LocalConnector
from tsos_rules.connectors.local.crm import LocalCRM

#: Written at the moment of the write: not compared between two CRMs.
MOMENTS = ("created_at", "due_date", "reopened_at", "closed_at")


def _task(n: int, record_id: str = "o1", **changes: Any) -> Action:
    fields: dict[str, Any] = {
        "kind": ActionKind.CREATE_TASK,
        "fingerprint": f"{n:032x}",
        "record_type": "opportunity",
        "record_id": record_id,
        "owner_id": "u1",
        "subject": f"[tsos-rules] Next step missing: deal {record_id}",
        "description": "Agree a next step with the buyer.\nDoctrine: “no deal without one”",
        "rule": "tsos.next-step-required",
    }
    fields.update(changes)
    return Action(**fields)


def _close(n: int) -> Action:
    return Action(
        kind=ActionKind.CLOSE_TASK,
        fingerprint=f"{n:032x}",
        record_type="opportunity",
        record_id="o1",
        description="Resolved.",
    )


def _connector(path: Path) -> LocalConnector:
    return LocalConnector(LocalCRM(path))


def _tasks(connector: LocalConnector) -> list[tuple[Any, ...]]:
    rows = connector.crm.db.execute(
        "SELECT rowid, id, what_id, owner_id, external_id, created_by, is_deleted, data "
        "FROM activities ORDER BY rowid"
    )
    return [
        (
            *row[:7],
            {k: v for k, v in json.loads(row[7]).items() if k not in MOMENTS},
        )
        for row in rows
    ]


def _prepare(connector: LocalConnector) -> None:
    """Tasks 1 and 2 open, task 3 closed (its finding resolved)."""
    connector.write([_task(1), _task(2, "o2"), _task(3, "o3")])
    connector.write([_close(3)])


def _one_at_a_time(connector: LocalConnector, actions: list[Action]) -> list[ActionResult]:
    results: list[ActionResult] = []
    for action in actions:
        results.extend(connector.write([action]))
    return results


def test_a_batch_of_creations_equals_one_at_a_time(tmp_path: Path) -> None:
    actions = [
        _task(10, "o10"),
        _task(1),  # open already
        _task(3, "o3", subject="[tsos-rules] again"),  # closed: reopened with the new text
        _task(11, "o11"),
        _task(10, "o10"),  # twice in one batch: the second finds the first
        _task(3, "o3"),  # reopened just now: open
        _close(2),
        _task(12, "o12"),
        _task(2, "o2"),  # closed by the action before it: reopened
    ]
    batched, single = _connector(tmp_path / "a.sqlite3"), _connector(tmp_path / "b.sqlite3")
    try:
        _prepare(batched)
        _prepare(single)
        results = batched.write(actions)
        assert results == _one_at_a_time(single, actions)
        assert [r.status for r in results] == [
            ActionStatus.WRITTEN,
            ActionStatus.ALREADY_DONE,
            ActionStatus.WRITTEN,
            ActionStatus.WRITTEN,
            ActionStatus.ALREADY_DONE,
            ActionStatus.ALREADY_DONE,
            ActionStatus.WRITTEN,
            ActionStatus.WRITTEN,
            ActionStatus.WRITTEN,
        ]
        assert [r.crm_id for r in results][:4] == [
            "00T000000000004",
            "00T000000000001",
            "00T000000000003",
            "00T000000000005",
        ]
        assert _tasks(batched) == _tasks(single)
        assert batched.crm.meta("task_seq") == single.crm.meta("task_seq") == "6"
        subject = json.loads(
            batched.crm.db.execute(
                "SELECT data FROM activities WHERE id = '00T000000000003'"
            ).fetchone()[0]
        )["subject"]
        assert subject == "[tsos-rules] again"
    finally:
        batched.close()
        single.close()


def test_one_bad_creation_fails_alone_and_takes_no_number(tmp_path: Path) -> None:
    """A creation the database refuses fails with its reason; the others are written, their
    ids without a gap, as when each is written on its own."""
    bad = _task(21, "o21", owner_id=cast(Any, ["not", "an", "id"]))
    actions = [_task(20, "o20"), bad, _task(22, "o22")]
    batched, single = _connector(tmp_path / "a.sqlite3"), _connector(tmp_path / "b.sqlite3")
    try:
        results = batched.write(actions)
        assert results == _one_at_a_time(single, actions)
        assert [r.status for r in results] == [
            ActionStatus.WRITTEN,
            ActionStatus.FAILED,
            ActionStatus.WRITTEN,
        ]
        assert results[1].error
        assert [results[0].crm_id, results[2].crm_id] == ["00T000000000001", "00T000000000002"]
        assert _tasks(batched) == _tasks(single)
        assert len(_tasks(batched)) == 2
    finally:
        batched.close()
        single.close()
