"""The sync job against the fake org: the full doctrine, tasks written once across re-runs and
crashes, stale repairs refused, the HTTP calls a sync makes, and exit 3 on a spent budget."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sf_scenario import Ids, seed
from sf_support import Org

from tsos_rules import plugins
from tsos_rules.cli import run
from tsos_rules.connectors.base import ReadResult
from tsos_rules.connectors.salesforce import SalesforceConnector
from tsos_rules.errors import FatalConnectorError
from tsos_rules.sync.job import run_sync
from tsos_rules.sync.state import StateStore

pytestmark = pytest.mark.usefixtures("isolated_env")

TODAY = dt.date(2026, 11, 24)


def fp(rule: str, record_type: str, record_id: str, reason: str) -> str:
    raw = "\x1f".join((record_type, record_id, rule, reason)).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def expected(ids: Ids) -> dict[str, tuple[str, str, str]]:
    """The findings the scenario was built to produce, by fingerprint."""
    rows = [
        ("tsos.channel-lead-not-direct", "opportunity", ids.boeing_fleet, "direct_owner"),
        ("tsos.channel-lead-not-direct", "opportunity", ids.boeing_fleet, "no_partner"),
        ("tsos.close-date-locked", "opportunity", ids.boeing_fleet, "moved_unapproved"),
        ("tsos.next-step-required", "opportunity", ids.embraer_jets, "placeholder"),
        ("tsos.partner-of-record-required", "opportunity", ids.embraer_jets, "terminated_partner"),
        ("tsos.partner-of-record-required", "account", ids.embraer, "terminated_partner"),
        (
            "tsos.partner-told-of-direct-contact",
            "activity",
            ids.call_boeing,
            "partner_not_notified",
        ),
        ("tsos.partner-lead-followup", "lead", ids.lead_embraer, "not_accepted"),
    ]
    return {fp(*row): (row[0], row[2], row[3]) for row in rows}


def config(org: Org, tmp_path: Path, mode: str = "annotate", **connector: Any) -> dict[str, Any]:
    return {
        "connector": org.table(**connector),
        "sync": {"mode": mode, "daily_full": False},
        "state": {"path": str(tmp_path / "state.sqlite")},
    }


def finding_tasks(org: Org) -> dict[str, dict[str, Any]]:
    tasks = [t for t in org.fake.records("Task") if t["Tsos_Fingerprint__c"]]
    by_key = {str(t["Tsos_Fingerprint__c"]): t for t in tasks}
    assert len(by_key) == len(tasks), "two tasks for one finding"
    return by_key


#: As in production, the window ends a little before the org's clock, so our own writes at
#: the end of a run fall into the next window.
LAG = {"watermark_lag_seconds": 5}


def sync(org: Org, tmp_path: Path, connector: SalesforceConnector | None = None, **kw: Any) -> Any:
    mode = kw.pop("mode", "annotate")
    return run_sync(
        config(org, tmp_path, mode),
        connector=connector or org.connector(read=LAG),
        as_of=TODAY,
        **kw,
    )


def test_a_sync_judges_the_doctrine_and_writes_each_task_once(org: Org, tmp_path: Path) -> None:
    fake = org.fake
    ids = seed(fake)
    first = sync(org, tmp_path)
    want = expected(ids)
    tasks = finding_tasks(org)
    assert set(tasks) == set(want)
    assert (
        tasks[fp("tsos.close-date-locked", "opportunity", ids.boeing_fleet, "moved_unapproved")][
            "OwnerId"
        ]
        == ids.ray
    )
    assert first.findings_new == 8 and first.exit_code == 1  # block findings are open
    assert first.actions[("create_task", "written")] == 8
    # a first sync reads in pages of company groups (read_batches): 1 login, 1 describe,
    # 5 key queries, the page's records by id and their related records (8), partners,
    # users, 1 Collections
    assert fake.count() == 19 and fake.count("auth") == 1

    fake.reset_counts()
    fake.advance(60)
    second = sync(org, tmp_path)
    assert second.findings_new == 0 and sum(second.actions.values()) == 0
    assert set(finding_tasks(org)) == set(want)
    # nothing changed: 1 login, 1 describe and the 5 windows (deletions come with them)
    assert fake.count() == 7

    fake.reset_counts()
    fake.advance(60)
    fake.update("Opportunity", ids.embraer_jets, NextStep="Pricing call with the CFO", by=ids.cara)
    fake.advance(60)
    third = sync(org, tmp_path)
    assert third.findings_resolved == 1
    assert third.actions[("close_task", "written")] == 1
    closed = finding_tasks(org)[
        fp("tsos.next-step-required", "opportunity", ids.embraer_jets, "placeholder")
    ]
    assert closed["Status"] == "Completed"
    # login, describe, 5 windows of changed ids, 5 key queries to group them, the changed
    # group's records by id and their related records, partners, users, the task lookup,
    # an update
    assert fake.count() == 23


def test_a_crash_before_the_state_is_saved_writes_nothing_twice(
    org: Org, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = seed(org.fake)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt("killed after the write, before the commit")

    with monkeypatch.context() as patch:
        patch.setattr(StateStore, "commit_batch", crash)
        with pytest.raises(KeyboardInterrupt):
            sync(org, tmp_path)
    assert set(finding_tasks(org)) == set(expected(ids))
    org.fake.advance(60)
    again = sync(org, tmp_path)
    assert again.actions[("create_task", "already_done")] == 8
    assert again.actions[("create_task", "written")] == 0
    assert set(finding_tasks(org)) == set(expected(ids))


def test_enforce_restores_the_close_date_and_the_next_run_sees_it_fixed(
    org: Org, tmp_path: Path
) -> None:
    fake = org.fake
    ids = seed(fake)
    first = sync(org, tmp_path, mode="enforce")
    # two repairs of one deal (restore the close date, put the partner of record back) go
    # out as one conditional update
    assert first.actions[("update_fields", "written")] == 2
    record = fake.get("Opportunity", ids.boeing_fleet)
    assert record["CloseDate"] == dt.date(2026, 12, 15) and record["PartnerAccountId"] == ids.acme
    (composite,) = [c for c in fake.calls if c.kind == "composite"]
    assert composite.body.count('"method": "PATCH"') == 1
    fake.advance(60)
    second = sync(org, tmp_path, mode="enforce")
    # our own repair is no new move, and the partner is back: both findings resolve
    assert second.findings_resolved == 2
    assert second.actions[("close_task", "written")] == 2
    assert sum(n for (kind, _), n in second.actions.items() if kind == "update_fields") == 0


def test_enforce_refuses_a_repair_when_the_deal_changed_after_the_read(
    org: Org, tmp_path: Path
) -> None:
    fake = org.fake
    ids = seed(fake)

    class Racing(SalesforceConnector):
        """Ray edits the deal between the job's read and its write."""

        def read(self, since: str | None, *, until: dt.datetime | None = None) -> ReadResult:
            result = super().read(since, until=until)
            fake.advance(30)
            fake.update("Opportunity", ids.boeing_fleet, NextStep="Board approval", by=ids.ray)
            return result

        def read_batches(
            self, since: str | None, *, until: dt.datetime | None = None, batch_size: int = 1000
        ) -> Iterator[ReadResult]:
            batches = list(super().read_batches(since, until=until, batch_size=batch_size))
            fake.advance(30)
            fake.update("Opportunity", ids.boeing_fleet, NextStep="Board approval", by=ids.ray)
            yield from batches

    table = org.table(read=LAG)
    racing = Racing.from_settings(table, sleep=org.sleeps.append, now=lambda: fake.now)
    try:
        summary = sync(org, tmp_path, connector=racing, mode="enforce")
    finally:
        racing.close()
    # both repairs of the deal (close date, partner) are refused; Ray's change stands
    assert summary.actions[("update_fields", "stale")] == 2
    record = fake.get("Opportunity", ids.boeing_fleet)
    assert record["CloseDate"] == dt.date(2027, 1, 14) and record["NextStep"] == "Board approval"
    assert record["PartnerAccountId"] is None


