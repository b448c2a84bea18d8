"""channel-economics: each rule on builder snapshots, through the public testing kit only."""

from __future__ import annotations

import pytest
from tsos_rules_channel_economics import PACK, tier_margins

from tsos_rules.testing import (
    channel_account,
    channel_deal,
    closed_deal,
    consent,
    deal,
    evaluate,
    found,
    installed_packs,
    only,
    partner,
    snapshot,
)

CREDIT = "channel-economics.partner-credit-limit"
DISCOUNT = "channel-economics.discount-needs-size-and-timeframe"
MARGIN = "channel-economics.tier-margin"


def run(*deals, partners=None, **parameters):
    snap = snapshot(accounts=[channel_account()], opportunities=deals, partners=partners)
    return evaluate(
        PACK, snap, parameters={"channel-economics": parameters} if parameters else None
    )


# -- partner-credit-limit ------------------------------------------------------------------------


def test_a_deal_within_the_partners_credit_passes() -> None:
    assert found(run(channel_deal(amount=250_000)), CREDIT) == set()


def test_a_deal_above_the_partners_credit_is_flagged_with_the_arithmetic() -> None:
    finding = only(run(channel_deal(amount=300_000)), CREDIT)
    assert (finding.reason, finding.severity.value) == ("over_credit", "warn")
    assert "300,000" in finding.message and "250,000" in finding.message
    assert finding.details["available_credit"] == 250_000


def test_the_partners_balance_and_other_commit_deals_use_up_credit() -> None:
    partners = [partner("p1", credit_limit=250_000, credit_used=100_000)]
    deals = [
        channel_deal("o1", amount=100_000),
        channel_deal("o2", amount=60_000, forecast_category="commit", stage="closing"),
    ]
    findings = run(*deals, partners=partners)
    assert found(findings, CREDIT) == {("o1", "over_credit", "warn")}
    assert only(findings, CREDIT).details["available_credit"] == 90_000
    relaxed = run(*deals, partners=partners, reserve_commit_deals=False)
    assert found(relaxed, CREDIT) == set()


def test_recorded_consent_for_direct_fulfilment_makes_it_info() -> None:
    deal_ = channel_deal(amount=400_000, partner_consent=consent(reason="credit_limit"))
    assert found(run(deal_), CREDIT) == {("o1", "over_credit_direct_fulfilment", "info")}


@pytest.mark.parametrize(
    "deal_",
    [
        deal(amount=900_000),  # no partner
        closed_deal(amount=900_000, partner_id="p1"),
        channel_deal(amount=None),
    ],
    ids=["direct", "closed", "no-amount"],
)
def test_deals_the_rule_does_not_judge(deal_: dict[str, object]) -> None:
    assert found(run(deal_), CREDIT) == set()


def test_a_partner_without_a_credit_limit_is_not_judged() -> None:
    assert (
        found(run(channel_deal(amount=10**9), partners=[partner(credit_limit=None)]), CREDIT)
        == set()
    )


# -- discount-needs-size-and-timeframe ----------------------------------------------------------


def test_a_discount_with_quantity_and_close_date_passes() -> None:
    assert found(run(deal(discount_percent=15, quantity=200)), DISCOUNT) == set()


def test_a_discount_without_quantity_or_close_date_is_flagged_for_each() -> None:
    findings = run(deal(discount_percent="12.5", close_date=None))
    assert found(findings, DISCOUNT) == {
        ("o1", "no_quantity", "warn"),
        ("o1", "no_close_date", "warn"),
    }


@pytest.mark.parametrize("discount", [0, None, "n/a"])
def test_no_discount_needs_no_justification(discount: object) -> None:
    assert found(run(deal(discount_percent=discount, close_date=None)), DISCOUNT) == set()


def test_small_discounts_can_be_let_through_and_fields_renamed() -> None:
    small = deal(Discount__c=4)
    assert found(run(small, discount_field="Discount__c"), DISCOUNT) == {
        ("o1", "no_quantity", "warn")
    }
    assert (
        found(run(small, discount_field="Discount__c", min_discount_percent=5), DISCOUNT) == set()
    )


# -- tier-margin --------------------------------------------------------------------------------


def test_tiers_are_five_points_apart_by_default() -> None:
    params = {p.name: p.default for p in PACK.parameters}
    assert tier_margins(params) == {"authorized": 10.0, "premier": 15.0, "premier_elite": 20.0}


@pytest.mark.parametrize(
    ("tier", "margin", "expected"),
    [
        ("authorized", 10, set()),
        ("premier", 15.4, set()),
        ("Premier Elite", 20, set()),
        ("premier", 10, {("o1", "below_tier", "warn")}),
        ("authorized", 15, {("o1", "above_tier", "warn")}),
        ("gold", 15, {("o1", "unknown_tier", "info")}),
    ],
)
def test_margin_must_match_the_tier(
    tier: str, margin: float, expected: set[tuple[str, str, str]]
) -> None:
    findings = run(channel_deal(margin_percent=margin), partners=[partner(tier=tier)])
    assert found(findings, MARGIN) == expected


def test_tier_margins_are_configurable() -> None:
    deal_ = channel_deal(margin_percent=14)
    tuned = run(deal_, tier_base_margin=8, tier_step=6)  # premier is 14
    assert found(tuned, MARGIN) == set()
    assert found(run(deal_), MARGIN) == {("o1", "below_tier", "warn")}


def test_deals_without_a_margin_are_not_judged() -> None:
    assert found(run(channel_deal()), MARGIN) == set()


# -- the package as installed -----------------------------------------------------------------


def test_the_entry_point_registers_the_pack() -> None:
    assert "channel-economics" in [pack.name for pack in installed_packs()]


def test_tsos_rules_lists_and_explains_the_rules(tsos_cli) -> None:
    listed = tsos_cli("rules")
    for rule in (CREDIT, DISCOUNT, MARGIN):
        assert rule in listed.out
    explained = tsos_cli("explain", MARGIN)
    assert explained.code == 0 and "tier_step" in explained.out


def test_parameters_come_from_the_config_file(tsos_cli, tmp_path) -> None:
    config = tmp_path / "tsos-rules.toml"
    config.write_text("[packs.channel-economics]\ntier_step = 2.5\n", encoding="utf-8")
    explained = tsos_cli("explain", MARGIN, "--config", str(config))
    assert "tier_step = 2.5" in explained.out


def test_the_readme_example_prints_what_it_says() -> None:
    from pathlib import Path

    from tsos_rules.testing import run_markdown_example

    example = run_markdown_example(Path(__file__).parents[1] / "README.md")
    assert example.expected and example.printed == example.expected
