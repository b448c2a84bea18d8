"""A partner's stored bound (``Aggregate.flags_above``) on Salesforce, whose incremental read
brings a changed partner account but not the deals that name it (``PartnerAccountId``): the
bound of a partner read as changed no longer spares its deals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sf_credit import (
    NOW,
    RULE,
    connector_of,
    generate,
    only_channel_economics,
    open_findings,
    sync,
)
from sf_support import Org, WholeRead, fresh_org

from tsos_rules.sync.state import StateStore

TOTAL = "channel-economics.commit-by-partner"


@pytest.fixture(autouse=True)
def channel_economics(isolated_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    only_channel_economics(monkeypatch)


def _bound_and_total(where: Path, partner: str) -> tuple[float, float]:
    state = StateStore(where / "state.sqlite")
    try:
        bound = state.aggregate_bounds("salesforce", TOTAL, [partner])[partner]
        (total,) = state.db.execute(
            "SELECT sum(value) FROM aggregate_shares WHERE aggregate = ? AND key = ?",
            (TOTAL, partner),
        ).fetchone()
    finally:
        state.close()
    return bound, float(total)


#: Edits made to the org after the first sync (``where`` holds its state, or none yet).
Change = Callable[[Org, dict[str, list[str]], Path], None]


def _incremental_and_full(tmp_path: Path, key_pair: tuple[str, str], change: Change) -> None:
    """One org synced, changed and synced again; another changed and synced in full: both
    end with the same open findings, and the change put deals over their partner's credit."""
    runs: dict[str, Any] = {}
    for way in ("incremental", "full"):
        where = tmp_path / way
        where.mkdir()
        with fresh_org(where, key_pair) as org:
            made = generate(org.fake)
            if way == "incremental":
                sync(org, where, connector_of(org), 3)
                runs["before"] = open_findings(where)
            org.fake.now = NOW + dt.timedelta(minutes=5)
            change(org, made, where)
            org.fake.now = NOW + dt.timedelta(minutes=10)
            runs[way] = (sync(org, where, connector_of(org), 3), open_findings(where))
    assert not runs["incremental"][0].full
    assert runs["incremental"][1] == runs["full"][1]
    assert runs["incremental"][1] - runs["before"]  # deals newly over the partner's credit


def test_a_partner_whose_credit_changed_has_every_deal_judged_when_its_total_rises(
    tmp_path: Path, key_pair: tuple[str, str]
) -> None:
    """The partner's credit limit drops below what its deals allow and one of its commit deals
    grows by 1, well within the bound kept from the full sync: the incremental run still ends
    where a full sync ends."""
    drop: list[float] = []

    def change(org: Org, made: dict[str, list[str]], where: Path) -> None:
        partner = made["partners"][2]
        if not drop:  # the incremental way, first: how far the limit must drop
            bound, total = _bound_and_total(where, partner)
            assert bound > total + 2  # the rise below stays within it
            drop.append(bound - total + 1_000)  # the least-covered deal goes over
        deals = org.fake.tables["Opportunity"]
        commit = next(
            d
            for d in made["deals"]
            if deals[d]["ForecastCategoryName"] == "Commit"
            and deals[d]["PartnerAccountId"] == partner
        )
        limit = org.fake.tables["Account"][partner]["Partner_Credit_Limit__c"]
        org.fake.update("Account", partner, Partner_Credit_Limit__c=limit - drop[0])
        org.fake.update("Opportunity", commit, Amount=deals[commit]["Amount"] + 1.0)

    _incremental_and_full(tmp_path, key_pair, change)


def test_a_partner_whose_credit_dropped_has_its_deals_judged_again(
    tmp_path: Path, key_pair: tuple[str, str]
) -> None:
    """Only the partner account changes (its credit limit drops): the key pass pages the
    companies of the deals that name it as their partner, so the incremental run judges them
    again and ends where a full sync ends."""

    def change(org: Org, made: dict[str, list[str]], where: Path) -> None:
        org.fake.update("Account", made["partners"][2], Partner_Credit_Limit__c=100_000.0)

    _incremental_and_full(tmp_path, key_pair, change)


def test_a_changed_partner_whose_total_fell_has_every_deal_judged(
    tmp_path: Path, key_pair: tuple[str, str]
) -> None:
    """Read by a connector that brings a changed partner account without the deals naming it
    (the whole-org ``read``): the partner's limit drops and one of its commit deals leaves
    commit, so its total falls. A fall alone would spare its deals without a finding; the
    partner changed too, so every deal of it is judged again and the credit findings are a
    full sync's."""
    runs: dict[str, set[tuple[str, str, str]]] = {}
    for way in ("incremental", "full"):
        where = tmp_path / way
        where.mkdir()
        with fresh_org(where, key_pair) as org:
            made = generate(org.fake)
            partner = made["partners"][2]
            deals = org.fake.tables["Opportunity"]
            commit = next(
                d
                for d in made["deals"]
                if deals[d]["ForecastCategoryName"] == "Commit"
                and deals[d]["PartnerAccountId"] == partner
            )
            if way == "incremental":
                sync(org, where, WholeRead(connector_of(org)), 3)
                runs["before"] = _credit(open_findings(where))
            org.fake.now = NOW + dt.timedelta(minutes=5)
            org.fake.update("Account", partner, Partner_Credit_Limit__c=100_000.0)
            org.fake.update("Opportunity", commit, ForecastCategoryName="Pipeline")
            org.fake.now = NOW + dt.timedelta(minutes=10)
            summary = sync(org, where, WholeRead(connector_of(org)), 3, full=way == "full")
            assert summary.full == (way == "full")
            runs[way] = _credit(open_findings(where))
    assert runs["incremental"] == runs["full"]
    assert runs["incremental"] - runs["before"]  # deals newly over the partner's credit


def _credit(found: set[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """The credit findings alone: the whole-org read judges a changed record without its
    company's other leads, which other rules compare."""
    return {finding for finding in found if finding[0] == RULE}
