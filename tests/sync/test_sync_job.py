"""The sync job end to end on real SQLite files: idempotency, resolution, modes, enforce
repairs, stale writes, bad records, incremental scope and the daily full run."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from tsos_rules.connectors.base import Action, ActionKind, ActionResult
from tsos_rules.connectors.local.connector import LocalConnector
from tsos_rules.engine import Engine, filter_severity
from tsos_rules.errors import ConfigError, ExitCode
from tsos_rules.findings import Severity
from tsos_rules.snapshot.document import snapshot_from_dict
from tsos_rules.testing import builders as b

AS_OF = b.TODAY
MakeOrg = Callable[[Mapping[str, Any]], Any]


def _writes(summary: Any) -> int:
    return int(summary.to_dict()["actions"]["written"])


def test_full_sync_records_what_the_engine_finds_and_opens_one_task_each(
    org: Any, demo_org: dict[str, Any]
) -> None:
    summary = org.sync(batch_size=5)
    engine = Engine.from_config(None)
    snapshot, _ = snapshot_from_dict(demo_org)
    expected = filter_severity(engine.evaluate(snapshot, AS_OF), include_info=False)
    engine.close()
    open_findings = org.open_findings()
    assert set(open_findings) == {f.fingerprint for f in expected}
    assert summary.full and summary.batches > 10
    tasks = org.crm.tasks()
    assert sorted(t["external_id"] for t in tasks) == sorted(open_findings)
    assert summary.exit_code == ExitCode.BLOCK
    owners = {f.fingerprint: f.owner_id for f in open_findings.values()}
    assert all(t["owner_id"] == owners[t["external_id"]] for t in tasks)


def test_running_twice_writes_nothing_new(org: Any) -> None:
    first = org.sync()
    tasks = org.crm.tasks()
    assert _writes(first) == len(tasks) > 50
    again = org.sync()
    assert not again.full and _writes(again) == 0 and again.findings_new == 0
    forced = org.sync(full=True)
    assert forced.full and _writes(forced) == 0 and forced.findings_resolved == 0
    assert org.crm.tasks() == tasks


def test_fixing_the_record_resolves_the_finding_and_closes_its_task(make_org: MakeOrg) -> None:
    org = make_org(b.snapshot(opportunities=[b.deal("o1", next_step="TBD"), b.deal("o2")]))
    org.sync()
    [finding] = org.open_findings().values()
    assert (finding.rule, finding.record_id, finding.reason) == (
        "tsos.next-step-required",
        "o1",
        "placeholder",
    )
    [task] = org.crm.tasks()
    assert task["status"] == "open" and task["what_id"] == "o1" and task["owner_id"] == "u1"

    org.crm.update("opportunity", "o1", {"next_step": "Pricing call with the CFO"}, by="u1")
    summary = org.sync()
    assert (summary.full, summary.findings_resolved, summary.exit_code) == (False, 1, ExitCode.OK)
    assert org.open_findings() == {}
    [task] = org.crm.tasks()
    assert task["status"] == "completed"

    # The same breach again: the same task reopens; there is never a second one.
    org.crm.update("opportunity", "o1", {"next_step": "tbd"}, by="u1")
    org.sync()
    assert [t["status"] for t in org.crm.tasks()] == ["open"]


def test_a_deleted_record_resolves_its_findings(make_org: MakeOrg) -> None:
    org = make_org(b.snapshot(opportunities=[b.deal("o1", next_step="TBD")]))
    org.sync()
    org.crm.delete("opportunity", "o1")
    summary = org.sync()
    assert summary.records_deleted == 1 and summary.findings_resolved == 1
    assert [t["status"] for t in org.crm.tasks()] == ["completed"]


def test_an_incremental_run_reads_and_judges_only_the_changed_group(org: Any) -> None:
    full = org.sync()
    deal = next(o for o in org.crm.tasks() if o["what_type"] == "opportunity")["what_id"]
    org.crm.update("opportunity", deal, {"amount": 123456}, by="u1")
    summary = org.sync()
    assert not summary.full
    assert summary.records_changed == 1
    assert 1 <= summary.records_judged < full.records_judged / 20
    assert summary.records_read < full.records_read / 20


def test_the_first_run_on_a_new_date_is_full_and_rejudges_dates(make_org: MakeOrg) -> None:
    org = make_org(b.snapshot(opportunities=[b.deal("o1", next_step_date=b.day(1))]))
    assert org.sync().open_block == 0
    assert not org.sync().full
    tomorrow = org.sync(as_of=AS_OF + dt.timedelta(days=2))
    assert tomorrow.full
    assert [f.reason for f in org.open_findings().values()] == ["past_due"]
    # With the daily full run turned off, an unchanged record is not re-judged.
    other = make_org(b.snapshot(opportunities=[b.deal("o1", next_step_date=b.day(1))]))
    other.sync(daily_full=False)
    later = other.sync(as_of=AS_OF + dt.timedelta(days=2), daily_full=False)
    assert not later.full and other.open_findings() == {}


def test_a_configuration_change_forces_a_full_run(org: Any) -> None:
    org.sync()
    assert not org.sync().full
    summary = org.sync(mode="report")
    assert summary.full
    assert not org.sync(mode="report").full


def test_report_mode_and_per_rule_modes(make_org: MakeOrg) -> None:
    document = b.snapshot(
        opportunities=[b.deal("o1", next_step="TBD"), b.deal("o2", probability=90)]
    )
    quiet = make_org(document)
    summary = quiet.sync(mode="report")
    assert summary.findings_new == 2 and _writes(summary) == 0 and quiet.crm.tasks() == []
    mixed = make_org(document)
    mixed.sync(mode="report", rule_modes={"tsos.next-step-*": "annotate"})
    assert [t["rule"] for t in mixed.crm.tasks()] == ["tsos.next-step-required"]
    with pytest.raises(ConfigError, match=r"sync\.rule_modes\.tsos\.no-such-rule"):
        mixed.sync(rule_modes={"tsos.no-such-rule": "enforce"})


def test_dry_run_writes_nothing_and_commits_nothing(org: Any) -> None:
    summary = org.sync(dry_run=True)
    assert summary.findings_new > 50 and _writes(summary) == 0
    assert summary.to_dict()["actions"]["planned"] == summary.findings_new
    assert org.crm.tasks() == [] and org.open_findings() == {}
    state = org.state()
    assert state.cursor("local").watermark is None
    state.close()
    assert org.sync().full


def _locked_deal_moved() -> dict[str, Any]:
    """o1 is locked (stage date_locked) and its close date was moved from day 20 to day 30
    without approval; o2 is a channel deal whose partner p1 was removed."""
    return b.snapshot(
        accounts=[b.channel_account("a1")],
        opportunities=[
            b.deal("o1", stage="date_locked", close_date=b.day(30)),
            b.channel_deal("o2", partner_id=None),
        ],
        close_date_changes=[
            b.change("o1", old=b.day(20), new=b.day(30), stage="date_locked", changed_by="u1")
        ],
    )


def test_enforce_restores_the_close_date_and_the_partner_once(make_org: MakeOrg) -> None:
    org = make_org(_locked_deal_moved())
    summary = org.sync(mode="enforce")
    counts = summary.to_dict()["actions"]["by_kind"]
    assert counts["update_fields"] == {"written": 2}
    assert org.crm.get("opportunity", "o1")["close_date"] == b.day(20)
    # The partner came back from the CRM's field history (seeded for the removal).
    assert org.crm.get("opportunity", "o2")["partner_id"] == "p1"
    # The next run reads the repaired deals back: the partner is on the deal again and the
    # unapproved move was undone, so both findings resolve and both tasks close, once.
    again = org.sync(mode="enforce")
    assert again.to_dict()["actions"]["by_kind"] == {"close_task": {"written": 2}}
    open_rules = {f.rule for f in org.open_findings().values()}
    assert "tsos.channel-lead-not-direct" not in open_rules
    assert "tsos.close-date-locked" not in open_rules
    assert _writes(org.sync(mode="enforce")) == 0
    assert org.crm.get("opportunity", "o1")["close_date"] == b.day(20)


class _SalesRepRacesTheSync(LocalConnector):
    """A rep edits each repaired deal between the sync's read and its write."""

    def __init__(self, inner: LocalConnector) -> None:
        super().__init__(inner.crm)

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        for action in actions:
            if action.kind.value == "update_fields":
                self.crm.update("opportunity", action.record_id, {"amount": 99}, by="u2")
        return super().write(actions)


