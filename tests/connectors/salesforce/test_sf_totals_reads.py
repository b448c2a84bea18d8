"""A Salesforce sync with a pack that totals over the org (channel-economics' partner credit):
the totals streamed from one query, each record read once by the judging read, the findings of
the whole read whatever the batch size, and a moved total's readers judged again by key."""

from __future__ import annotations

import datetime as dt
import random
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import attrs
import pytest
from sf_support import Org, WholeRead, fresh_org

from tsos_rules.connectors.base import (
    KeyedReader,
    ReadResult,
    RecordStream,
)
from tsos_rules.connectors.salesforce import SalesforceConnector
from tsos_rules.connectors.salesforce.paging import MAX_QUERY_URI_BYTES
from tsos_rules.sync.job import run_sync
from tsos_rules.sync.state import StateStore
from tsos_rules.testing.fake_salesforce import FakeSalesforce

NOW = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
TODAY = NOW.date()
RULE = "channel-economics.partner-credit-limit"
OPEN_STAGES = ["Prospecting", "Qualification", "Needs Analysis", "Negotiation/Review"]
SPELLINGS = ["{}", "{} Inc.", "{} Corporation"]


@pytest.fixture(autouse=True)
def channel_economics(isolated_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in pack and channel-economics (its partner totals), no other plugin."""
    others = {ep.name for ep in entry_points(group="tsos_rules")} - {"channel-economics"}
    monkeypatch.setenv("TSOS_RULES_DISABLE_PLUGINS", ",".join(sorted(others)) or "none")


def generate(fake: FakeSalesforce, seed: int = 5) -> dict[str, list[str]]:
    """Partners with credit limits whose commit deals spread over many companies, so a
    partner's total is never one company's (one page's) alone."""
    rng = random.Random(seed)
    fake.add_field("Account", "Partner_Credit_Limit__c", "currency")
    fake.now = NOW - dt.timedelta(days=3)
    users = [
        fake.add_user(f"Rep {i}", role="Direct Sales" if i % 2 else "Channel Manager")
        for i in range(5)
    ]
    partners = [
        fake.insert(
            "Account",
            Name=f"VAR {i}",
            IsPartner=True,
            Partner_Tier__c="premier",
            Partner_Credit_Limit__c=limit,
        )
        for i, limit in enumerate((250_000.0, 400_000.0, 5_000_000.0, None))
    ]
    companies = [f"Company {c}" for c in "ABCDEFGHIJKLMN"]
    accounts = [
        fake.insert(
            "Account", Name=rng.choice(SPELLINGS).format(companies[i % 14]), OwnerId=users[i % 5]
        )
        for i in range(20)
    ]
    deals = []
    for i in range(70):
        closed = i % 9 == 0
        deal = fake.insert(
            "Opportunity",
            Name=f"Deal {i}",
            AccountId=rng.choice(accounts) if i % 11 else None,
            OwnerId=rng.choice(users),
            PartnerAccountId=rng.choice(partners) if rng.random() < 0.7 else None,
            StageName="Closed Won" if closed else rng.choice(OPEN_STAGES),
            ForecastCategoryName="Closed" if closed else rng.choice(["Commit", "Pipeline"]),
            CloseDate=TODAY + dt.timedelta(days=rng.randint(5, 90)),
            Amount=float(rng.randint(2, 20) * 10_000),
        )
        deals.append(deal)
        if rng.random() < 0.3:
            fake.insert(
                "Lead",
                Company=companies[i % 14],
                LastName="Buyer",
                OwnerId=rng.choice(users),
                LeadSource="Partner Referral",
                Status="Closed - Converted",
                IsConverted=True,
                ConvertedOpportunityId=deal,
            )
        if rng.random() < 0.4:
            fake.insert(
                "Task",
                Subject="Call",
                WhatId=deal,
                OwnerId=rng.choice(users),
                ActivityDate=TODAY + dt.timedelta(days=2),
            )
    fake.now = NOW
    return {"deals": deals, "partners": partners, "users": users}


def connector_of(org: Org, **read: Any) -> SalesforceConnector:
    return org.connector(
        fields={"partner.credit_limit": "Account.Partner_Credit_Limit__c"},
        read={"team_members": True, "watermark_lag_seconds": 0, **read},
    )


class Batched(WholeRead):
    """The connector as it was: paged reads, no ``stream_records`` nor ``read_where``."""

    def read_batches(
        self, since: str | None, *, until: dt.datetime | None = None, batch_size: int = 1000
    ) -> Iterator[ReadResult]:
        return self.inner.read_batches(since, until=until, batch_size=batch_size)


def sync(org: Org, where: Path, connector: Any, size: int, *, full: bool = False) -> Any:
    config = {
        "connector": org.table(),
        "sync": {"mode": "annotate", "daily_full": False, "batch_size": size},
        "state": {"path": str(where / "state.sqlite")},
    }
    return run_sync(config, connector=connector, as_of=TODAY, full=full)


def open_findings(where: Path) -> set[tuple[str, str, str]]:
    state = StateStore(where / "state.sqlite")
    try:
        return {
            (f.rule, f.record_id, f.reason) for f in state.findings("salesforce", status="open")
        }
    finally:
        state.close()


def tasks_written(org: Org) -> set[tuple[Any, ...]]:
    return {
        (t["Tsos_Fingerprint__c"], t["WhatId"], t["WhoId"], t["OwnerId"], t["Status"])
        for t in org.fake.records("Task")
        if t["Tsos_Fingerprint__c"]
    }


def rows_by_label(connector: SalesforceConnector) -> Counter[str]:
    rows: Counter[str] = Counter()
    for stat in connector.client.query_stats:
        rows[stat.label] += stat.rows
    return rows


def test_a_full_sync_streams_the_totals_and_reads_each_record_once(
    tmp_path: Path, key_pair: tuple[str, str]
) -> None:
    (tmp_path / "stream").mkdir()
    with fresh_org(tmp_path / "stream", key_pair) as org:
        made = generate(org.fake)
        connector = connector_of(org)
        assert isinstance(connector, RecordStream) and isinstance(connector, KeyedReader)
        summary = sync(org, tmp_path / "stream", connector, 3)
        streamed, calls = rows_by_label(connector), org.fake.count(api_only=True)
        findings = open_findings(tmp_path / "stream")
    deals = len(made["deals"])
    assert any(rule == RULE for rule, _, _ in findings)
    assert streamed["Opportunity records"] == deals  # the totals: one query of the deals
    assert streamed["keys of Opportunity"] == deals  # one key pass, not two
    assert streamed["page deals"] == deals  # and each deal read once to be judged
    assert streamed["keys of Account"] == len(org.fake.records("Account"))
    assert not {label for label in streamed if label.startswith(("Account rec", "Lead rec"))}

    (tmp_path / "batched").mkdir()
    with fresh_org(tmp_path / "batched", key_pair) as org:
        generate(org.fake)
        inner = connector_of(org)
        before = sync(org, tmp_path / "batched", Batched(inner), 3)
        twice, calls_before = rows_by_label(inner), org.fake.count(api_only=True)
        assert open_findings(tmp_path / "batched") == findings
    assert twice["keys of Opportunity"] == twice["page deals"] == 2 * deals  # the org twice
    assert before.findings_new == summary.findings_new
    assert calls < calls_before


def test_batch_sizes_1_3_and_10000_give_the_findings_and_tasks_of_the_whole_read(
    tmp_path: Path, key_pair: tuple[str, str]
) -> None:
    results = {}
    for size in (None, 1, 3, 10_000):
        where = tmp_path / f"size-{size}"
        where.mkdir()
        with fresh_org(where, key_pair) as org:
            generate(org.fake)
            connector = connector_of(org)
            # None: one whole read (no pages, no stream): the totals of the whole snapshot
            used = connector if size else WholeRead(connector)
            summary = sync(org, where, used, size or 1000)
            results[size] = (open_findings(where), tasks_written(org), summary.findings_new)
    whole = results.pop(None)
    assert sum(1 for rule, _, _ in whole[0] if rule == RULE) >= 3
    for size, found in results.items():
        assert found == whole, size


def test_a_commit_deals_new_amount_rejudges_its_partners_deals_by_key_in_the_same_run(
    tmp_path: Path, key_pair: tuple[str, str]
) -> None:
    """The incremental run reads the partner's deals by a filter on their partner field and
    pages their companies alone; it ends where a full sync of the changed org ends."""

    def grow(org: Org, made: dict[str, list[str]]) -> str:
        deals = org.fake.tables["Opportunity"]
        commit = next(
            d
            for d in made["deals"]
            if deals[d]["ForecastCategoryName"] == "Commit"
            and deals[d]["PartnerAccountId"] == made["partners"][2]
        )
        org.fake.now = NOW + dt.timedelta(minutes=5)
        org.fake.update("Opportunity", commit, Amount=deals[commit]["Amount"] + 6_000_000.0)
        org.fake.now = NOW + dt.timedelta(minutes=10)
        return commit

    (tmp_path / "incremental").mkdir()
    with fresh_org(tmp_path / "incremental", key_pair) as org:
        made = generate(org.fake)
        sync(org, tmp_path / "incremental", connector_of(org), 3)
        before = open_findings(tmp_path / "incremental")
        grow(org, made)
        connector = connector_of(org)
        second = sync(org, tmp_path / "incremental", connector, 3)
        after = open_findings(tmp_path / "incremental")
        rows = rows_by_label(connector)
        partner = made["partners"][2]
        mine = [d for d in org.fake.records("Opportunity") if d["PartnerAccountId"] == partner]
    assert not second.full
    assert rows["Opportunity by partner_id"] == len(mine)  # the filter found them all
    assert "Opportunity records" not in rows  # totals from the stored shares, no stream
    assert rows["page deals"] < 2 * len(made["deals"])  # no full read
    moved = {(r, d) for r, d, _ in after - before if r == RULE}
    assert len(moved) >= 2  # deals of the partner in other companies, judged this run

    (tmp_path / "full").mkdir()
    with fresh_org(tmp_path / "full", key_pair) as org:
        grow(org, generate(org.fake))
        sync(org, tmp_path / "full", connector_of(org), 3)
        assert open_findings(tmp_path / "full") == after


def test_read_where_matches_as_the_records_read_and_pages_whole_companies(org: Org) -> None:
    made = generate(org.fake)
    connector = connector_of(org)
    whole = connector.read(None).snapshot
    deals = {d.id: d for d in whole.opportunities}
    partner = made["partners"][1]
    wanted = {("opportunity", i) for i, d in deals.items() if d.partner_id == partner}

    def judged(field: str, values: list[str], size: int = 1) -> list[tuple[str, str]]:
        batches = list(connector.read_where("opportunity", field, values, batch_size=size))
        for batch in batches:
            assert not batch.changed and batch.watermark is None and not batch.full
            accounts = {a.id for a in batch.snapshot.accounts}
            for key in batch.affected:
                deal = next(d for d in batch.snapshot.opportunities if d.id == key[1])
                assert not deal.account_id or deal.account_id in accounts
        return [key for batch in batches for key in batch.affected]

    by_partner = judged("partner_id", [partner, "not an id!"])
    assert sorted(by_partner) == sorted(wanted)  # each once
    commit = {("opportunity", i) for i, d in deals.items() if d.forecast_category == "commit"}
    assert set(judged("forecast_category", ["commit"], 1000)) == commit  # mapped: compared so
    name = deals[sorted(deals)[0]].name or ""
    assert judged("name", [name.upper()]) == []  # SOQL ignores case; the records do not
    assert judged("name", [name]) == [("opportunity", sorted(deals)[0])]
    assert judged("partner_id", []) == [] and judged("team_user_ids", ["x"]) == []


def test_keyed_filters_stay_under_the_uri_limit(org: Org) -> None:
    generate(org.fake)
    connector = connector_of(org, id_chunk_size=700)
    values = [f"0015g{i:013d}" for i in range(3000)]  # ids of no record
    org.fake.reset_counts()
    assert list(connector.read_where("opportunity", "partner_id", values)) == []
    queries = [c for c in org.fake.calls if c.kind == "query"]
    assert len(queries) > 3  # the list was cut
    sent = [q for q, _ in org.fake.query_log if "PartnerAccountId IN" in q]
    assert sum(q.count("'") // 2 for q in sent) == len(values)
    assert max(len(urllib.parse.quote_plus(q)) for q in sent) <= MAX_QUERY_URI_BYTES


def test_streamed_pages_are_every_record_once_through_rest_or_bulk_pages(org: Org) -> None:
    generate(org.fake)
    rest = connector_of(org)
    whole = rest.read(None).snapshot
    by_rest = list(rest.stream_records("opportunity", page_size=7))
    org.fake.page_size = 9
    bulk = connector_of(org, bulk_threshold=10, bulk_max_records=8)
    by_bulk = list(bulk.stream_records("opportunity", page_size=7))
    (stat,) = [s for s in bulk.client.query_stats if s.label == "Opportunity records"]
    assert stat.bulk and stat.pages == -(-len(whole.opportunities) // 8)
    # the deals as a read maps them, but alone: no team, no lead, no related records
    alone = [attrs.evolve(d, team_user_ids=(), lead_id=None) for d in whole.opportunities]
    expected = {d.id: d for d in alone}
    for pages in (by_rest, by_bulk):
        assert max(len(p.snapshot.opportunities) for p in pages) == 7
        streamed = {d.id: d for p in pages for d in p.snapshot.opportunities}
        assert sum(len(p.snapshot.opportunities) for p in pages) == len(streamed)
        expected = {
            d.id: attrs.evolve(d, team_user_ids=(), lead_id=None) for d in whole.opportunities
        }
        assert streamed == expected
        assert all(not p.changed and not p.affected and p.watermark is None for p in pages)
        assert all(p.snapshot.record_count == len(p.snapshot.opportunities) for p in pages)
    activities = [a for p in rest.stream_records("activity") for a in p.snapshot.activities]
    assert sorted(a.id for a in activities) == sorted(a.id for a in whole.activities)
    assert list(rest.stream_records("user")) == []
