"""channel-economics: each rule on builder snapshots, through the public testing kit only."""

from __future__ import annotations

from fractions import Fraction

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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


# -- restating a credit finding when the partner's commit total rises ----------------------------

_CENTS = st.integers(min_value=1, max_value=30_000_000).map(lambda c: c / 100)


@settings(max_examples=60, deadline=None)
@given(
    amounts=st.lists(st.tuples(_CENTS, st.booleans()), min_size=2, max_size=6),
    used=st.sampled_from([0, 1_000, 12_345.67]),
    rise=_CENTS,
    consented=st.booleans(),
)
def test_a_restated_credit_finding_is_the_one_judging_gives(
    amounts: list[tuple[float, bool]], used: float, rise: float, consented: bool
) -> None:
    """The sync's shortcut for a partner whose commit total rose: each deal still over its
    credit gets, from its stored finding alone, exactly the message and details judging the
    deal again gives (figures with cents, a balance or none, commit deals and others)."""
    aggregate = PACK.aggregates[0]
    params = PACK.resolve_parameters(None)
    partners = [partner("p1", credit_limit=400_000.5, credit_used=used)]
    grown, by_commit = 0, {i: commit for i, (_, commit) in enumerate(amounts)}
    if not any(by_commit.values()):
        return  # nothing commit to grow
    grown = next(i for i, commit in by_commit.items() if commit)

    def deals(extra: float) -> list[dict[str, object]]:
        return [
            channel_deal(
                f"o{i}",
                name=f"Deal (limit 1 = 1) {i}",  # the quoted sum's shape in a name too
                amount=amount + (extra if i == grown else 0),
                forecast_category="commit" if commit else "pipeline",
                stage="closing" if commit else "proposal",
                **({"partner_consent": consent(reason="credit_limit")} if consented else {}),
            )
            for i, (amount, commit) in enumerate(amounts)
        ]

    before = {f.record_id: f for f in run(*deals(0), partners=partners) if f.rule == CREDIT}
    after_deals = deals(rise)
    after = {f.record_id: f for f in run(*after_deals, partners=partners) if f.rule == CREDIT}
    # the engine's total: the exact sum, then a float
    total = float(
        sum(Fraction(d["amount"]) for d in after_deals if d["forecast_category"] == "commit")
    )
    for record_id, finding in before.items():
        if record_id == f"o{grown}":
            continue  # its own record changed: it is judged, never restated
        i = int(record_id[1:])
        own = amounts[i][0] if amounts[i][1] else 0.0
        restated = aggregate.restate(finding, "p1", total, own, params)
        assert restated == after[record_id]
        assert restated.message == after[record_id].message
        assert dict(restated.details) == dict(after[record_id].details)


def test_a_credit_finding_is_not_restated_when_its_partner_total_would_clear_it() -> None:
    """Restating is for a rising total: one that would leave the deal within its credit (or a
    finding this code did not write) is judged again instead."""
    aggregate = PACK.aggregates[0]
    params = PACK.resolve_parameters(None)
    finding = only(run(channel_deal(amount=300_000)), CREDIT)
    assert aggregate.restate(finding, "p1", -60_000.0, 0.0, params) is None
    assert (
        aggregate.restate(attrs.evolve(finding, message="reworded"), "p1", 10.0, 0.0, params)
        is None
    )
    assert aggregate.restate(attrs.evolve(finding, rule=DISCOUNT), "p1", 10.0, 0.0, params) is None
    risen = aggregate.restate(finding, "p1", 10.0, 0.0, params)
    assert risen is not None and risen.details["available_credit"] == 250_000 - 10.0


def test_a_deal_named_like_its_sum_keeps_its_name_when_restated() -> None:
    aggregate = PACK.aggregates[0]
    params = PACK.resolve_parameters(None)
    quoted = "(limit 250,000 - 10 on its other commit deals = 249,990)"

    def judged(commit_amount: float) -> object:
        deals = [
            channel_deal("o1", name=f"Deal {quoted}", amount=300_000),
            channel_deal("o2", amount=commit_amount, forecast_category="commit", stage="closing"),
        ]
        return next(f for f in run(*deals) if f.rule == CREDIT and f.record_id == "o1")

    before, after = judged(10), judged(20)
    assert before.message.count(quoted) == 2
    restated = aggregate.restate(before, "p1", 20.0, 0.0, params)
    assert restated is not None and restated.message == after.message
    assert restated.message.startswith(f"Deal Deal {quoted} (300,000)")