def test_a_spent_budget_stops_the_sync_with_exit_3_and_keeps_the_state(
    org: Org, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = org.fake
    seed(fake)
    fake.daily_limit, fake.api_usage = 100, 0
    with pytest.raises(FatalConnectorError, match="API budget"):
        sync(org, tmp_path, connector=org.connector(budget={"max_run_share": 0.05}))
    state = StateStore(tmp_path / "state.sqlite")
    try:
        assert state.cursor("salesforce").watermark is None
    finally:
        state.close()
    assert not finding_tasks(org)

    module = "tsos_rules.connectors.salesforce"
    assert module in plugins.DEFAULT_PLUGINS
    toml = tmp_path / "tsos.toml"
    table = org.table(budget={"max_run_share": 0.05})
    key_file = table["auth"]["private_key"]["file"]
    toml.write_text(
        f"""
[sync]
mode = "annotate"

[state]
path = "{tmp_path / "state.sqlite"}"

[connector]
type = "salesforce"

[connector.auth]
username = "{org.creds.username}"
consumer_key = "{org.creds.consumer_key}"
private_key = {{ file = "{key_file}" }}

[connector.fields]
partner_of_record = "Account.Partner_of_Record__c"

[connector.budget]
max_run_share = 0.05
"""
    )
    assert run(["sync", "--config", str(toml), "--quiet"]) == 3
