"""Incremental reads: the SystemModstamp window, paging, Bulk 2.0, related records, deletions."""

from __future__ import annotations

import datetime as dt

import pytest
from sf_scenario import Ids, seed
from sf_support import NOW, Org

from tsos_rules.connectors.base import Action, ActionKind, ActionStatus
from tsos_rules.engine import Engine
from tsos_rules.snapshot.document import snapshot_to_dict


@pytest.fixture
def ids(org: Org) -> Ids:
    return seed(org.fake)


def seconds(n: int) -> dt.datetime:
    return NOW + dt.timedelta(seconds=n)


def test_full_read_maps_the_org_in_a_fixed_number_of_calls(org: Org, ids: Ids) -> None:
    connector = org.connector()
    result = connector.read(None, until=NOW)
    assert result.full and not result.errors
    assert result.watermark == "2026-11-24T09:00:00Z"
    snap = result.snapshot
    assert {o.id for o in snap.opportunities} == {
        ids.boeing_fleet,
        ids.airbus_cabin,
        ids.embraer_jets,
    }
    deals = {o.id: o for o in snap.opportunities}
    fleet = deals[ids.boeing_fleet]
    assert (fleet.stage, fleet.probability, fleet.amount) == ("closing", 80.0, 120000.0)
    assert fleet.close_date == dt.date(2027, 1, 14)
    assert fleet.next_step_date == dt.date(2026, 11, 28)
    assert fleet.lead_id == ids.lead_boeing  # linked through Lead.ConvertedOpportunityId
    users = {u.id: u.role.value for u in snap.users}
    assert users == {ids.ray: "direct", ids.cara: "channel", ids.pat: "partner"}
    partners = {p.id: p for p in snap.partners}
    assert partners[ids.acme].status.value == "active" and partners[ids.acme].tier == "premier"
    assert partners[ids.oldvar].status.value == "terminated"  # no longer IsPartner
    accounts = {a.id: a for a in snap.accounts}
    assert accounts[ids.boeing].partner_of_record_id == ids.acme
    assert accounts[ids.boeing].extra["owner_id"] == ids.cara
    (move,) = snap.close_date_changes
    assert (move.old, move.new, move.changed_by) == (
        dt.date(2026, 12, 15),
        dt.date(2027, 1, 14),
        ids.ray,
    )
    assert (move.stage, move.forecast_category.value if move.forecast_category else None) == (
        "closing",
        "pipeline",
    )
    leads = {x.id: x for x in snap.leads}
    assert leads[ids.lead_boeing].source == "partner_referral"
    assert leads[ids.lead_boeing].status == "converted"
    assert leads[ids.lead_embraer].distributed_at == dt.datetime(2026, 11, 17, 9, tzinfo=dt.UTC)
    assert {a.id: a.status for a in snap.activities} == {
        ids.call_boeing: "closed",
        ids.task_airbus: "open",
    }
    assert result.versions[("opportunity", ids.boeing_fleet)] == "2026-11-19T09:00:00.000Z"
    # describe, 5 windows + converted leads, history, open tasks, open events, team + partners
    # + users
    assert connector.api_calls == 13
    assert org.fake.count("auth") == 1 and org.fake.count() == 14


def test_window_boundary_neither_skips_nor_repeats(org: Org, ids: Ids) -> None:
    connector = org.connector()
    first = connector.read(None, until=NOW)
    fake = org.fake
    fake.now = seconds(10)
    fake.update("Opportunity", ids.boeing_fleet, NextStep="Send the MSA")
    fake.update("Opportunity", ids.airbus_cabin, NextStep="Demo")  # the same second
    fake.now = seconds(11)
    fake.update("Opportunity", ids.embraer_jets, NextStep="Pricing call")
    fake.now = seconds(100)
    at_boundary = connector.read(first.watermark, until=seconds(10))
    assert at_boundary.changed == {
        ("opportunity", ids.boeing_fleet),
        ("opportunity", ids.airbus_cabin),
    }
    after = connector.read(at_boundary.watermark, until=seconds(11))
    assert after.changed == {("opportunity", ids.embraer_jets)}
    last = connector.read(after.watermark, until=seconds(60))
    assert last.changed == frozenset() and not last.full