def test_enforce_refuses_a_stale_write_and_reports_it_skipped(make_org: MakeOrg) -> None:
    org = make_org(_locked_deal_moved())
    racing = _SalesRepRacesTheSync(LocalConnector(org.crm))
    summary = org.sync(mode="enforce", connector=racing)
    data = summary.to_dict()
    assert data["actions"]["by_kind"]["update_fields"] == {"stale": 2}
    assert data["actions"]["skipped"] == 2
    assert {a["record_id"] for a in data["skipped_actions"]} == {"o1", "o2"}
    assert all(a["reason"].startswith("stale") for a in data["skipped_actions"])
    assert org.crm.get("opportunity", "o1")["close_date"] == b.day(30)  # the rep's edit stands
    assert org.crm.get("opportunity", "o2")["partner_id"] is None
    # The next run reads the new version and repairs.
    after = org.sync(mode="enforce")
    assert after.to_dict()["actions"]["by_kind"]["update_fields"] == {"written": 2}


def test_a_bad_record_is_skipped_and_reported_and_the_run_goes_on(make_org: MakeOrg) -> None:
    org = make_org(
        b.snapshot(
            accounts=[b.account("a1"), b.account("a2")],
            opportunities=[
                b.deal("o1", account_id="a1", next_step="TBD"),
                b.deal("o2", account_id="a1", next_step="TBD"),
                b.deal("o3", account_id="a2", next_step="TBD"),
            ],
        )
    )
    org.sync()
    assert len(org.open_findings()) == 3
    org.crm.update("opportunity", "o1", {"probability": "high", "next_step": "Call"}, by="u1")
    org.crm.update("opportunity", "o2", {"next_step": "Call the CIO"}, by="u1")
    org.crm.update("opportunity", "o3", {"next_step": "Call the CFO"}, by="u1")
    summary = org.sync()
    assert summary.exit_code == ExitCode.SKIPPED
    assert summary.skipped_records == [
        {
            "record_type": "opportunity",
            "record_id": "o1",
            "field": "probability",
            "reason": "expected a number, got 'high'",
        }
    ]
    # o3 was judged and resolved; o2 shares o1's company group, so judging it without o1
    # could resolve findings falsely: both are held back and keep their findings.
    assert sorted(f.record_id for f in org.open_findings().values()) == ["o1", "o2"]
    assert summary.records_held == 2
    # A full run does not sweep them away either.
    assert org.sync(full=True).exit_code == ExitCode.SKIPPED
    assert sorted(f.record_id for f in org.open_findings().values()) == ["o1", "o2"]


