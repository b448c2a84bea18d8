"""``read_batches`` on Salesforce: pages of company groups that judge the org as the whole read
does, without any page holding the org."""

from __future__ import annotations

import datetime as dt
import random
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from sf_support import Org, WholeRead, fresh_org

from tsos_rules.connectors.base import ReadResult, RecordKey
from tsos_rules.connectors.salesforce.paging import MAX_QUERY_URI_BYTES, id_chunks
from tsos_rules.org import company_key
from tsos_rules.sync.job import run_sync
from tsos_rules.testing.fake_salesforce import FakeSalesforce

pytestmark = pytest.mark.usefixtures("isolated_env")

NOW = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
TODAY = NOW.date()
STAGES = ["Prospecting", "Qualification", "Needs Analysis", "Negotiation/Review"]
#: Spellings of one company: the facts group them by normalised name (``company_key``).
SPELLINGS = ["{}", "{} Inc.", "{}, INC", "{} Corporation"]


def generate(fake: FakeSalesforce, seed: int = 11) -> dict[str, list[str]]:
    """An org whose companies are tied by account, by name (differently spelled accounts and
    leads on no account), by converted deal and by activity, with owners and partners."""
    rng = random.Random(seed)
    fake.now = NOW - dt.timedelta(days=3)
    users = [
        fake.add_user(f"Rep {i}", role="Direct Sales" if i % 2 else "Channel Manager")
        for i in range(6)
    ]
    partners = [
        fake.insert("Account", Name=f"VAR {i}", IsPartner=i != 0, Partner_Tier__c="premier")
        for i in range(4)
    ]
    companies = [f"Company {c}" for c in "ABCDEFGHIJKL"]
    accounts = []
    for i in range(24):  # two accounts for most companies, spelled differently
        name = rng.choice(SPELLINGS).format(companies[i % len(companies)])
        accounts.append(
            fake.insert(
                "Account",
                Name=name,
                OwnerId=rng.choice(users),
                Partner_of_Record__c=rng.choice(partners) if rng.random() < 0.4 else None,
            )
        )
    deals = []
    for i in range(60):
        on = rng.randrange(len(accounts))
        deal = fake.insert(
            "Opportunity",
            Name=f"Deal {i}",
            AccountId=accounts[on] if i % 10 else None,
            OwnerId=rng.choice(users),
            PartnerAccountId=rng.choice(partners) if rng.random() < 0.3 else None,
            StageName=rng.choice(STAGES),
            CloseDate=TODAY + dt.timedelta(days=rng.randint(-10, 90)),
            Amount=float(rng.randint(5, 500) * 1000),
            NextStep=rng.choice(["TBD", "Demo for the CFO", None]),
            Next_Step_Date__c=TODAY + dt.timedelta(days=rng.randint(-5, 20)),
        )
        deals.append(deal)
        if rng.random() < 0.3:
            fake.insert(
                "Lead",
                Company=rng.choice(SPELLINGS).format(companies[on % len(companies)]),
                LastName="Buyer",
                OwnerId=rng.choice(users),
                PartnerAccountId=rng.choice(partners) if rng.random() < 0.5 else None,
                LeadSource=rng.choice(["Web", "Partner Referral"]),
                Status="Closed - Converted",
                IsConverted=True,
                ConvertedOpportunityId=deal,
            )
        if rng.random() < 0.5:
            fake.insert(
                "Task",
                Subject=rng.choice(["Call", "Follow up"]),
                WhatId=deal,
                OwnerId=rng.choice(users),
                ActivityDate=TODAY + dt.timedelta(days=rng.randint(-3, 10)),
            )
    for i in range(15):  # open leads: on no account (grouped by company name) or on one
        fake.insert(
            "Lead",
            Company=rng.choice(SPELLINGS).format(rng.choice(companies)),
            LastName=f"Prospect {i}",
            OwnerId=rng.choice(users),
            PartnerAccountId=rng.choice(partners) if i % 3 == 0 else None,
            LeadSource="Partner Referral" if i % 3 == 0 else "Web",
            Status="Open - Not Contacted",
            Distributed_At__c=NOW - dt.timedelta(days=rng.randint(1, 20)),
        )
    for i in range(4):  # activities on an account, and one on nothing
        fake.insert(
            "Task",
            Subject="Call",
            WhatId=accounts[i] if i else None,
            OwnerId=rng.choice(users),
            ActivityDate=TODAY,
        )
    fake.now = NOW - dt.timedelta(days=1)
    for deal in deals[::4]:  # some close dates pushed
        record = fake.tables["Opportunity"][deal]
        fake.update("Opportunity", deal, CloseDate=record["CloseDate"] + dt.timedelta(days=30))
    fake.now = NOW
    return {"deals": deals, "accounts": accounts, "users": users}


