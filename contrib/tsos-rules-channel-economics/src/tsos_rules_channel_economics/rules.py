"""The ``channel-economics`` pack: three Python rules over deals and their partners.

CRM fields read (beyond the snapshot's standard ones), all from ``extra`` and all renamable
through the pack's parameters:

- opportunity ``discount_percent``: the discount given on the deal, in percent;
- opportunity ``quantity``: the order size (seats, units) the discount buys;
- opportunity ``margin_percent``: the partner's margin on the deal, in percent;
- partner ``credit_used``: the partner's outstanding balance with the vendor.

Numbers may arrive as JSON numbers or numeric strings (``"12.5"``); anything else counts as
absent. Partner tiers are compared case- and separator-insensitively (``Premier Elite`` is
``premier_elite``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

import attrs

from tsos_rules import Parameter, PythonRule, RulePack, RuleSpec, Severity, Violation
from tsos_rules.facts import OpportunityFacts
from tsos_rules.findings import Finding
from tsos_rules.model import Opportunity
from tsos_rules.rules.spec import Aggregate, CheckFn

PACK_NAME = "channel-economics"
Params = Mapping[str, Any]


def opportunity_check(check: Callable[[OpportunityFacts, Params], Iterator[Violation]]) -> CheckFn:
    """A check written for deals, typed as the engine's generic check (it only ever passes
    OpportunityFacts to the checks registered under "opportunity")."""
    return cast(CheckFn, check)


PARAMETERS = (
    Parameter(
        "reserve_commit_deals",
        True,
        "Count the partner's other open commit deals against its available credit.",
    ),
    Parameter("credit_used_field", "credit_used", "Partner field: its outstanding balance."),
    Parameter("discount_field", "discount_percent", "Deal field: the discount in percent."),
    Parameter("quantity_field", "quantity", "Deal field: the order size the discount buys."),
    Parameter("min_discount_percent", 0.0, "Discounts at or below this need no justification."),
    Parameter("margin_field", "margin_percent", "Deal field: the partner's margin in percent."),
    Parameter(
        "tiers",
        ["authorized", "premier", "premier_elite"],
        "Partner tiers from the lowest up; each earns tier_step more margin than the one below.",
    ),
    Parameter("tier_base_margin", 10.0, "Margin in percent of the lowest tier."),
    Parameter("tier_step", 5.0, "Margin points each tier earns over the tier below."),
    Parameter("margin_tolerance", 0.5, "Points a deal's margin may differ from its tier's."),
)


def number(value: Any) -> float | None:
    """A float from a JSON number or a numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().rstrip("%"))
        except ValueError:
            return None
    return None


def tier_key(tier: str) -> str:
    """``"Premier Elite"``, ``"premier-elite"`` -> ``"premier_elite"``."""
    return "_".join(tier.replace("-", " ").replace("_", " ").lower().split())


def tier_margins(params: Params) -> dict[str, float]:
    """Each tier's margin: the base for the lowest tier, ``tier_step`` more for each above."""
    base = float(params["tier_base_margin"])
    step = float(params["tier_step"])
    return {tier_key(str(t)): base + step * i for i, t in enumerate(params["tiers"])}


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _deal_name(facts: OpportunityFacts) -> str:
    return facts.opportunity.name or facts.opportunity.id


def _partner_name(facts: OpportunityFacts) -> str:
    partner = facts.partner
    if partner is None:
        return "the partner"
    return partner.name or partner.id


# -- partner-credit-limit --------------------------------------------------------------------

#: The org-wide total of open commit deals per partner, which the engine sums over every deal of
#: the org (never one read batch or partition): see ``tsos_rules.rules.spec.Aggregate``.
COMMITTED_BY_PARTNER = f"{PACK_NAME}.commit-by-partner"


