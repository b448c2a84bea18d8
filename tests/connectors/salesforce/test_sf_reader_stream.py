"""``stream_where`` on Salesforce: an aggregate's readers (a partner's deals) read by one filter
query with only their linked records (account and its partner of record, owner and team,
partner), page by page; and an incremental sync that judges them from it as it does from
``read_where``'s company groups."""

from __future__ import annotations

import datetime as dt
import math
import urllib.parse
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from sf_credit import (
    NOW,
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
from sf_support import Org, fresh_org

from tsos_rules.connectors.base import ReaderStream, ReadResult, RecordKey
from tsos_rules.connectors.salesforce.paging import MAX_QUERY_URI_BYTES, MAX_SOQL_CHARS
from tsos_rules.sync.state import StateStore
from tsos_rules.testing.fake_salesforce import FakeSalesforce


@pytest.fixture(autouse=True)
def channel_economics(isolated_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    only_channel_economics(monkeypatch)


def link(fake: FakeSalesforce, made: dict[str, list[str]]) -> None:
    """Partners of record on some accounts and team members on some deals, before the first
    sync, so the readers' linked records are more than their account and owner."""
    fake.now = NOW - dt.timedelta(days=2)
    partners, users = made["partners"], made["users"]
    for i, account in enumerate(made["accounts"]):
        if i % 3 == 0:
            fake.update("Account", account, Partner_of_Record__c=partners[i % len(partners)])
    for i, deal in enumerate(made["deals"]):
        if i % 4 == 0:
            owner = fake.tables["Opportunity"][deal]["OwnerId"]
            member = next(u for u in users[i % 5 :] + users if u != owner)
            fake.insert("OpportunityTeamMember", OpportunityId=deal, UserId=member)
    fake.now = NOW


def judged(pages: list[ReadResult]) -> list[RecordKey]:
    return [key for page in pages for key in page.affected]


def test_readers_come_page_by_page_with_their_linked_records_alone(org: Org) -> None:
    made = generate(org.fake)
    link(org.fake, made)
    connector = connector_of(org)
    assert isinstance(connector, ReaderStream)
    whole = connector.read(None)
    deals = {d.id: d for d in whole.snapshot.opportunities}
    accounts = {a.id: a for a in whole.snapshot.accounts}
    partners = {p.id: p for p in whole.snapshot.partners}
    users = {u.id: u for u in whole.snapshot.users}
    wanted = made["partners"][:2]
    readers = sorted(i for i, d in deals.items() if d.partner_id in wanted)
    assert len(readers) > 8
    org.fake.page_size = 5  # REST pages of 5 rows: the query is followed by nextRecordsUrl
    read_before = rows_by_label(connector)

    pages = list(connector.stream_where("opportunity", "partner_id", wanted, page_size=4))

    (stat,) = [s for s in connector.client.query_stats if s.label == "Opportunity by partner_id"]
    assert not stat.bulk and stat.pages == -(-len(readers) // 5) and stat.rows == len(readers)
    assert [len(p.affected) for p in pages] == [4] * (len(readers) // 4) + (
        [len(readers) % 4] if len(readers) % 4 else []
    )
    assert sorted(key[1] for key in judged(pages)) == readers  # each once
    team_seen = partner_of_record_seen = False
    for page in pages:
        snapshot = page.snapshot
        assert not page.changed and page.watermark is None and not page.errors
        # the linked records alone: no leads, activities or history of the companies
        assert not snapshot.leads and not snapshot.activities and not snapshot.close_date_changes
        for deal in snapshot.opportunities:
            # the deal as the whole read has it (team included), but for its source lead
            assert deal == attrs.evolve(deals[deal.id], lead_id=None)
            assert (
                page.versions[("opportunity", deal.id)] == whole.versions[("opportunity", deal.id)]
            )
            linked_users = {deal.owner_id, *deal.team_user_ids}
            assert {u.id: u for u in snapshot.users if u.id in linked_users} == {
                u: users[u] for u in linked_users
            }
            team_seen |= bool(deal.team_user_ids)
            needed = {deal.partner_id}
            if deal.account_id:
                account = next(a for a in snapshot.accounts if a.id == deal.account_id)
                assert account == accounts[deal.account_id]
                if account.partner_of_record_id:
                    needed.add(account.partner_of_record_id)
                    partner_of_record_seen = True
            assert {p.id: p for p in snapshot.partners if p.id in needed} == {
                p: partners[p] for p in needed
            }
    assert team_seen and partner_of_record_seen
    # each partner and user read from the org once, however many pages name them
    people = rows_by_label(connector) - read_before
    assert people["users"] == len({u.id for p in pages for u in p.snapshot.users})
    assert people["partners"] == len({x.id for p in pages for x in p.snapshot.partners})

    # above bulk_threshold the same readers come through Bulk API 2.0 result pages
    bulk = connector_of(org, bulk_threshold=10, bulk_max_records=8)
    by_bulk = list(bulk.stream_where("opportunity", "partner_id", wanted, page_size=4))
    (stat,) = [s for s in bulk.client.query_stats if s.label == "Opportunity by partner_id"]
    assert stat.bulk and stat.pages == -(-len(readers) // 8)
    for part in ("opportunities", "accounts", "partners", "users"):
        assert {r.id: r for p in by_bulk for r in getattr(p.snapshot, part)} == {
            r.id: r for p in pages for r in getattr(p.snapshot, part)
        }
    assert {k: v for p in by_bulk for k, v in p.versions.items()} == {
        k: v for p in pages for k, v in p.versions.items()
    }


def test_readers_match_as_the_records_read(org: Org) -> None:
    """By id, by a mapped value (the object streamed), by text as Salesforce stores it."""
    made = generate(org.fake)
    connector = connector_of(org)
    deals = {d.id: d for d in connector.read(None).snapshot.opportunities}

    def stream(field: str, values: Collection[str]) -> list[str]:
        return sorted(
            k[1] for k in judged(list(connector.stream_where("opportunity", field, values)))
        )

    some = sorted(deals)[:3]
    assert stream("id", [*some, "not an id!"]) == some
    commit = sorted(i for i, d in deals.items() if d.forecast_category == "commit")
    assert commit and stream("forecast_category", ["commit"]) == commit
    name = deals[some[0]].name or ""
    assert stream("name", [name.upper(), "O'Brien's deal"]) == []  # SOQL ignores case
    assert stream("name", [name]) == [some[0]]
    assert stream("partner_id", []) == [] and stream("team_user_ids", ["x"]) == []
    assert list(connector.stream_where("user", "id", made["users"])) == []


def test_a_long_values_list_is_cut_under_the_soql_and_uri_limits(org: Org) -> None:
    made = generate(org.fake)
    connector = connector_of(org, id_chunk_size=700)
    deals = connector.read(None).snapshot.opportunities
    real = made["partners"][:3]
    values = [f"0015g{i:013d}" for i in range(3000)] + real  # ids of no record, and three
    org.fake.reset_counts()
    pages = list(connector.stream_where("opportunity", "partner_id", values, page_size=10))
    assert sorted(k[1] for k in judged(pages)) == sorted(
        d.id for d in deals if d.partner_id in real
    )
    sent = [q for q, _ in org.fake.query_log if "PartnerAccountId IN" in q]
    assert len(sent) > 3  # the list was cut
    assert sum(q.count("'") // 2 for q in sent) == len(values)  # every value sent once
    assert max(len(urllib.parse.quote_plus(q)) for q in sent) <= MAX_QUERY_URI_BYTES
    assert max(len(q) for q in sent) <= MAX_SOQL_CHARS


def test_an_unmappable_reader_is_an_error_naming_it_and_the_others_come_back(org: Org) -> None:
    made = generate(org.fake)
    partner = made["partners"][1]
    table = org.fake.tables["Opportunity"]
    mine = sorted(d for d in made["deals"] if table[d]["PartnerAccountId"] == partner)
    bad = mine[0]
    table[bad]["CloseDate"] = "soon"
    rep = next(table[d]["OwnerId"] for d in mine[1:])
    org.fake.tables["User"][rep]["Name"] = {"not": "a name"}
    connector = connector_of(org)

    pages = list(connector.stream_where("opportunity", "partner_id", [partner], page_size=3))

    errors = {(e.record_type, e.record_id, e.field) for p in pages for e in p.errors}
    assert ("opportunity", bad, "close_date") in errors
    assert {e[:2] for e in errors} == {("opportunity", bad), ("user", rep)}
    held = {k[1] for p in pages for k in p.incomplete}
    assert held == {d for d in mine[1:] if table[d]["OwnerId"] == rep}  # their owner is bad
    assert sorted([k[1] for k in judged(pages)] + sorted(held)) == mine[1:]


class KeyedOnly(Batched):
    """The connector without ``stream_where``: readers come with their company groups."""

    def read_where(
        self, record_type: str, field: str, values: Collection[str], *, batch_size: int = 1000
    ) -> Iterator[ReadResult]:
        return self.inner.read_where(record_type, field, values, batch_size=batch_size)


def _bounds(where: Path, partner: str) -> dict[str, float]:
    state = StateStore(where / "state.sqlite")
    try:
        return state.aggregate_bounds(
            "salesforce", "channel-economics.commit-by-partner", [partner]
        )
    finally:
        state.close()


def _commit_of(made: dict[str, list[str]], fake: FakeSalesforce) -> str:
    deals = fake.tables["Opportunity"]
    return next(
        d
        for d in made["deals"]
        if deals[d]["ForecastCategoryName"] == "Commit"
        and deals[d]["PartnerAccountId"] == made["partners"][2]
    )


#: Above every partner's credit limit: the partner's other open deals go over it.
BIG = 6_000_000.0
#: Each edit: whether the commit deal is ``BIG`` before the first sync, and its change after.
EDITS: dict[str, tuple[bool, Callable[[dict[str, list[str]], float], dict[str, Any]]]] = {
    "amount_up": (False, lambda made, amount: {"Amount": amount + BIG}),
    "out_of_commit": (True, lambda made, amount: {"ForecastCategoryName": "Pipeline"}),
    "to_another_partner": (True, lambda made, amount: {"PartnerAccountId": made["partners"][0]}),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_incremental_sync_judges_the_readers_streamed_as_with_their_companies(
    tmp_path: Path, key_pair: tuple[str, str], edit: str
) -> None:
    """One commit deal changes; the run judges its partner's other deals again from
    ``stream_where`` and ends where the ``read_where`` fallback and a full sync end, having
    read fewer records than the fallback."""
    runs: dict[str, Any] = {}
    for way in ("linked", "companies", "full"):
        where = tmp_path / way
        where.mkdir()
        with fresh_org(where, key_pair) as org:
            made = generate(org.fake)
            link(org.fake, made)
            deal = _commit_of(made, org.fake)
            big_first, change = EDITS[edit]
            if big_first:
                org.fake.update("Opportunity", deal, Amount=BIG)
            if way != "full":
                sync(org, where, connector_of(org), 3)
                runs[f"{way} before"] = open_findings(where)
                runs["bounds"] = _bounds(where, made["partners"][0])
            org.fake.now = NOW + dt.timedelta(minutes=5)
            amount = org.fake.tables["Opportunity"][deal]["Amount"]
            org.fake.update("Opportunity", deal, **change(made, amount))
            org.fake.now = NOW + dt.timedelta(minutes=10)
            connector = connector_of(org)
            used = KeyedOnly(connector) if way == "companies" else connector
            summary = sync(org, where, used, 3)
            runs[way] = (
                summary,
                open_findings(where),
                tasks_written(org),
                rows_by_label(connector),
            )
    linked, companies, full = runs["linked"], runs["companies"], runs["full"]
    if edit == "to_another_partner":
        assert runs["bounds"] == {made["partners"][0]: math.inf}
    assert not linked[0].full and not companies[0].full
    assert linked[1] == companies[1] == full[1]  # the same open findings
    assert linked[2] == companies[2]  # and the same tasks in Salesforce
    assert runs["linked before"] == runs["companies before"]
    assert any(rule == RULE for rule, _, _ in linked[1] ^ runs["linked before"])  # it moved
    assert linked[0].records_read < companies[0].records_read
    found = {label: n for label, n in linked[3].items() if label.startswith("Opportunity by ")}
    assert found and found == {  # the same readers
        label: n for label, n in companies[3].items() if label.startswith("Opportunity by ")
    }
    # a partner whose commit total rose past what its deals without a finding allow has its
    # deals read again by partner; one whose total fell, or rose where every deal is over its
    # credit already (the deal moved to partner 0), only its deals holding a credit finding,
    # by id
    assert ("Opportunity by partner_id" in found) == (edit == "amount_up")
    assert ("Opportunity by id" in found) == (edit != "amount_up")
    # the readers by one filter query, without read_where's second key pass over the org
    assert linked[3]["keys of Opportunity"] == len(made["deals"])
    # the fallback's key pass, once per reader read: by partner, or by id (the partners a deal
    # moved between, one fell and one is all over its credit, share one read)
    assert companies[3]["keys of Opportunity"] == 2 * len(made["deals"])
    assert "Opportunity records" not in linked[3]  # totals from the stored shares
