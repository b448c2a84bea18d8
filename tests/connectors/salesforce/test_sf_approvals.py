"""Approvals of close-date moves: ``[connector.approvals]`` from approval processes
(``ProcessInstance``) or from a tracked field's history, matched to the moves they approve."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from sf_scenario import Ids, at, seed
from sf_support import Org, merge
from test_sf_settings import BASE
from test_sf_sync import LAG, expected, finding_tasks, fp, sync

from tsos_rules.connectors.salesforce import SalesforceSettings
from tsos_rules.connectors.salesforce.reader import Approval, match_approvals
from tsos_rules.errors import ConfigError
from tsos_rules.model import CloseDateChange

pytestmark = pytest.mark.usefixtures("isolated_env")

#: The scenario's only close-date move: Ray pushes Boeing fleet out, five days ago at 09:00.
MOVED_AT = at(-5)
PROCESS = {"source": "process_instance", "window_hours": 72}


def approve(org: Org, ids: Ids, completed: dt.datetime, by: str | None = None) -> str:
    return org.fake.insert(
        "ProcessInstance",
        TargetObjectId=ids.boeing_fleet,
        Status="Approved",
        CompletedDate=completed,
        LastActorId=by or ids.cara,
    )


def unapproved(ids: Ids) -> str:
    return fp("tsos.close-date-locked", "opportunity", ids.boeing_fleet, "moved_unapproved")


def approval_queries(org: Org) -> list[tuple[str, int]]:
    return [(q, n) for q, n in org.fake.query_log if "ProcessInstance" in q]


def test_an_approved_move_within_the_window_is_not_flagged(org: Org, tmp_path: Path) -> None:
    ids = seed(org.fake)
    approve(org, ids, MOVED_AT + dt.timedelta(hours=70))
    approve(org, ids, MOVED_AT - dt.timedelta(days=30))  # an older approval: not this move
    summary = sync(org, tmp_path, connector=org.connector(read=LAG, approvals=PROCESS))
    want = set(expected(ids)) - {unapproved(ids)}
    assert set(finding_tasks(org)) == want
    assert summary.findings_new == len(want)
    (query,) = approval_queries(org)
    assert query[0] == (
        "SELECT Id, TargetObjectId, Status, CompletedDate, LastActorId FROM ProcessInstance "
        f"WHERE TargetObjectId IN ('{ids.boeing_fleet}') AND Status = 'Approved'"
    )


def test_the_read_names_the_approver(org: Org) -> None:
    ids = seed(org.fake)
    approve(org, ids, MOVED_AT - dt.timedelta(hours=2), by=ids.pat)
    result = org.connector(approvals=PROCESS).read(None, until=at(0))
    (move,) = result.snapshot.close_date_changes
    assert move.approved_by == ids.pat


def test_an_approval_outside_the_window_does_not_count(org: Org, tmp_path: Path) -> None:
    ids = seed(org.fake)
    approve(org, ids, MOVED_AT + dt.timedelta(hours=73))
    org.fake.insert(  # within the window, but rejected
        "ProcessInstance",
        TargetObjectId=ids.boeing_fleet,
        Status="Rejected",
        CompletedDate=MOVED_AT + dt.timedelta(hours=1),
        LastActorId=ids.cara,
    )
    sync(org, tmp_path, connector=org.connector(read=LAG, approvals=PROCESS))
    assert set(finding_tasks(org)) == set(expected(ids))


def test_without_approvals_every_locked_move_is_unapproved_and_nothing_more_is_read(
    org: Org, tmp_path: Path
) -> None:
    ids = seed(org.fake)
    approve(org, ids, MOVED_AT + dt.timedelta(hours=1))
    sync(org, tmp_path)
    assert unapproved(ids) in finding_tasks(org)
    assert set(finding_tasks(org)) == set(expected(ids))
    assert approval_queries(org) == []


def test_approvals_add_exactly_their_query_pages_to_the_api_calls(org: Org) -> None:
    ids = seed(org.fake)
    org.fake.page_size = 2
    for hours in (1, 2, 3, 4, 5):  # five approved processes: three pages of two
        approve(org, ids, MOVED_AT + dt.timedelta(hours=hours))
    plain = org.connector()
    plain.read(None, until=at(0))
    baseline = plain.api_calls
    org.fake.reset_counts()
    with_approvals = org.connector(approvals=PROCESS)
    result = with_approvals.read(None, until=at(0))
    assert [n for _, n in approval_queries(org)] == [5]
    assert with_approvals.api_calls == baseline + 3
    (move,) = result.snapshot.close_date_changes
    assert move.approved_by == ids.cara


def test_approval_queries_are_chunked_by_id_chunk_size(org: Org) -> None:
    ids = seed(org.fake)
    org.fake.now = at(-2)
    org.fake.update("Opportunity", ids.airbus_cabin, CloseDate=dt.date(2027, 2, 1), by=ids.ray)
    org.fake.now = at(0)
    approve(org, ids, MOVED_AT)
    plain = org.connector(read={"id_chunk_size": 1})
    plain.read(None, until=at(0))
    baseline = plain.api_calls
    org.fake.reset_counts()
    chunked = org.connector(read={"id_chunk_size": 1}, approvals=PROCESS)
    result = chunked.read(None, until=at(0))
    assert len(approval_queries(org)) == 2 and chunked.api_calls == baseline + 2
    approved = {c.opportunity_id: c.approved_by for c in result.snapshot.close_date_changes}
    assert approved == {ids.boeing_fleet: ids.cara, ids.airbus_cabin: None}


def test_each_approval_approves_only_the_nearest_move() -> None:
    moved = dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)
    changes = [
        CloseDateChange("006A", changed_at=moved),
        CloseDateChange("006A", changed_at=moved + dt.timedelta(hours=10)),
        CloseDateChange("006B", changed_at=moved + dt.timedelta(hours=9)),
    ]
    approval = Approval("006A", moved + dt.timedelta(hours=8), "005X")
    out = match_approvals(changes, [approval], dt.timedelta(hours=72))
    assert [c.approved_by for c in out] == [None, "005X", None]
    two = [approval, Approval("006A", moved + dt.timedelta(hours=9), "005Y")]
    out = match_approvals(changes, two, dt.timedelta(hours=72))
    assert [c.approved_by for c in out] == ["005X", "005Y", None]
    assert [c.approved_by for c in match_approvals(changes, two, dt.timedelta(hours=1))] == [
        None,
        "005Y",
        None,
    ]


APPROVAL_FIELD = {"source": "field", "field": "Close_Date_Approved_By__c"}


def approve_by_field(org: Org, minutes_after_move: int) -> Ids:
    """Seed the org, then set a tracked approval field on the moved deal some minutes later."""
    fake = org.fake
    fake.add_field("Opportunity", "Close_Date_Approved_By__c", "reference", reference_to=["User"])
    fake.track_history("Close_Date_Approved_By__c")
    ids = seed(fake)
    fake.now = MOVED_AT + dt.timedelta(minutes=minutes_after_move)
    fake.update("Opportunity", ids.boeing_fleet, Close_Date_Approved_By__c=ids.cara, by=ids.cara)
    fake.now = at(0)
    return ids


def test_a_field_set_within_five_minutes_approves_the_move(org: Org, tmp_path: Path) -> None:
    ids = approve_by_field(org, 4)
    result = org.connector(approvals=APPROVAL_FIELD).read(None, until=at(0))
    (move,) = result.snapshot.close_date_changes
    assert move.approved_by == ids.cara
    (query,) = [q for q, _ in org.fake.query_log if "OpportunityFieldHistory" in q]
    assert "Field = 'Close_Date_Approved_By__c'" in query
    sync(org, tmp_path, connector=org.connector(read=LAG, approvals=APPROVAL_FIELD))
    assert unapproved(ids) not in finding_tasks(org)


def test_a_field_set_later_does_not_approve_the_move(org: Org) -> None:
    approve_by_field(org, 6)
    result = org.connector(approvals=APPROVAL_FIELD).read(None, until=at(0))
    (move,) = result.snapshot.close_date_changes
    assert move.approved_by is None


def parse(**overrides: Any) -> SalesforceSettings:
    return SalesforceSettings.parse(merge(BASE, overrides))


def test_approval_settings_default_to_none() -> None:
    assert parse().approvals.source is None
    settings = parse(approvals=PROCESS).approvals
    assert (settings.source, settings.window_hours) == ("process_instance", 72.0)
    assert parse(approvals={"source": "process_instance"}).approvals.window_hours == 72.0
    field = parse(approvals={"source": "field", "field": "Close_Date_Approved_By__c"}).approvals
    assert (field.source, field.field) == ("field", "Close_Date_Approved_By__c")


@pytest.mark.parametrize(
    ("approvals", "message"),
    [
        (
            {"source": "process_instance", "window_hour": 72},
            "connector.approvals.window_hour: unknown setting",
        ),
        ({"sorce": "process_instance"}, "connector.approvals.sorce: unknown setting"),
        (
            {"source": "process_instance", "field": "X__c"},
            "connector.approvals.field: unknown setting",
        ),
        (
            {"source": "field", "field": "X__c", "window_hours": 1},
            "connector.approvals.window_hours: unknown setting",
        ),
        ({"source": "email"}, "connector.approvals.source: expected one of"),
        ({"source": "field"}, "connector.approvals.field: required"),
        ({"source": "field", "field": "Bad Field"}, "connector.approvals.field: 'Bad Field'"),
        (
            {"source": "process_instance", "window_hours": -1},
            "connector.approvals.window_hours: expected between 0",
        ),
        ("process_instance", "connector.approvals: expected a table"),
    ],
)
def test_bad_approval_settings_are_named(approvals: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse(approvals=approvals)