def test_related_records_come_with_a_changed_deal(org: Org, ids: Ids) -> None:
    connector = org.connector()
    first = connector.read(None, until=NOW)
    org.fake.now = seconds(5)
    org.fake.update("Opportunity", ids.boeing_fleet, Amount=125000)
    result = connector.read(first.watermark, until=seconds(5))
    assert result.changed == {("opportunity", ids.boeing_fleet)}
    snap = result.snapshot
    assert {a.id for a in snap.accounts} == {ids.boeing}
    assert {p.id for p in snap.partners} == {ids.acme}
    assert {u.id for u in snap.users} == {ids.ray, ids.cara}  # owners of the deal and its lead
    assert {x.id for x in snap.leads} == {ids.lead_boeing}
    assert [c.opportunity_id for c in snap.close_date_changes] == [ids.boeing_fleet]
    assert result.versions[("opportunity", ids.boeing_fleet)] == "2026-11-24T09:00:05.000Z"


def test_queries_per_run_do_not_grow_with_the_number_of_changed_deals(org: Org, ids: Ids) -> None:
    fake = org.fake
    connector = org.connector()
    first = connector.read(None, until=NOW)
    fake.now = seconds(5)
    fake.update("Opportunity", ids.boeing_fleet, Amount=1)
    before = connector.api_calls
    one = connector.read(first.watermark, until=seconds(5))
    calls_for_one = connector.api_calls - before
    fake.now = seconds(7)
    for n in range(40):
        deal = fake.insert(
            "Opportunity",
            Name=f"Deal {n}",
            AccountId=ids.boeing,
            OwnerId=ids.ray,
            StageName="Prospecting",
            CloseDate=dt.date(2027, 1, 1),
        )
        fake.insert("Task", Subject=f"Call {n}", WhatId=deal, OwnerId=ids.ray)
    fake.now = seconds(10)
    before = connector.api_calls
    many = connector.read(one.watermark, until=seconds(10))
    assert len([k for k in many.changed if k[0] == "opportunity"]) == 40
    assert connector.api_calls - before == calls_for_one


def test_pages_follow_next_records_url(org: Org, ids: Ids) -> None:
    fake = org.fake
    fake.page_size = 2
    for n in range(5):
        fake.insert("Opportunity", Name=f"Deal {n}", AccountId=ids.airbus, StageName="Prospecting")
    connector = org.connector()
    result = connector.read(None, until=NOW)
    assert len(result.snapshot.opportunities) == 8
    (stat,) = [s for s in connector.client.query_stats if s.label == "changed Opportunity"]
    assert (stat.rows, stat.pages, stat.calls, stat.bulk) == (8, 4, 4, False)
    assert any("/query/01g" in call.path for call in fake.calls)


def test_bulk_api_above_the_threshold_reads_the_same_records(org: Org, ids: Ids) -> None:
    fake = org.fake
    for n in range(6):
        fake.insert(
            "Opportunity",
            Name=f'Deal, {n} "quoted"',
            AccountId=ids.boeing,
            OwnerId=ids.cara,
            StageName="Closed Won",
            CloseDate=dt.date(2026, 10, n + 1),
            Amount=1000.5 * n,
        )
    rest = org.connector().read(None, until=NOW)
    fake.page_size = 2
    connector = org.connector(read={"bulk_threshold": 4, "bulk_max_records": 4})
    bulk = connector.read(None, until=NOW)
    (stat,) = [s for s in connector.client.query_stats if s.label == "changed Opportunity"]
    # one REST page to learn the size, then create, one poll, 3 result pages of 4 rows
    assert (stat.bulk, stat.rows, stat.pages, stat.calls) == (True, 9, 3, 6)
    assert snapshot_to_dict(bulk.snapshot) == snapshot_to_dict(rest.snapshot)
    assert bulk.changed == rest.changed and bulk.versions == rest.versions
    created = [c for c in fake.calls if c.kind == "bulk" and c.method == "POST"]
    assert created and "ORDER BY" not in created[0].body  # off: it disables PK chunking


def test_deletions_are_reported(org: Org, ids: Ids) -> None:
    connector = org.connector()
    first = connector.read(None, until=NOW)
    org.fake.now = seconds(3)
    org.fake.delete("Opportunity", ids.embraer_jets)
    org.fake.delete("Lead", ids.lead_embraer)
    result = connector.read(first.watermark, until=seconds(3))
    assert result.deleted == {("opportunity", ids.embraer_jets), ("lead", ids.lead_embraer)}
    assert not result.changed


