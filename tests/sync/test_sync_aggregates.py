"""A sync's findings do not depend on batch size or on which records changed (pack aggregates)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from local_subsets import NoKeyedReads
from tsos_rules.connectors.local.connector import LocalConnector
from tsos_rules.connectors.local.crm import LocalCRM
from tsos_rules.connectors.local.demo import generate_org

AS_OF = dt.date(2026, 11, 24)
Org = Any

RULE = "channel-economics.partner-credit-limit"


#: Every installed pack, contrib packs included (the sync fixtures turn them off).
pytestmark = pytest.mark.usefixtures("contrib_packs")


@pytest.fixture(scope="module")
def small_org() -> dict[str, Any]:
    return generate_org(opportunities=120, seed=7, as_of=AS_OF)


def _open(org: Org) -> set[tuple[str, str, str]]:
    return {(f.rule, f.record_id, f.reason) for f in org.open_findings().values()}


def test_batch_sizes_1_25_and_10000_open_the_same_findings(
    make_org: Callable[[Mapping[str, Any]], Org], small_org: dict[str, Any]
) -> None:
    found = []
    for size in (1, 25, 10_000):
        org = make_org(small_org)
        org.sync(batch_size=size)
        found.append(_open(org))
    assert any(rule == RULE for rule, _, _ in found[0])
    assert found[0] == found[1] == found[2]


def test_renaming_a_deal_keeps_its_partner_credit_finding(
    make_org: Callable[[Mapping[str, Any]], Org], small_org: dict[str, Any]
) -> None:
    org = make_org(small_org)
    org.sync(batch_size=25)
    before = _open(org)
    deal = next(record_id for rule, record_id, _ in sorted(before) if rule == RULE)
    org.crm.update("opportunity", deal, {"name": "Renamed, no business meaning"})
    org.sync(batch_size=25)
    assert _open(org) == before


def _deals(org: Org) -> list[dict[str, Any]]:
    rows = org.crm.db.execute("SELECT id, grp FROM opportunities WHERE is_deleted = 0")
    return [{**(org.crm.get("opportunity", i) or {}), "grp": g} for i, g in rows.fetchall()]


def _other_deal(org: Org, commit: dict[str, Any], found: set[Any]) -> dict[str, Any]:
    """An open deal of the commit deal's partner, in another company group, with no
    partner-credit finding yet (so only the partner's total can give it one)."""
    return next(
        d
        for d in _deals(org)
        if d["partner_id"] == commit["partner_id"]
        and d["grp"] != commit["grp"]
        and not d["is_closed"]
        and d.get("amount")
        and not any(rule == RULE and rid == d["id"] for rule, rid, _ in found)
    )


def test_a_commit_deals_new_amount_rejudges_the_partners_other_deals_in_the_same_run(
    make_org: Callable[[Mapping[str, Any]], Org], small_org: dict[str, Any]
) -> None:
    org = make_org(small_org)
    org.sync(batch_size=25)
    found = _open(org)
    commit = next(
        d
        for d in _deals(org)
        if d["forecast_category"] == "commit" and not d["is_closed"] and d["partner_id"]
    )
    other = _other_deal(org, commit, found)
    credit = {p["id"]: p["credit_limit"] for p in small_org["partners"]}[commit["partner_id"]]

    org.crm.update("opportunity", commit["id"], {"amount": commit["amount"] + 2 * credit})
    grown = org.sync(batch_size=25)
    assert not grown.full
    assert grown.records_judged < len(small_org["opportunities"])  # no full read
    after = _open(org)
    assert (RULE, other["id"], "over_credit") in after  # judged again in this very run
    state = org.state()
    try:
        task = next(
            f
            for f in state.findings("local", status="open")
            if f.rule == RULE and f.record_id == other["id"]
        )
    finally:
        state.close()
    assert task.task_id  # its task is open too

    full = make_org(small_org)  # the same CRM judged in full gives the same findings
    full.crm.update("opportunity", commit["id"], {"amount": commit["amount"] + 2 * credit})
    full.sync(batch_size=25)
    assert _open(full) == after

    org.crm.update("opportunity", commit["id"], {"amount": commit["amount"]})
    org.sync(batch_size=25)
    assert _open(org) == found  # and back: resolved in the incremental run


def test_without_keyed_reads_the_readers_come_from_a_full_read(
    make_org: Callable[[Mapping[str, Any]], Org], small_org: dict[str, Any]
) -> None:
    org = make_org(small_org)
    org.sync(batch_size=25)
    found = _open(org)
    commit = next(
        d
        for d in _deals(org)
        if d["forecast_category"] == "commit" and not d["is_closed"] and d["partner_id"]
    )
    other = _other_deal(org, commit, found)
    credit = {p["id"]: p["credit_limit"] for p in small_org["partners"]}[commit["partner_id"]]
    org.crm.update("opportunity", commit["id"], {"amount": commit["amount"] + 2 * credit})
    connector = NoKeyedReads(LocalConnector(LocalCRM(org.crm_path)))
    try:
        run = org.sync(batch_size=25, connector=connector)
    finally:
        connector.close()
    assert not run.full
    assert (RULE, other["id"], "over_credit") in _open(org)