def tasks_written(org: Org) -> set[tuple[Any, ...]]:
    return {
        (t["Tsos_Fingerprint__c"], t["WhatId"], t["WhoId"], t["OwnerId"], t["Subject"])
        for t in org.fake.records("Task")
        if t["Tsos_Fingerprint__c"]
    }


def full_sync(tmp_path: Path, key_pair: tuple[str, str], batch_size: int | None) -> Any:
    """A full sync of a generated org (paged when ``batch_size``, else one whole read)."""
    tmp_path.mkdir()
    with fresh_org(tmp_path, key_pair) as org:
        generate(org.fake)
        connector = org.connector()
        config = {
            "connector": org.table(),
            "sync": {"mode": "annotate", "daily_full": False, "batch_size": batch_size or 1000},
            "state": {"path": str(tmp_path / "state.sqlite")},
        }
        summary = run_sync(
            config,
            connector=connector if batch_size else WholeRead(connector),  # type: ignore[arg-type]
            as_of=TODAY,
        )
        return summary, tasks_written(org)


def test_a_paged_sync_gives_the_findings_and_tasks_of_the_whole_read(
    tmp_path: Path, key_pair: tuple[str, str]
) -> None:
    whole, whole_tasks = full_sync(tmp_path / "whole", key_pair, None)
    assert whole.batches == 1 and whole.findings_new > 20 and whole_tasks
    for size in (1, 3, 10_000):
        paged, tasks = full_sync(tmp_path / f"paged-{size}", key_pair, size)
        assert paged.findings_new == whole.findings_new, size
        assert tasks == whole_tasks, size
        assert paged.records_changed == whole.records_changed, size
        if size == 1:
            assert paged.batches > 10


def judged(batch: ReadResult) -> set[RecordKey]:
    return {k for k in batch.changed | batch.affected if k[0] != "user"}


def test_no_page_holds_the_org_and_each_record_is_judged_once(org: Org) -> None:
    generate(org.fake)
    connector = org.connector()
    whole = connector.read(None)
    batches = list(connector.read_batches(None, batch_size=3))
    total = len(whole.snapshot.opportunities)
    assert len(batches) > 3
    assert {b.watermark for b in batches} == {whole.watermark}
    assert [b.progress for b in batches] == [(i, len(batches)) for i in range(1, len(batches) + 1)]
    seen: list[RecordKey] = [key for batch in batches for key in judged(batch)]
    assert len(seen) == len(set(seen)), "a record judged in two pages"
    assert set(seen) == set(whole.changed)
    for batch in batches:
        assert len(batch.snapshot.opportunities) < total / 2
        judged_deals = {k[1] for k in judged(batch) if k[0] == "opportunity"}
        for deal in batch.snapshot.opportunities:
            if deal.id in judged_deals:  # a judged deal comes with its owner and account
                assert deal.owner_id in {u.id for u in batch.snapshot.users}
                if deal.account_id:
                    assert deal.account_id in {a.id for a in batch.snapshot.accounts}