def test_a_changed_account_brings_its_deals_as_affected(org: Org, ids: Ids) -> None:
    connector = org.connector()
    first = connector.read(None, until=NOW)
    org.fake.now = seconds(3)
    org.fake.update("Account", ids.boeing, Partner_of_Record__c=None)
    result = connector.read(first.watermark, until=seconds(3))
    assert result.changed == {("account", ids.boeing)}
    assert result.affected == {("opportunity", ids.boeing_fleet)}
    snap = result.snapshot
    assert {x.id for x in snap.leads} == {ids.lead_boeing}
    assert [c.opportunity_id for c in snap.close_date_changes] == [ids.boeing_fleet]
    engine = Engine.from_config(None)
    found = {(f.rule, f.record_id, f.reason) for f in engine.evaluate(snap, NOW.date())}
    engine.close()
    assert ("tsos.partner-of-record-required", ids.boeing, "missing") in found


def test_own_tasks_and_own_repairs_are_not_new_activity(org: Org, ids: Ids) -> None:
    fake = org.fake
    connector = org.connector()
    first = connector.read(None, until=NOW)
    fleet = ("opportunity", ids.boeing_fleet)
    fake.now = seconds(5)
    results = connector.write(
        [
            Action(
                kind=ActionKind.CREATE_TASK,
                fingerprint="a" * 32,
                record_type="opportunity",
                record_id=ids.airbus_cabin,
                owner_id=ids.ray,
                subject="next step missing",
            ),
            Action(
                kind=ActionKind.UPDATE_FIELDS,
                fingerprint="b" * 32,
                record_type="opportunity",
                record_id=ids.boeing_fleet,
                changes={"close_date": "2026-12-15"},
                expected_version=first.versions[fleet],
            ),
        ]
    )
    assert [r.status for r in results] == [ActionStatus.WRITTEN, ActionStatus.WRITTEN]
    fake.now = seconds(6)
    result = connector.read(first.watermark, until=seconds(6))
    # the repaired deal is read again, but its restored date is no new move, and the moves it
    # undid are gone; our own task is nobody's next step
    assert fleet in result.changed
    assert result.snapshot.close_date_changes == ()
    assert ids.airbus_cabin not in {a.what_id for a in result.snapshot.activities}
    own = [t for t in fake.records("Task") if t["Tsos_Fingerprint__c"] == "a" * 32]
    assert len(own) == 1 and own[0]["CreatedById"] == org.creds.user_id


def test_a_bad_record_is_skipped_and_named(org: Org, ids: Ids) -> None:
    org.fake.tables["Opportunity"][ids.embraer_jets]["CloseDate"] = "soon"
    result = org.connector().read(None, until=NOW)
    assert ("opportunity", ids.embraer_jets) not in result.changed
    assert ("opportunity", ids.boeing_fleet) in result.changed
    (error,) = result.errors
    assert (error.record_type, error.record_id, error.field) == (
        "opportunity",
        ids.embraer_jets,
        "close_date",
    )
    assert "CloseDate: expected a date, got 'soon'" in error.problem


def test_records_whose_related_record_is_bad_are_held_back(org: Org, ids: Ids) -> None:
    org.fake.tables["User"][ids.cara]["Name"] = {"not": "a name"}
    result = org.connector().read(None, until=NOW)
    assert [(e.record_type, e.record_id) for e in result.errors] == [("user", ids.cara)]
    assert ("opportunity", ids.embraer_jets) in result.incomplete  # owned by Cara
    assert ("opportunity", ids.boeing_fleet) not in result.incomplete


def test_the_window_never_passes_the_org_clock_or_the_lag(org: Org, ids: Ids) -> None:
    fake = org.fake
    connector = org.connector(read={"watermark_lag_seconds": 30})
    fake.now = seconds(100)
    ahead = dt.datetime(2026, 11, 24, 10, tzinfo=dt.UTC)  # our clock is ahead of Salesforce
    first = connector.read(None, until=ahead)
    assert first.watermark == "2026-11-24T09:01:10Z"  # server time 09:01:40 less 30 s
    fake.now = seconds(80)
    fake.update("Opportunity", ids.airbus_cabin, NextStep="Demo")  # inside the lag
    fake.now = seconds(200)
    second = connector.read(first.watermark, until=ahead)
    assert second.changed == {("opportunity", ids.airbus_cabin)}


def test_an_empty_window_costs_nothing(org: Org, ids: Ids) -> None:
    connector = org.connector()
    first = connector.read(None, until=NOW)
    before = connector.api_calls
    again = connector.read(first.watermark, until=NOW)
    assert again.changed == frozenset() and again.watermark == first.watermark
    assert connector.api_calls == before