def commit_contribution(deal: Opportunity, params: Params) -> tuple[str, float] | None:
    """An open commit deal adds its amount to its partner's total."""
    if deal.partner_id and not deal.is_closed and deal.forecast_category == "commit":
        return deal.partner_id, deal.amount or 0.0
    return None


def reads_commit_total(deal: Opportunity, params: Params) -> bool:
    """Whether partner-credit-limit's verdict on a deal reads its partner's commit total:
    only an open deal with a partner and an amount is judged against the partner's credit,
    and the total only while ``reserve_commit_deals`` is on."""
    return bool(
        params["reserve_commit_deals"] and deal.partner_id and not deal.is_closed and deal.amount
    )


def flags_above_commit_total(facts: OpportunityFacts, params: Params) -> float | None:
    """The partner commit total above which partner-credit-limit flags this deal: its amount
    exceeds ``limit - balance - (total - its own commit amount)`` just when the total exceeds
    ``limit - balance - amount + its own commit amount``. Rounded down by a billionth of the
    largest figure, so float rounding in the rule never flags a deal below it."""
    deal = facts.opportunity
    partner = facts.partner
    if (
        not params["reserve_commit_deals"]
        or not facts.is_open
        or partner is None
        or partner.credit_limit is None
        or not deal.amount
    ):
        return None
    used = number(partner.extra.get(str(params["credit_used_field"]))) or 0.0
    own = deal.amount if deal.forecast_category == "commit" else 0.0
    figures = (partner.credit_limit, used, deal.amount, 1.0)
    return partner.credit_limit - used - deal.amount + own - 1e-9 * max(map(abs, figures))


def partner_credit_limit(facts: OpportunityFacts, params: Params) -> Iterator[Violation]:
    deal = facts.opportunity
    partner = facts.partner
    if not facts.is_open or partner is None or partner.credit_limit is None or not deal.amount:
        return
    used = number(partner.extra.get(str(params["credit_used_field"]))) or 0.0
    reserved = 0.0
    if params["reserve_commit_deals"]:
        reserved = facts.index.total(COMMITTED_BY_PARTNER, partner.id)
        if deal.forecast_category == "commit":
            reserved -= deal.amount
    available = partner.credit_limit - used - reserved
    if deal.amount <= available:
        return
    details = {
        "amount": deal.amount,
        "credit_limit": partner.credit_limit,
        "credit_used": used,
        "reserved_for_commit_deals": reserved,
        "available_credit": available,
    }
    figures = _credit_figures(details)
    consent = deal.partner_consent
    if consent is not None and consent.reason == "credit_limit":
        yield Violation(
            "over_credit_direct_fulfilment",
            f"Deal {_deal_name(facts)} ({_money(deal.amount)}) exceeds {_partner_name(facts)}'s "
            f"available credit {figures}; the partner agreed to direct fulfilment, keep them "
            "in the deal.",
            severity=Severity.INFO,
            details=details,
        )
        return
    yield Violation(
        "over_credit",
        f"Deal {_deal_name(facts)} ({_money(deal.amount)}) exceeds {_partner_name(facts)}'s "
        f"available credit {figures}; check the partner's credit with finance now so the "
        "order is not held up, or agree direct fulfilment with the partner and record their "
        "consent (reason credit_limit).",
        details=details,
    )


def _credit_figures(details: Mapping[str, Any]) -> str:
    """The sum a credit finding quotes: ``(limit L - balance B - R on its other commit deals =
    A)``, each term only when it is not zero."""
    arithmetic = f"limit {_money(details['credit_limit'])}"
    if details["credit_used"]:
        arithmetic += f" - balance {_money(details['credit_used'])}"
    if details["reserved_for_commit_deals"]:
        arithmetic += f" - {_money(details['reserved_for_commit_deals'])} on its other commit deals"
    return f"({arithmetic} = {_money(details['available_credit'])})"


