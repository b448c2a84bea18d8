"""A Salesforce sync with a pack that totals over the org (channel-economics' partner credit):
the totals streamed from one query, each record read once by the judging read, the findings of
the whole read whatever the batch size, and ``read_where``'s match of a total's readers (an
incremental sync judging them again: ``test_sf_reader_stream.py``)."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import attrs
import pytest
from sf_credit import (
    RULE,
    Batched,
    connector_of,
    generate,
    only_channel_economics,
    open_findings,
    rows_by_label,
    sync,
    tasks_written,
)
from sf_support import Org, WholeRead, fresh_org

from tsos_rules.connectors.base import KeyedReader, RecordStream
from tsos_rules.connectors.salesforce.paging import MAX_QUERY_URI_BYTES


@pytest.fixture(autouse=True)
def channel_economics(isolated_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    only_channel_economics(monkeypatch)


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
