"""An org for syncs with channel-economics' partner credit (a total over the org): partners with
credit limits whose commit deals spread over many companies, and what the tests read back."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from sf_support import Org, WholeRead

from tsos_rules.connectors.base import ReadResult
from tsos_rules.connectors.salesforce import SalesforceConnector
from tsos_rules.sync.job import run_sync
from tsos_rules.sync.state import StateStore
from tsos_rules.testing.fake_salesforce import FakeSalesforce

NOW = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
TODAY = NOW.date()
RULE = "channel-economics.partner-credit-limit"
OPEN_STAGES = ["Prospecting", "Qualification", "Needs Analysis", "Negotiation/Review"]
SPELLINGS = ["{}", "{} Inc.", "{} Corporation"]


def only_channel_economics(monkeypatch: pytest.MonkeyPatch) -> None:
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
    return {"deals": deals, "partners": partners, "users": users, "accounts": accounts}


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