def restate_credit_finding(
    finding: Finding, key: str, total: float, own: float, params: Params
) -> Finding | None:
    """A credit finding with its partner's commit total now ``total``, from the finding alone:
    the same sum as the rule's (``total`` less the deal's own commit amount, ``own``), its
    quoted figures swapped. None when it is not one this code wrote, or the deal would no
    longer be over (which a rising total never does): the deal is then judged again."""
    details = finding.details
    try:
        amount = details["amount"]
        limit = details["credit_limit"]
        used = details["credit_used"]
        quoted = _credit_figures(details)
    except (KeyError, TypeError, ValueError):
        return None
    if finding.rule != f"{PACK_NAME}.partner-credit-limit" or not params["reserve_commit_deals"]:
        return None
    reserved = total
    if own:
        reserved -= own
    available = limit - used - reserved
    if amount <= available:
        return None
    before, found, after = finding.message.rpartition(quoted)
    if not found:
        return None
    restated = {**details, "reserved_for_commit_deals": reserved, "available_credit": available}
    message = before + _credit_figures(restated) + after
    return attrs.evolve(finding, message=message, details=restated)


# -- discount-needs-size-and-timeframe ---------------------------------------------------------


def discount_needs_size_and_timeframe(
    facts: OpportunityFacts, params: Params
) -> Iterator[Violation]:
    deal = facts.opportunity
    if not facts.is_open:
        return
    discount = number(deal.extra.get(str(params["discount_field"])))
    if discount is None or discount <= float(params["min_discount_percent"]):
        return
    quantity = number(deal.extra.get(str(params["quantity_field"])))
    details = {"discount_percent": discount}
    if quantity is None or quantity <= 0:
        yield Violation(
            "no_quantity",
            f"Deal {_deal_name(facts)} gives a {discount:g}% discount with no order quantity; "
            "a discount buys a bigger order: record the quantity it is for.",
            details=details,
        )
    if deal.close_date is None:
        yield Violation(
            "no_close_date",
            f"Deal {_deal_name(facts)} gives a {discount:g}% discount with no close date; "
            "a discount buys a sooner order: agree the date it is conditional on.",
            details=details,
        )


# -- tier-margin -------------------------------------------------------------------------------


def tier_margin(facts: OpportunityFacts, params: Params) -> Iterator[Violation]:
    deal = facts.opportunity
    partner = facts.partner
    if not facts.is_open or partner is None or not partner.tier:
        return
    margin = number(deal.extra.get(str(params["margin_field"])))
    if margin is None:
        return
    margins = tier_margins(params)
    tier = tier_key(partner.tier)
    if tier not in margins:
        yield Violation(
            "unknown_tier",
            f"Partner {_partner_name(facts)} has tier {partner.tier!r}, which is not one of "
            f"{', '.join(margins)}; fix the tier or the pack's tiers parameter.",
            severity=Severity.INFO,
            details={"tier": partner.tier},
        )
        return
    expected = margins[tier]
    tolerance = float(params["margin_tolerance"])
    details = {"tier": tier, "margin_percent": margin, "tier_margin_percent": expected}
    if margin < expected - tolerance:
        yield Violation(
            "below_tier",
            f"Deal {_deal_name(facts)} gives {_partner_name(facts)} {margin:g}% margin, less "
            f"than the {expected:g}% its {tier} tier earns; pay the tier's margin.",
            details=details,
        )
    elif margin > expected + tolerance:
        yield Violation(
            "above_tier",
            f"Deal {_deal_name(facts)} gives {_partner_name(facts)} {margin:g}% margin, more "
            f"than the {expected:g}% its {tier} tier earns; get the extra margin approved or "
            "correct it.",
            details=details,
        )


# -- the pack ------------------------------------------------------------------------------------