def test_exit_codes_follow_open_block_findings(make_org: MakeOrg) -> None:
    clean = make_org(b.snapshot(opportunities=[b.deal("o1")]))
    assert clean.sync().exit_code == ExitCode.OK
    warned = make_org(b.snapshot(opportunities=[b.deal("o1", probability=90)]))
    summary = warned.sync()
    assert summary.exit_code == ExitCode.OK and summary.findings_open == 1
    blocked = make_org(b.snapshot(opportunities=[b.deal("o1", next_step=None)]))
    assert blocked.sync().exit_code == ExitCode.BLOCK


def test_task_severity_threshold(make_org: MakeOrg) -> None:
    org = make_org(b.snapshot(opportunities=[b.deal("o1", probability=90, next_step="TBD")]))
    org.sync(task_min_severity="block")
    severities = Counter(f.severity for f in org.open_findings().values())
    assert severities == {Severity.BLOCK.value: 1, Severity.WARN.value: 1}
    assert [t["rule"] for t in org.crm.tasks()] == ["tsos.next-step-required"]


def test_a_new_owner_rejudges_the_whole_company(make_org: MakeOrg) -> None:
    org = make_org(
        b.snapshot(
            accounts=[b.account("a1")],
            opportunities=[b.deal("o1", account_id="a1"), b.deal("o2", account_id="a1")],
        )
    )
    org.sync()
    org.crm.update("opportunity", "o1", {"owner_id": "u2"}, by="u1")
    org.sync()
    conflicts = org.open_findings()
    assert {f.record_id: f.reason for f in conflicts.values()} == {
        "o1": "multiple_owners",
        "o2": "multiple_owners",
    }
    # An edit of o1's own fields re-judges o1 alone, with o2 as context: both findings stay.
    org.crm.update("opportunity", "o1", {"amount": 5}, by="u1")
    assert org.sync().records_judged == 1
    assert set(org.open_findings()) == set(conflicts)
    org.crm.update("opportunity", "o1", {"owner_id": "u1"}, by="u2")
    assert org.sync().findings_resolved == 2 and org.open_findings() == {}


