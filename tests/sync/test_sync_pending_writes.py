"""Writes the CRM refused, or that a stopped run never made, stay pending in the state and are
sent again by the next runs, incremental ones too, until done or given up; the summary and the
exit code say how many are still pending (issue 14, item 1)."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from tsos_rules.connectors.base import Action, ActionKind, ActionResult, ActionStatus
from tsos_rules.connectors.local import LocalConnector
from tsos_rules.errors import ExitCode, RetriableConnectorError
from tsos_rules.report.html import render_html
from tsos_rules.report.summary import render_summary
from tsos_rules.sync.job import SETTLE_ATTEMPTS
from tsos_rules.testing import builders as b

MakeOrg = Callable[[Mapping[str, Any]], Any]


class _Refuses(LocalConnector):
    """Answers FAILED, writing nothing, for every write of the given kinds (as Salesforce does
    for a Collections call that got 500 ten times, or a row that stayed locked)."""

    def __init__(self, inner: LocalConnector, *kinds: ActionKind) -> None:
        super().__init__(inner.crm)
        self.kinds = kinds or tuple(ActionKind)

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        allowed = iter(super().write([a for a in actions if a.kind not in self.kinds]))
        return [
            ActionResult(a.fingerprint, a.kind, ActionStatus.FAILED, error="500: UNKNOWN_EXCEPTION")
            if a.kind in self.kinds
            else next(allowed)
            for a in actions
        ]


class _Unreachable(LocalConnector):
    """The CRM stops answering writes: the run stops after journalling them."""

    def __init__(self, inner: LocalConnector) -> None:
        super().__init__(inner.crm)

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        raise RetriableConnectorError("503 Service Unavailable")


def _tasks_by_finding(org: Any) -> dict[str, dict[str, Any]]:
    tasks = org.crm.tasks()
    by_finding = {t["external_id"]: t for t in tasks}
    assert len(by_finding) == len(tasks), "two tasks for one finding"
    return by_finding


def _deals() -> dict[str, Any]:
    return b.snapshot(
        opportunities=[b.deal(f"o{i}", next_step="TBD") for i in range(1, 5)],
    )


def test_refused_task_writes_are_sent_again_by_the_next_incremental_run(
    make_org: MakeOrg,
) -> None:
    org = make_org(_deals())
    first = org.sync(connector=_Refuses(LocalConnector(org.crm), ActionKind.CREATE_TASK))
    assert first.full and first.exit_code == ExitCode.CONNECTOR
    assert first.to_dict()["actions"]["failed"] == 4
    assert first.to_dict()["actions"]["pending"] == 4
    assert org.crm.tasks() == []
    wanted = set(org.open_findings())
    assert len(wanted) == 4

    second = org.sync()  # the same day, nothing changed: an incremental run
    assert not second.full and second.records_judged == 0
    assert second.to_dict()["actions"]["by_kind"] == {"create_task": {"written": 4}}
    assert second.to_dict()["actions"]["pending"] == 0
    assert set(_tasks_by_finding(org)) == wanted
    assert all(f.has_open_task for f in org.open_findings().values())

    third = org.sync()
    assert third.to_dict()["actions"]["by_kind"] == {}
    assert set(_tasks_by_finding(org)) == wanted


def test_pending_writes_make_every_later_run_exit_3_until_they_are_done(
    make_org: MakeOrg,
) -> None:
    org = make_org(_deals())
    org.sync(connector=_Refuses(LocalConnector(org.crm), ActionKind.CREATE_TASK))
    # A run that writes nothing (report mode) does not hide them: exit 3, and the count.
    report = org.sync(mode="report")
    assert report.exit_code == ExitCode.CONNECTOR
    assert report.to_dict()["actions"]["pending"] == 4
    assert org.crm.tasks() == []
    done = org.sync()
    assert done.exit_code == ExitCode.BLOCK and done.to_dict()["actions"]["pending"] == 0
    assert len(_tasks_by_finding(org)) == 4


def test_a_pending_create_for_a_finding_resolved_meanwhile_is_dropped_not_written(
    make_org: MakeOrg,
) -> None:
    org = make_org(_deals())
    org.sync(connector=_Refuses(LocalConnector(org.crm), ActionKind.CREATE_TASK))
    fixed = {fp for fp, f in org.open_findings().items() if f.record_id == "o2"}
    assert len(fixed) == 1
    org.crm.update("opportunity", "o2", {"next_step": "Pricing call"}, by="u1")

    summary = org.sync()
    assert not summary.full and summary.findings_resolved == 1
    assert summary.to_dict()["actions"]["by_kind"] == {"create_task": {"written": 3}}
    tasks = _tasks_by_finding(org)
    assert set(tasks) == set(org.open_findings()) and not fixed & set(tasks)
    assert {t["status"] for t in tasks.values()} == {"open"}
    assert summary.to_dict()["actions"]["pending"] == 0


def test_writes_a_stopped_run_never_made_are_made_by_the_next_run(make_org: MakeOrg) -> None:
    org = make_org(_deals())
    with pytest.raises(RetriableConnectorError):
        org.sync(write_retries=0, connector=_Unreachable(LocalConnector(org.crm)))
    assert org.crm.tasks() == []
    summary = org.sync()
    assert summary.to_dict()["actions"]["pending"] == 0
    assert len(_tasks_by_finding(org)) == 4


def test_a_write_refused_every_time_is_given_up_reported_and_not_retried_forever(
    make_org: MakeOrg, caplog: pytest.LogCaptureFixture
) -> None:
    org = make_org(b.snapshot(opportunities=[b.deal("o1", next_step="TBD")]))
    refusing = _Refuses(LocalConnector(org.crm), ActionKind.CREATE_TASK)
    for _ in range(SETTLE_ATTEMPTS - 1):
        summary = org.sync(connector=refusing)
        assert summary.exit_code == ExitCode.CONNECTOR
        assert summary.to_dict()["actions"]["pending"] == 1
    last = org.sync(connector=refusing)
    data = last.to_dict()["actions"]
    assert (data["failed"], data["pending"], data["abandoned"]) == (1, 0, 1)
    assert last.exit_code == ExitCode.CONNECTOR
    assert "gave up" in caplog.text and "o1" in caplog.text and "UNKNOWN_EXCEPTION" in caplog.text
    db = sqlite3.connect(org.state_path)
    (row,) = db.execute("SELECT kind, error FROM actions WHERE status = 'abandoned'").fetchall()
    db.close()
    assert row[0] == "create_task" and "5 attempts" in row[1]
    after = org.sync()
    assert after.to_dict()["actions"]["by_kind"] == {}
    assert after.exit_code == ExitCode.BLOCK and org.crm.tasks() == []


def test_a_refused_repair_is_sent_again_while_its_finding_is_open(make_org: MakeOrg) -> None:
    org = make_org(
        b.snapshot(
            accounts=[b.channel_account("a1")],
            opportunities=[b.channel_deal("o2", partner_id=None)],
        )
    )
    refusing = _Refuses(LocalConnector(org.crm), ActionKind.UPDATE_FIELDS)
    first = org.sync(mode="enforce", connector=refusing)
    assert first.to_dict()["actions"]["by_kind"]["update_fields"] == {"failed": 1}
    assert org.crm.get("opportunity", "o2")["partner_id"] is None
    second = org.sync(mode="enforce")  # incremental: o2 is not read again
    assert not second.full and second.records_judged == 0
    assert second.to_dict()["actions"]["by_kind"] == {"update_fields": {"written": 1}}
    assert org.crm.get("opportunity", "o2")["partner_id"] == "p1"
    assert second.to_dict()["actions"]["pending"] == 0


def test_the_text_json_and_html_summaries_say_how_many_writes_are_pending(
    make_org: MakeOrg,
) -> None:
    org = make_org(_deals())
    data = org.sync(connector=_Refuses(LocalConnector(org.crm), ActionKind.CREATE_TASK)).to_dict()
    assert data["actions"]["pending"] == 4 and data["exit_code"] == ExitCode.CONNECTOR
    text = io.StringIO()
    render_summary(data, stream=text, color=False)
    assert "4 CRM write(s) still pending" in text.getvalue()
    assert "the next run sends them again" in text.getvalue()
    html = render_html(data)
    assert 'id="pending-writes"><b>4</b>CRM writes pending' in html
    done = org.sync().to_dict()
    text = io.StringIO()
    render_summary(done, stream=text, color=False)
    assert "still pending" not in text.getvalue() and "pending-writes" not in render_html(done)