PACK = RulePack(
    name=PACK_NAME,
    version="0.1.0",
    description="Partner credit limits, discounts that buy size and timing, tier margins.",
    parameters=PARAMETERS,
    aggregates=(
        Aggregate(
            name=COMMITTED_BY_PARTNER,
            record_type="opportunity",
            contribution=commit_contribution,
            description="Amount of the open commit deals of each partner, over the whole org.",
            read_by="partner_id",  # every open deal of the partner reads it, commit or not
            # only partner-credit-limit reads it, from the deal and its partner alone
            read_by_rules=(f"{PACK_NAME}.partner-credit-limit",),
            reads_when=reads_commit_total,
            # a smaller commit total leaves more credit: no deal goes over when it falls
            findings_rise_with_total=True,
            # while a partner's total stays at or below this, its unflagged deals stay so
            flags_above=flags_above_commit_total,
            # its findings' quoted figures follow a rise without reading the deal again
            restate=restate_credit_finding,
        ),
    ),
    python_rules=(
        PythonRule(
            spec=RuleSpec(
                id=f"{PACK_NAME}.partner-credit-limit",
                severity=Severity.WARN,
                record_types=("opportunity",),
                title="Deal fits the partner's available credit",
                doctrine="Be aware of partner credit limits so they wont have a deal get held up.",
                source="The Story of Selling, tip #28 (Direct vs. Channel)",
                semantics=(
                    "An open deal with a partner whose credit limit is known: its amount must "
                    "not exceed the limit less the partner's balance (credit_used) and, unless "
                    "reserve_commit_deals is off, the partner's other open commit deals. With "
                    "the partner's recorded consent for reason credit_limit the finding is info."
                ),
                remediation=(
                    "Check the partner's credit with finance, or agree direct fulfilment with "
                    "the partner and record their consent."
                ),
                reasons={
                    "over_credit": "amount above the partner's available credit",
                    "over_credit_direct_fulfilment": "the same, with the partner's consent (info)",
                },
                parameters=("reserve_commit_deals", "credit_used_field"),
            ),
            checks={"opportunity": opportunity_check(partner_credit_limit)},
        ),
        PythonRule(
            spec=RuleSpec(
                id=f"{PACK_NAME}.discount-needs-size-and-timeframe",
                severity=Severity.WARN,
                record_types=("opportunity",),
                title="A discount names the quantity and the date it buys",
                doctrine="I'll give a discount for a bigger order and/or sooner.",
                source="The Story of Selling",
                semantics=(
                    "An open deal whose discount is above min_discount_percent must record the "
                    "order quantity (> 0) and a close date."
                ),
                remediation="Record the quantity and the date the discount is conditional on.",
                reasons={
                    "no_quantity": "discount without an order quantity",
                    "no_close_date": "discount without a close date",
                },
                parameters=("discount_field", "quantity_field", "min_discount_percent"),
            ),
            checks={"opportunity": opportunity_check(discount_needs_size_and_timeframe)},
        ),
        PythonRule(
            spec=RuleSpec(
                id=f"{PACK_NAME}.tier-margin",
                severity=Severity.WARN,
                record_types=("opportunity",),
                title="Partner margin matches the partner's tier",
                doctrine=(
                    "Partner tiers authorized, premier and premier_elite: each tier earns 5 "
                    "points more margin than the one below."
                ),
                source="DOCTRINE.md, channel-economics",
                semantics=(
                    "An open deal with a tiered partner and a recorded margin: the margin must "
                    "equal the tier's (tier_base_margin plus tier_step per tier above the "
                    "lowest) within margin_tolerance."
                ),
                remediation="Pay the tier's margin, or get the exception approved.",
                reasons={
                    "below_tier": "margin below the tier's",
                    "above_tier": "margin above the tier's",
                    "unknown_tier": "the partner's tier is not a known tier (info)",
                },
                parameters=(
                    "margin_field",
                    "tiers",
                    "tier_base_margin",
                    "tier_step",
                    "margin_tolerance",
                ),
            ),
            checks={"opportunity": opportunity_check(tier_margin)},
        ),
    ),
)
