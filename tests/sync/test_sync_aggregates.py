"""A sync's findings do not depend on batch size or on which records changed (pack aggregates)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from tsos_rules.connectors.local.demo import generate_org

AS_OF = dt.date(2026, 11, 24)
Org = Any

RULE = "channel-economics.partner-credit-limit"


@pytest.fixture(autouse=True)
def contrib_packs(data_dir: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every installed pack, contrib packs included (the sync fixtures turn them off)."""
    monkeypatch.delenv("TSOS_RULES_DISABLE_PLUGINS", raising=False)


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
