"""Reads: mapping into the snapshot model, incremental windows, paging, the search cap."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from tsos_rules_hubspot import HubSpotConnector
from tsos_rules_hubspot.testing import FakeHubSpot

from tsos_rules import FatalConnectorError
from tsos_rules.connectors.base import Connector

Make = Callable[..., HubSpotConnector]


def _search_bodies(fake: FakeHubSpot, object_type: str) -> list[dict[str, object]]:
    return [
        body
        for method, path, body in fake.bodies
        if method == "POST" and path == f"/crm/v3/objects/{object_type}/search"
    ]


def test_is_a_connector(connector: HubSpotConnector) -> None:
    assert isinstance(connector, Connector)
    caps = connector.capabilities()
    assert caps.conditional_updates and caps.field_updates and caps.tasks
    assert caps.max_batch == 100


def test_full_read_maps_hubspot_onto_the_snapshot(
    fake: FakeHubSpot, portal: dict[str, str], connector: HubSpotConnector
) -> None:
    result = connector.read(None, until=fake.now())
    snap = result.snapshot
    assert result.full
    assert result.errors == ()

    deal = next(o for o in snap.opportunities if o.id == portal["deal"])
    assert deal.name == "Boeing fleet"
    assert deal.account_id == portal["customer"]
    assert deal.partner_id == portal["partner"]  # the labelled "Partner" association
    assert deal.owner_id == "72"
    assert deal.stage == "trial_close"  # decisionmakerboughtin through stage_map
    assert deal.probability == 80.0
    assert deal.amount == 120000.0
    assert deal.close_date == dt.date(2026, 12, 15)
    assert deal.forecast_category is not None and deal.forecast_category.value == "best_case"
    assert deal.next_step == "Legal review of draft MSA"
    assert deal.next_step_date == dt.date(2026, 11, 28)
    assert deal.team_user_ids == ("71", "73")
    assert deal.is_closed is False
    assert deal.extra["contact_ids"] == [portal["contact"]]
    assert deal.extra["hubspot_dealstage"] == "decisionmakerboughtin"
    assert deal.stage_changed_at is not None

    (move,) = snap.close_date_changes
    assert move.opportunity_id == portal["deal"]
    assert (move.old, move.new) == (dt.date(2026, 11, 30), dt.date(2026, 12, 15))
    assert move.changed_by == "72"  # HubSpot user 502 is owner 72
    assert move.stage == "trial_close"

    (account,) = snap.accounts
    assert account.id == portal["customer"]
    assert account.partner_of_record_id == portal["partner"]
    (partner,) = snap.partners
    assert (partner.id, partner.tier, partner.credit_limit) == (
        portal["partner"],
        "premier",
        250000,
    )
    assert partner.fiscal_year_start_month == 4

    roles = {u.id: u.role.value for u in snap.users}
    assert roles == {"71": "direct", "72": "channel", "73": "partner"}

    task = next(a for a in snap.activities if a.id == portal["task"])
    assert (task.what_id, task.account_id, task.status) == (
        portal["deal"],
        portal["customer"],
        "open",
    )
    assert task.due_date == dt.date(2026, 11, 26)
    meeting = next(a for a in snap.activities if a.id == portal["meeting"])
    assert (meeting.what_id, meeting.status, meeting.partner_notified) == (
        portal["sibling"],
        "completed",
        True,
    )

    assert ("opportunity", portal["deal"]) in result.changed
    assert (
        result.versions[("opportunity", portal["deal"])]
        == fake.props("deals", portal["deal"])["hs_lastmodifieddate"]
    )
    assert result.watermark == fake.now().isoformat(timespec="milliseconds")


def test_incremental_read_brings_the_changed_deal_and_its_related_records(
    fake: FakeHubSpot, portal: dict[str, str], connector: HubSpotConnector
) -> None:
    first = connector.read(None, until=fake.now())
    fake.update("deals", portal["sibling"], {"hs_next_step": "Send quote"}, user_id=501)
    second = connector.read(first.watermark, until=fake.now())

    assert second.full is False
    assert second.changed == {("opportunity", portal["sibling"])}
    ids = {o.id for o in second.snapshot.opportunities}
    assert ids == {portal["sibling"], portal["deal"]}  # the other deal of the same company
    assert ("opportunity", portal["deal"]) in second.affected
    assert {a.id for a in second.snapshot.accounts} == {portal["customer"]}
    assert {p.id for p in second.snapshot.partners} == {portal["partner"]}  # partner of record
    assert {u.id for u in second.snapshot.users} == {"71", "72", "73"}
    assert portal["meeting"] in {a.id for a in second.snapshot.activities}

    third = connector.read(second.watermark, until=fake.now())
    assert third.changed == frozenset()
    assert third.snapshot.record_count == 0


def test_window_has_no_gap_and_no_duplicate_at_the_watermark(
    fake: FakeHubSpot, portal: dict[str, str], connector: HubSpotConnector
) -> None:
    first = connector.read(None, until=fake.now())
    boundary = fake.now()
    # A change stamped exactly at the watermark belongs to the first window, not the next.
    fake.update("deals", portal["deal"], {"hs_next_step": "at the boundary"}, at=fake.clock)
    fake.tick()
    fake.update("deals", portal["sibling"], {"hs_next_step": "just after"})
    second = connector.read(first.watermark, until=fake.now())
    assert first.watermark == boundary.isoformat(timespec="milliseconds")
    assert second.changed == {("opportunity", portal["sibling"])}


def test_until_defaults_to_now_minus_the_search_lag(
    fake: FakeHubSpot, portal: dict[str, str], make_connector: Make
) -> None:
    connector = make_connector(search_lag_seconds=30)
    fake.tick(60_000)
    recent = fake.add("deals", {"dealname": "too fresh to be indexed"})
    result = connector.read(None)
    ids = {o.id for o in result.snapshot.opportunities}
    assert portal["deal"] in ids and recent not in ids
    assert result.watermark == (fake.now() - dt.timedelta(seconds=30)).isoformat(
        timespec="milliseconds"
    )


def test_search_pages_follow_paging_next_after(fake: FakeHubSpot, make_connector: Make) -> None:
    ids = [fake.add("deals", {"dealname": f"deal {n}"}) for n in range(5)]
    connector = make_connector(page_size=2, sibling_deals=False, activity_objects=[])
    result = connector.read(None, until=fake.now())
    assert {o.id for o in result.snapshot.opportunities} == set(ids)
    bodies = _search_bodies(fake, "deals")
    assert [b.get("after") for b in bodies] == [None, "2", "4"]
    assert all(b["limit"] == 2 for b in bodies)


def test_batch_reads_hold_at_most_100_ids(fake: FakeHubSpot, make_connector: Make) -> None:
    for n in range(230):
        fake.add("deals", {"dealname": f"deal {n}"})
    connector = make_connector(sibling_deals=False, activity_objects=[], read_contacts=False)
    result = connector.read(None, until=fake.now())
    assert len(result.snapshot.opportunities) == 230
    reads = [b for m, p, b in fake.bodies if p == "/crm/v3/objects/deals/batch/read"]
    # Deal reads ask for close-date history: HubSpot allows 50 inputs per call then.
    assert [len(b["inputs"]) for b in reads] == [50, 50, 50, 50, 30]
    assert all(b["propertiesWithHistory"][0] == "closedate" for b in reads)
    assert fake.count("POST", "/crm/v3/objects/deals/search") == 2  # 200 a page
    links = [b for m, p, b in fake.bodies if p.startswith("/crm/v4/associations/deals/companies")]
    assert [len(b["inputs"]) for b in links] == [100, 100, 30]


def test_a_window_over_the_search_cap_is_narrowed_and_read_in_full(
    fake: FakeHubSpot, make_connector: Make
) -> None:
    ids = [fake.add("deals", {"dealname": f"deal {n}"}) for n in range(11)]
    connector = make_connector(
        page_size=2, search_cap=4, sibling_deals=False, activity_objects=[], read_companies=False
    )
    result = connector.read(None, until=fake.now())
    assert {o.id for o in result.snapshot.opportunities} == set(ids)
    bodies = _search_bodies(fake, "deals")
    # No query pages past the cap: HubSpot would answer 400.
    assert all(int(b.get("after") or 0) < 4 for b in bodies)
    operators = [
        [f["operator"] for f in b["filterGroups"][0]["filters"]]  # type: ignore[index]
        for b in bodies
    ]
    assert operators[0] == ["LTE"]
    assert ["GTE", "LTE"] in operators  # the narrowed window starts at the last stamp seen


def test_an_incremental_window_over_the_cap_is_narrowed_too(
    fake: FakeHubSpot, make_connector: Make
) -> None:
    connector = make_connector(
        page_size=2, search_cap=4, sibling_deals=False, activity_objects=[], read_companies=False
    )
    first = connector.read(None, until=fake.now())
    ids = [fake.add("deals", {"dealname": f"deal {n}"}) for n in range(9)]
    second = connector.read(first.watermark, until=fake.now())
    assert second.changed == {("opportunity", i) for i in ids}


def test_more_records_in_one_millisecond_than_the_cap_is_a_clear_error(
    fake: FakeHubSpot, make_connector: Make
) -> None:
    ids = [fake.add("deals", {"dealname": f"deal {n}"}) for n in range(6)]
    for record_id in ids:
        fake.update("deals", record_id, {"amount": "1"}, at=fake.clock)
    connector = make_connector(page_size=2, search_cap=4, activity_objects=[])
    with pytest.raises(FatalConnectorError, match="share one hs_lastmodifieddate"):
        connector.read(None, until=fake.now())


def test_a_record_leaving_the_window_while_paging_does_not_hide_another(
    fake: FakeHubSpot, make_connector: Make
) -> None:
    ids = [fake.add("deals", {"dealname": f"deal {n}"}) for n in range(5)]
    until = fake.now()
    fake.tick(1000)
    searches = 0

    def touch_first_deal(method: str, path: str) -> None:
        nonlocal searches
        if path == "/crm/v3/objects/deals/search":
            searches += 1
            if searches == 2:  # between page 1 and page 2 someone edits deal 0
                fake.update("deals", ids[0], {"amount": "5"})

    fake.on_request = touch_first_deal
    connector = make_connector(page_size=2, sibling_deals=False, activity_objects=[])
    result = connector.read(None, until=until)
    # deal 0 now belongs to the next window; every other deal is read exactly once.
    assert {o.id for o in result.snapshot.opportunities} >= set(ids[1:])
    assert {k for k in result.changed if k[0] == "opportunity"} >= {
        ("opportunity", i) for i in ids[1:]
    }


def test_archived_deals_in_the_window_are_reported_deleted(
    fake: FakeHubSpot, portal: dict[str, str], connector: HubSpotConnector
) -> None:
    first = connector.read(None, until=fake.now())
    fake.archive("deals", portal["sibling"])
    second = connector.read(first.watermark, until=fake.now())
    assert second.deleted == {("opportunity", portal["sibling"])}
    assert portal["sibling"] not in {o.id for o in second.snapshot.opportunities}


def test_a_record_that_cannot_be_mapped_is_reported_and_skipped(
    fake: FakeHubSpot, portal: dict[str, str], connector: HubSpotConnector
) -> None:
    fake.update("deals", portal["sibling"], {"amount": "twelve"})
    result = connector.read(None, until=fake.now())
    (error,) = result.errors
    assert (error.collection, error.record_id, error.field) == (
        "opportunities",
        portal["sibling"],
        "amount",
    )
    assert "twelve" in error.problem
    assert ("opportunity", portal["sibling"]) not in result.changed
    assert portal["deal"] in {o.id for o in result.snapshot.opportunities}


def test_a_changed_company_brings_its_deals(
    fake: FakeHubSpot, portal: dict[str, str], connector: HubSpotConnector
) -> None:
    first = connector.read(None, until=fake.now())
    fake.update("companies", portal["customer"], {"tsos_partner_of_record_id": ""})
    second = connector.read(first.watermark, until=fake.now())
    assert second.changed == {("account", portal["customer"])}
    assert {o.id for o in second.snapshot.opportunities} == {portal["deal"], portal["sibling"]}
    assert ("opportunity", portal["deal"]) in second.affected
    (account,) = second.snapshot.accounts
    assert account.partner_of_record_id is None


def test_partner_from_a_deal_property(
    fake: FakeHubSpot, portal: dict[str, str], make_connector: Make
) -> None:
    other = fake.add("companies", {"name": "Other VAR", "type": "RESELLER"})
    fake.update("deals", portal["sibling"], {"tsos_partner_company_id": other})
    connector = make_connector(partner_source="property")
    snap = connector.read(None, until=fake.now()).snapshot
    deals = {o.id: o for o in snap.opportunities}
    assert deals[portal["sibling"]].partner_id == other
    assert deals[portal["deal"]].partner_id is None  # the labelled association is not used
    assert other in {p.id for p in snap.partners}


def test_the_connectors_own_tasks_are_not_read_as_activities(
    fake: FakeHubSpot, portal: dict[str, str], connector: HubSpotConnector
) -> None:
    mine = fake.add("tasks", {"hs_task_subject": "finding", "tsos_fingerprint": "f" * 16})
    fake.associate("tasks", mine, "deals", portal["deal"], type_id=216)
    result = connector.read(None, until=fake.now())
    assert mine not in {a.id for a in result.snapshot.activities}
    assert ("activity", mine) not in result.changed


def test_read_call_budget(
    fake: FakeHubSpot, portal: dict[str, str], connector: HubSpotConnector
) -> None:
    first = connector.read(None, until=fake.now())
    full_calls = len(fake.calls)
    fake.update("deals", portal["deal"], {"hs_next_step": "x"})
    connector.read(first.watermark, until=fake.now())
    incremental = len(fake.calls) - full_calls
    # Searches (deals, companies, tasks, meetings), batch reads, associations and owners: a
    # fixed number of calls for a handful of records, whatever their number up to 100.
    assert full_calls == 18
    # The incremental read adds the archived-deals listing and reads the sibling deal (and
    # its company links) in a second batch, but needs no reads for changed activities.
    assert incremental == 17


def test_read_batches_are_self_contained_and_share_the_watermark(
    fake: FakeHubSpot, portal: dict[str, str], connector: HubSpotConnector
) -> None:
    whole = connector.read(None, until=fake.now())
    owners_before = fake.count("GET", "/crm/v3/owners")
    batches = list(connector.read_batches(None, until=fake.now(), batch_size=2))
    assert len(batches) == 3  # 2 deals, 2 companies, 2 activities
    assert {b.watermark for b in batches} == {whole.watermark}
    assert [b.progress for b in batches] == [(2, 6), (4, 6), (6, 6)]
    union = set().union(*(b.changed for b in batches))
    assert union == whole.changed
    first = batches[0]
    assert {o.id for o in first.snapshot.opportunities} == {portal["deal"], portal["sibling"]}
    assert {a.id for a in first.snapshot.accounts} == {portal["customer"]}
    assert fake.count("GET", "/crm/v3/owners") == owners_before + 1  # owners read once a run


def test_a_changed_partner_does_not_pull_in_its_deals(
    fake: FakeHubSpot, portal: dict[str, str], connector: HubSpotConnector
) -> None:
    first = connector.read(None, until=fake.now())
    fake.update("companies", portal["partner"], {"tsos_partner_status": "terminated"})
    second = connector.read(first.watermark, until=fake.now())
    assert second.changed == {("partner", portal["partner"])}
    (partner,) = second.snapshot.partners
    assert partner.status.value == "terminated"
    assert second.snapshot.opportunities == ()
    assert fake.count("POST", "/crm/v4/associations/companies/deals/batch/read") == 1  # first read