def test_one_company_is_never_split_across_pages(org: Org) -> None:
    """Accounts spelled differently and leads on no account, of one company: one page."""
    generate(org.fake)
    connector = org.connector()
    page_of: dict[str, int] = {}
    for number, batch in enumerate(connector.read_batches(None, batch_size=1)):
        snapshot = batch.snapshot
        names = {a.id: a.name for a in snapshot.accounts}
        for key in judged(batch):
            if key[0] == "account":
                company = company_key(names[key[1]] or "")
            elif key[0] == "lead":
                lead = next(lead for lead in snapshot.leads if lead.id == key[1])
                if lead.account_id:
                    continue
                company = company_key(lead.company or "")
            else:
                continue
            assert page_of.setdefault(company, number) == number, company


def test_an_incremental_read_pages_only_the_changed_groups(org: Org) -> None:
    made = generate(org.fake)
    connector = org.connector()
    first = list(connector.read_batches(None, batch_size=1000))
    org.fake.now = NOW + dt.timedelta(minutes=5)
    deals, accounts = org.fake.tables["Opportunity"], org.fake.tables["Account"]

    def company(deal: str) -> str:
        return company_key(accounts[deals[deal]["AccountId"]]["Name"])

    on_account = [d for d in made["deals"] if deals[d]["AccountId"]]
    deal = on_account[0]
    gone = next(d for d in on_account if company(d) != company(deal))
    gone_account = deals[gone]["AccountId"]
    org.fake.update("Opportunity", deal, NextStep="Pricing call with the CFO")
    org.fake.delete("Opportunity", gone)
    org.fake.now = NOW + dt.timedelta(minutes=10)
    org.fake.reset_counts()
    batches = list(connector.read_batches(first[-1].watermark, batch_size=1))
    # the changed deal's company, and the company the deleted deal leaves (judged again)
    assert len(batches) == 2
    assert set().union(*(b.changed for b in batches)) == {("opportunity", deal)}
    assert [b.deleted for b in batches] == [{("opportunity", gone)}, set()]
    affected = set().union(*(b.affected for b in batches))
    assert ("account", deals[deal]["AccountId"]) in affected
    assert ("account", gone_account) in affected
    whole = connector.read(None)
    for batch in batches:
        assert len(batch.snapshot.opportunities) < len(whole.snapshot.opportunities) / 2
    batch = batches[-1]

    # nothing changed since: the 5 windows of ids and nothing else
    org.fake.now = NOW + dt.timedelta(minutes=20)
    org.fake.reset_counts()
    (quiet,) = connector.read_batches(batch.watermark, batch_size=1)
    assert not quiet.changed and not quiet.deleted and quiet.watermark != batch.watermark
    assert org.fake.count() == 5


