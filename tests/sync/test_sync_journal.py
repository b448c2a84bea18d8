"""The write-ahead journal: writes are committed as pending before they reach the CRM, settled
by the commit that records their outcomes, and entries a failed or killed run left behind are
settled by the next run (tasks adopted by findings still open, closed for the others)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tsos_rules.connectors.base import (
    Action,
    ActionKind,
    ActionResult,
    ActionStatus,
    Capabilities,
)
from tsos_rules.connectors.local.connector import LocalConnector
from tsos_rules.errors import ExitCode, FatalConnectorError
from tsos_rules.findings import Severity
from tsos_rules.sync.job import SETTLE_ATTEMPTS
from tsos_rules.sync.planner import Mode, ModePolicy, Planner, RuleText
from tsos_rules.sync.state import FindingState, PendingWrite, StateStore
from tsos_rules.testing import builders as b

MakeOrg = Callable[[Mapping[str, Any]], Any]
RULE = "tsos.next-step-required"


class _DiesAfterWriting(LocalConnector):
    """Makes the writes, then fails as if the process died before the state commit."""

    def __init__(self, inner: LocalConnector) -> None:
        super().__init__(inner.crm)

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        super().write(actions)
        raise FatalConnectorError("the connection dropped after the write")


class _RefusesToClose(LocalConnector):
    """Answers FAILED for every task close, writing nothing for them."""

    def __init__(self, inner: LocalConnector) -> None:
        super().__init__(inner.crm)

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        closes = [a for a in actions if a.kind is ActionKind.CLOSE_TASK]
        others = iter(super().write([a for a in actions if a.kind is not ActionKind.CLOSE_TASK]))
        return [
            ActionResult(a.fingerprint, a.kind, ActionStatus.FAILED, error="CRM is read-only")
            if a in closes
            else next(others)
            for a in actions
        ]


def _pending(org: Any) -> list[PendingWrite]:
    state = org.state()
    try:
        return state.pending_writes("local")
    finally:
        state.close()


def _orphaned_task(make_org: MakeOrg) -> Any:
    """A run that opened a task for o1's missing next step and died before recording it; then
    the rep fixed the deal."""
    org = make_org(b.snapshot(opportunities=[b.deal("o1", next_step="TBD")]))
    with pytest.raises(FatalConnectorError):
        org.sync(connector=_DiesAfterWriting(LocalConnector(org.crm)))
    assert [t["status"] for t in org.crm.tasks()] == ["open"]
    assert org.open_findings() == {}
    (entry,) = _pending(org)
    assert (entry.kind, entry.record_id, entry.rule, entry.owner_id) == (
        ActionKind.CREATE_TASK,
        "o1",
        RULE,
        "u1",
    )
    assert entry.fingerprint == org.crm.tasks()[0]["external_id"]
    org.crm.update("opportunity", "o1", {"next_step": "Pricing call"}, by="u1")
    return org


def test_a_write_that_failed_after_reaching_the_crm_is_settled_by_the_next_run(
    make_org: MakeOrg,
) -> None:
    org = _orphaned_task(make_org)
    summary = org.sync()
    assert summary.exit_code == ExitCode.OK
    assert summary.to_dict()["actions"]["by_kind"] == {"close_task": {"written": 1}}
    assert [t["status"] for t in org.crm.tasks()] == ["completed"]
    assert _pending(org) == [] and org.open_findings() == {}
    state = org.state()
    (run, failed) = state.runs("local")
    state.close()
    assert (run["outcome"], failed["outcome"]) == ("ok", "connector_failed")


def test_a_pending_task_for_a_finding_still_open_is_adopted(make_org: MakeOrg) -> None:
    org = make_org(b.snapshot(opportunities=[b.deal("o1", next_step="TBD")]))
    with pytest.raises(FatalConnectorError):
        org.sync(connector=_DiesAfterWriting(LocalConnector(org.crm)))
    (task,) = org.crm.tasks()

    summary = org.sync()
    assert summary.to_dict()["actions"]["by_kind"] == {"create_task": {"already_done": 1}}
    (finding,) = org.open_findings().values()
    assert finding.task_id == task["id"] and finding.has_open_task
    assert [t["status"] for t in org.crm.tasks()] == ["open"]
    assert _pending(org) == []


def test_dry_run_journals_nothing_and_settles_nothing(make_org: MakeOrg) -> None:
    org = _orphaned_task(make_org)
    before = _pending(org)
    summary = org.sync(dry_run=True)
    assert summary.to_dict()["actions"]["by_kind"] == {"close_task": {"planned": 1}}
    assert [t["status"] for t in org.crm.tasks()] == ["open"]
    assert _pending(org) == before

    fresh = make_org(b.snapshot(opportunities=[b.deal("o2", next_step="TBD")]))
    assert fresh.sync(dry_run=True).to_dict()["actions"]["planned"] == 1
    db = sqlite3.connect(fresh.state_path)
    assert db.execute("SELECT count(*) FROM pending_writes").fetchone() == (0,)
    db.close()


def test_report_mode_keeps_the_journal_for_a_run_that_writes(make_org: MakeOrg) -> None:
    org = _orphaned_task(make_org)
    before = _pending(org)
    assert org.sync(mode="report").to_dict()["actions"]["by_kind"] == {}
    assert _pending(org) == before and org.crm.tasks()[0]["status"] == "open"
    org.sync()
    assert _pending(org) == [] and org.crm.tasks()[0]["status"] == "completed"


def test_a_settling_write_that_fails_stays_pending_and_is_tried_again(
    make_org: MakeOrg,
) -> None:
    org = _orphaned_task(make_org)
    refused = org.sync(connector=_RefusesToClose(LocalConnector(org.crm)))
    assert refused.exit_code == ExitCode.CONNECTOR
    assert refused.to_dict()["actions"]["by_kind"] == {"close_task": {"failed": 1}}
    fingerprint = org.crm.tasks()[0]["external_id"]
    assert {(p.fingerprint, p.kind.value, p.attempts) for p in _pending(org)} == {
        (fingerprint, "create_task", 1),
        (fingerprint, "close_task", 1),
    }
    assert org.crm.tasks()[0]["status"] == "open"

    summary = org.sync()
    assert summary.to_dict()["actions"]["by_kind"] == {"close_task": {"written": 1}}
    assert _pending(org) == [] and org.crm.tasks()[0]["status"] == "completed"


def test_a_write_that_never_settles_is_given_up_after_a_few_runs(
    make_org: MakeOrg, caplog: pytest.LogCaptureFixture
) -> None:
    org = _orphaned_task(make_org)
    for attempt in range(1, SETTLE_ATTEMPTS):
        assert (
            org.sync(connector=_RefusesToClose(LocalConnector(org.crm))).exit_code
            == ExitCode.CONNECTOR
        )
        assert {p.attempts for p in _pending(org)} == {attempt}
    last = org.sync(connector=_RefusesToClose(LocalConnector(org.crm)))
    assert last.to_dict()["actions"]["by_kind"] == {"close_task": {"failed": 1}}
    assert _pending(org) == []
    assert "gave up settling" in caplog.text and org.crm.tasks()[0]["external_id"] in caplog.text
    assert org.sync().to_dict()["actions"]["by_kind"] == {}  # later runs are clean


# -- the state store -------------------------------------------------------------------------


def _action(kind: ActionKind, fingerprint: str, record_id: str = "o1") -> Action:
    return Action(kind, fingerprint, "opportunity", record_id, owner_id="u1", rule=RULE)


def test_the_journal_is_committed_and_settled_by_the_batch_commit(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = StateStore(path)
    store.journal("local", 1, [_action(ActionKind.CREATE_TASK, "a" * 32)])
    store.journal(
        "local",
        2,
        [
            _action(ActionKind.CREATE_TASK, "b" * 32, "o2"),
            _action(ActionKind.UPDATE_FIELDS, "b" * 32, "o2"),
        ],
    )
    store.journal("other", 2, [_action(ActionKind.CLOSE_TASK, "c" * 32)])
    store.close()  # committed, not held in an open transaction

    store = StateStore(path)
    assert [(p.fingerprint[0], p.kind.value, p.run_id) for p in store.pending_writes("local")] == [
        ("a", "create_task", 1),
        ("b", "create_task", 2),
        ("b", "update_fields", 2),
    ]
    assert [p.fingerprint[0] for p in store.pending_writes("local", before_run=2)] == ["a"]
    # A failed attempt is counted; a later run journalling the same write takes the entry over,
    # keeping the count.
    store.commit_batch("local", 2, retried=["a" * 32])
    store.journal("local", 3, [_action(ActionKind.CREATE_TASK, "a" * 32)])
    assert [p.run_id for p in store.pending_writes("local", before_run=3)] == [2, 2]
    (taken,) = [p for p in store.pending_writes("local") if p.run_id == 3]
    assert taken.attempts == 1
    store.commit_batch(
        "local",
        3,
        results=[
            (ActionResult("a" * 32, ActionKind.CREATE_TASK, ActionStatus.WRITTEN, "t1"), None)
        ],
        settled=[("a" * 32, ActionKind.CREATE_TASK), ("b" * 32, ActionKind.UPDATE_FIELDS)],
    )
    assert [(p.fingerprint[0], p.kind.value) for p in store.pending_writes("local")] == [
        ("b", "create_task")
    ]
    store.forget("local")
    assert store.pending_writes("local") == []
    assert len(store.pending_writes("other")) == 1
    store.close()


def test_a_dry_run_store_rolls_the_journal_back(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = StateStore(path, dry_run=True)
    store.journal("local", 1, [_action(ActionKind.CREATE_TASK, "a" * 32)])
    assert len(store.pending_writes("local")) == 1  # the dry run sees its would-be state
    store.close()
    store = StateStore(path)
    assert store.pending_writes("local") == []
    store.close()


# -- the planner -----------------------------------------------------------------------------


def _state(fingerprint: str, *, status: str = "open", task: str | None = None) -> FindingState:
    return FindingState(
        fingerprint=fingerprint,
        rule=RULE,
        severity="warn",
        record_type="opportunity",
        record_id="o1",
        reason="missing",
        message="o1 has no real next step",
        owner_id="u2",
        status=status,
        first_seen="2026-11-24",
        task_id=task,
        task_status="open" if task else None,
        repair_status=None,
        repair_changes=None,
    )


def _pending_entry(fingerprint: str, kind: ActionKind) -> PendingWrite:
    return PendingWrite(fingerprint, kind, "opportunity", "o1", RULE, "u1", 1)


def _planner(mode: Mode = Mode.ANNOTATE, *, tasks: bool = True) -> Planner:
    return Planner(
        ModePolicy(mode),
        Capabilities(tasks=tasks),
        {RULE: RuleText("Next step required")},
        Severity.WARN,
    )


def test_the_planner_settles_pending_tasks_by_what_the_run_found() -> None:
    create, close, update = ActionKind.CREATE_TASK, ActionKind.CLOSE_TASK, ActionKind.UPDATE_FIELDS
    pending = [
        _pending_entry("1" * 32, create),  # never recorded, not found again: close
        _pending_entry("2" * 32, create),  # found again and adopted by this run: nothing
        _pending_entry("3" * 32, create),  # recorded as resolved: close, by its task id
        _pending_entry("4" * 32, close),  # closed by the killed run, the finding is back: reopen
        _pending_entry("5" * 32, update),  # a repair: the read shows it, nothing to do
        _pending_entry("6" * 32, create),  # open, held back, no task recorded: adopt
    ]
    states = {
        "2" * 32: _state("2" * 32, task="t2"),
        "3" * 32: _state("3" * 32, status="resolved", task="t3"),
        "4" * 32: _state("4" * 32, task="t4"),
        "6" * 32: _state("6" * 32),
    }
    plan = _planner().reconcile(pending, states)
    got = [(p.action.fingerprint[0], p.action.kind, p.action.crm_id) for p in plan.actions]
    assert got == [
        ("1", ActionKind.CLOSE_TASK, None),
        ("3", ActionKind.CLOSE_TASK, "t3"),
        ("4", ActionKind.CREATE_TASK, None),
        ("6", ActionKind.CREATE_TASK, None),
    ]
    unknown, _, reopen, _ = plan.actions
    assert (unknown.action.record_id, unknown.action.owner_id, unknown.action.rule) == (
        "o1",
        "u1",
        RULE,
    )
    assert unknown.action.description.startswith("Resolved:")
    assert reopen.action.owner_id == "u2"  # the stored owner, as this run judged it
    assert "o1 has no real next step" in reopen.action.description

    # A rule now in report mode keeps no task: a pending one is closed, never adopted.
    report = Planner(
        ModePolicy(Mode.ANNOTATE, {RULE: Mode.REPORT}),
        Capabilities(),
        {},
        Severity.WARN,
    ).reconcile([_pending_entry("6" * 32, create)], states)
    assert [p.action.kind for p in report.actions] == [ActionKind.CLOSE_TASK]
    assert _planner(tasks=False).reconcile(pending, states).actions == ()