def test_incremental_runs_agree_with_judging_everything(org: Any) -> None:
    """After rounds of edits of every kind, the incremental state equals a full judgement."""
    import random

    rng = random.Random(5)
    org.sync()
    deals = [row[0] for row in org.crm.db.execute("SELECT id FROM opportunities")]
    leads = [row[0] for row in org.crm.db.execute("SELECT id FROM leads")]
    accounts = [row[0] for row in org.crm.db.execute("SELECT id FROM accounts")]
    tasks = [
        row[0] for row in org.crm.db.execute("SELECT id FROM activities WHERE created_by IS NULL")
    ]
    users = [row[0] for row in org.crm.db.execute("SELECT id FROM users")]
    edits: list[tuple[str, Callable[[], tuple[str, str, dict[str, Any]]]]] = [
        ("owner", lambda: ("opportunity", rng.choice(deals), {"owner_id": rng.choice(users)})),
        ("amount", lambda: ("opportunity", rng.choice(deals), {"amount": rng.randint(1, 9)})),
        (
            "step",
            lambda: ("opportunity", rng.choice(deals), {"next_step": rng.choice(["TBD", "Demo"])}),
        ),
        (
            "date",
            lambda: (
                "opportunity",
                rng.choice(deals),
                {"next_step_date": b.day(rng.randint(-3, 3))},
            ),
        ),
        (
            "close",
            lambda: (
                "opportunity",
                rng.choice(deals),
                {
                    "is_closed": True,
                    "stage": "closed_lost",
                    "probability": 0,
                    "forecast_category": "closed",
                },
            ),
        ),
        ("partner", lambda: ("opportunity", rng.choice(deals), {"partner_id": None})),
        (
            "lead",
            lambda: ("lead", rng.choice(leads), {"status": rng.choice(["qualified", "open"])}),
        ),
        ("lead-owner", lambda: ("lead", rng.choice(leads), {"owner_id": rng.choice(users)})),
        ("account", lambda: ("account", rng.choice(accounts), {"partner_of_record_id": None})),
        (
            "task",
            lambda: (
                "activity",
                rng.choice(tasks),
                {"status": rng.choice(["open", "completed"]), "due_date": b.day(1)},
            ),
        ),
        # A lead on a missing account that names a company bridges two company groups.
        (
            "bridge",
            lambda: ("lead", rng.choice(leads), {"account_id": f"gone{rng.randint(1, 3)}"}),
        ),
        (
            "deal-on-missing-account",
            lambda: ("opportunity", rng.choice(deals), {"account_id": f"gone{rng.randint(1, 3)}"}),
        ),
        ("unnamed", lambda: ("account", rng.choice(accounts), {"name": None})),
        (
            "rename",
            lambda: ("account", rng.choice(accounts), {"name": rng.choice(["Acme", "ACME Inc."])}),
        ),
    ]
    engine = Engine.from_config(None)
    for _ in range(6):
        for _ in range(12):
            _, make = rng.choice(edits)
            record_type, record_id, changes = make()
            org.crm.update(record_type, record_id, changes, by="u1")
        summary = org.sync()
        assert not summary.full and summary.records_judged < 500
        whole = LocalConnector(org.crm).read(None).snapshot
        expected = filter_severity(engine.evaluate(whole, AS_OF), include_info=False)
        assert set(org.open_findings()) == {f.fingerprint for f in expected}
    engine.close()


def test_a_dry_run_lists_every_planned_write_not_only_the_impossible_ones(org: Any) -> None:
    """Issue 11: a dry run in enforce mode names each repair and task it would send."""
    summary = org.sync(dry_run=True, mode="enforce")
    data = summary.to_dict()
    planned = data["planned_actions"]
    assert len(planned) == data["actions"]["planned"] > 0
    kinds = {item["kind"] for item in planned}
    assert "create_task" in kinds and "update_fields" in kinds
    repair = next(item for item in planned if item["kind"] == "update_fields")
    assert repair["rule"] and repair["changes"] and repair["record_id"]
    assert org.crm.tasks() == []
    wet = org.sync(mode="enforce")
    assert wet.to_dict()["planned_actions"] == []  # only a dry run lists them


class _Recording(LocalConnector):
    """The local connector, keeping every action it was asked to write, in order."""

    def __init__(self, inner: LocalConnector) -> None:
        super().__init__(inner.crm)
        self.written: list[Action] = []

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        self.written.extend(actions)
        return super().write(actions)


def test_tasks_of_resolved_findings_are_closed_in_the_findings_order(
    make_org: MakeOrg,
) -> None:
    deals = [b.deal(f"o{n:02d}", next_step="TBD") for n in range(30)]
    org = make_org(b.snapshot(opportunities=deals))
    org.sync()
    for deal in deals:
        org.crm.update("opportunity", deal["id"], {"next_step": "Call the CFO"}, by="u1")
    recording = _Recording(LocalConnector(org.crm))
    summary = org.sync(connector=recording)
    assert not summary.full and summary.findings_resolved == 30
    closed = [a.record_id for a in recording.written if a.kind is ActionKind.CLOSE_TASK]
    assert closed == [f"o{n:02d}" for n in range(30)]  # the same order in every run