def test_id_lists_stay_under_the_query_length_limits() -> None:
    ids = [f"006{i:015d}" for i in range(2000)]
    prefix = "SELECT " + ", ".join(f"Field_{i}__c" for i in range(300)) + " FROM X WHERE Id IN "
    chunks = list(id_chunks(prefix, ids, 700))
    assert sum(chunk.count("'") // 2 for chunk in chunks) == len(ids)
    for chunk in chunks:
        assert len(urllib.parse.quote_plus(prefix + chunk)) <= MAX_QUERY_URI_BYTES
    assert all(chunk.count("'") // 2 <= 3 for chunk in id_chunks("SELECT Id", ids[:10], 3))


def test_a_bulk_key_pass_gives_the_pages_of_a_rest_one(org: Org) -> None:
    """Above ``bulk_threshold`` the key pass and page queries go through Bulk API 2.0 result
    pages (``Sforce-Locator``); the pages judge the same records."""
    generate(org.fake)
    rest = list(org.connector().read_batches(None, batch_size=3))
    org.fake.page_size = 7
    connector = org.connector(read={"bulk_threshold": 10, "bulk_max_records": 9})
    bulk = list(connector.read_batches(None, batch_size=3))
    keys = [s for s in connector.client.query_stats if s.label == "keys of Opportunity"]
    assert keys and keys[0].bulk and keys[0].pages > 1
    assert [judged(b) for b in bulk] == [judged(b) for b in rest]
    assert [b.snapshot for b in bulk] == [b.snapshot for b in rest]


def test_a_bad_record_in_a_page_is_skipped_named_and_holds_back_its_dependants(
    org: Org,
) -> None:
    made = generate(org.fake)
    deal = next(d for d in made["deals"] if org.fake.tables["Opportunity"][d]["AccountId"])
    org.fake.tables["Opportunity"][deal]["CloseDate"] = "soon"
    rep = made["users"][1]
    org.fake.tables["User"][rep]["Name"] = {"not": "a name"}
    connector = org.connector()
    batches = list(connector.read_batches(None, batch_size=2))
    errors = {(e.record_type, e.record_id, e.field) for b in batches for e in b.errors}
    assert ("opportunity", deal, "close_date") in errors
    assert {e[:2] for e in errors} == {("opportunity", deal), ("user", rep)}
    assert all(("opportunity", deal) not in b.changed | b.affected for b in batches)
    whole = connector.read(None)
    held = set().union(*(b.incomplete for b in batches))
    assert held and held == set(whole.incomplete)  # the bad rep's records: not judged


def mutate(fake: FakeSalesforce, made: dict[str, list[str]]) -> None:
    """Changes after the first sync: a rename that merges two companies, an owner change, a
    next step set and one cleared, a deletion."""
    fake.now = NOW + dt.timedelta(minutes=5)
    accounts, deals, users = made["accounts"], made["deals"], made["users"]
    other = fake.tables["Account"][accounts[5]]["Name"]
    fake.update("Account", accounts[0], Name=f"{other} Corporation")
    fake.update("Opportunity", deals[3], OwnerId=users[0])
    fake.update("Opportunity", deals[7], NextStep="Pricing call with the CFO")
    fake.update("Opportunity", deals[8], NextStep="TBD")
    fake.delete("Opportunity", deals[9])
    fake.now = NOW + dt.timedelta(minutes=10)


def open_tasks(org: Org) -> set[tuple[str, str]]:
    """Open finding tasks, by fingerprint and record (a task made earlier keeps its owner)."""
    return {
        (str(t["Tsos_Fingerprint__c"]), str(t["WhatId"] or t["WhoId"]))
        for t in org.fake.records("Task")
        if t["Tsos_Fingerprint__c"] and t["Status"] != "Completed"
    }


def test_an_incremental_paged_sync_ends_where_a_full_read_of_the_changed_org_does(
    tmp_path: Path, key_pair: tuple[str, str]
) -> None:
    """The whole incremental read judges the changed records and the deals of changed
    accounts only, and misses findings that moved with a company merge; pages of whole
    company groups do not."""

    def config(org: Org, where: Path, size: int) -> dict[str, Any]:
        return {
            "connector": org.table(),
            "sync": {"mode": "annotate", "daily_full": False, "batch_size": size},
            "state": {"path": str(where / "state.sqlite")},
        }

    (tmp_path / "paged").mkdir()
    with fresh_org(tmp_path / "paged", key_pair) as org:
        made = generate(org.fake)
        run_sync(config(org, tmp_path / "paged", 3), connector=org.connector(), as_of=TODAY)
        mutate(org.fake, made)
        second = run_sync(
            config(org, tmp_path / "paged", 1), connector=org.connector(), as_of=TODAY
        )
        assert not second.full and second.records_changed == 4  # 3 deals, 1 account
        assert second.records_deleted == 1
        paged = open_tasks(org)
    (tmp_path / "whole").mkdir()
    with fresh_org(tmp_path / "whole", key_pair) as org:
        mutate(org.fake, generate(org.fake))
        whole_read = WholeRead(org.connector())
        run_sync(config(org, tmp_path / "whole", 1000), connector=whole_read, as_of=TODAY)  # type: ignore[arg-type]
        whole = open_tasks(org)
    assert paged and paged == whole
