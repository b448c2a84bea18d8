"""The ``mutual-operating-period`` pack: channel commit deals timed for the vendor's quarter end
but not for the partner's.

Partners declare their fiscal calendar in the snapshot's standard field
``Partner.fiscal_year_start_month``; the vendor's calendar is the org's
``[org] fiscal_year_start_month``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

from tsos_rules import Parameter, PythonRule, RulePack, RuleSpec, Severity, Violation
from tsos_rules.facts import OpportunityFacts
from tsos_rules.rules.spec import CheckFn
from tsos_rules_mutual_operating_period.calendars import FiscalCalendar, FiscalQuarter

PACK_NAME = "mutual-operating-period"
RULE_ID = f"{PACK_NAME}.partner-quarter-mismatch"
Params = Mapping[str, Any]


def opportunity_check(check: Callable[[OpportunityFacts, Params], Iterator[Violation]]) -> CheckFn:
    """A check written for deals, typed as the engine's generic check (it only ever passes
    OpportunityFacts to the checks registered under "opportunity")."""
    return cast(CheckFn, check)


PARAMETERS = (
    Parameter(
        "window_days",
        14,
        "Days at the end of the vendor's quarter that count as its quarter-end push.",
    ),
    Parameter(
        "forecast_categories",
        ["commit"],
        "Forecast categories of the deals judged (the deals the vendor's quarter counts on).",
    ),
    Parameter(
        "default_partner_start_month",
        1,
        "Fiscal year start month assumed for partners that declare none; 0 skips them.",
    ),
)


def partner_calendar(facts: OpportunityFacts, params: Params) -> FiscalCalendar | None:
    """The deal's partner's calendar (the default for partners without one; None to skip)."""
    partner = facts.partner
    if partner is None:
        return None
    month = partner.fiscal_year_start_month or int(params["default_partner_start_month"])
    if not 1 <= month <= 12:
        return None
    return FiscalCalendar(month)


def vendor_calendar(facts: OpportunityFacts) -> FiscalCalendar:
    return FiscalCalendar(facts.index.org.fiscal_year_start_month)


def periods(facts: OpportunityFacts, params: Params) -> tuple[FiscalQuarter, FiscalQuarter] | None:
    """The close date's quarter in the vendor's and the partner's calendars."""
    close = facts.opportunity.close_date
    partner = partner_calendar(facts, params)
    if close is None or partner is None:
        return None
    return vendor_calendar(facts).quarter_of(close), partner.quarter_of(close)


def partner_quarter_mismatch(facts: OpportunityFacts, params: Params) -> Iterator[Violation]:
    deal = facts.opportunity
    if not facts.is_open or not facts.is_channel_deal or deal.close_date is None:
        return
    categories = {str(c) for c in params["forecast_categories"]}
    if deal.forecast_category is None or deal.forecast_category.value not in categories:
        return
    both = periods(facts, params)
    if both is None:
        return
    vendor, partner = both
    days_left = vendor.days_left(deal.close_date)
    if days_left >= int(params["window_days"]) or vendor.same_period(partner):
        return
    name = deal.name or deal.id
    partner_name = facts.partner.name or facts.partner.id if facts.partner else "the partner"
    yield Violation(
        "partner_mid_quarter",
        f"{deal.forecast_category.value.capitalize()} deal {name} closes {deal.close_date}, "
        f"{days_left} day(s) before the vendor's {vendor.label} ends, but for {partner_name} "
        f"it falls in {partner.label}, which ends {partner.end}: the partner has no "
        "quarter-end urgency then. Agree a mutual operating period with the partner, or do "
        "not count on this date.",
        details={
            "vendor_period": vendor.label,
            "vendor_quarter_end": vendor.end.isoformat(),
            "partner_period": partner.label,
            "partner_quarter_end": partner.end.isoformat(),
            "days_to_vendor_quarter_end": days_left,
        },
    )


PACK = RulePack(
    name=PACK_NAME,
    version="0.1.0",
    description="Partner fiscal calendars and the vendor's quarter-end push.",
    parameters=PARAMETERS,
    python_rules=(
        PythonRule(
            spec=RuleSpec(
                id=RULE_ID,
                severity=Severity.WARN,
                record_types=("opportunity",),
                title="Quarter-end commit deal sits mid-quarter for the partner",
                doctrine=(
                    "Channel Managers can't force their partners to care about the vendor's "
                    "quarter-end urgency. They can however, ensure there is mutual "
                    "understanding of both parties fiscal and planning cycles."
                ),
                source="Partner operating cycles (seed 001), Mutual Operating Period",
                semantics=(
                    "An open channel deal in a judged forecast category (commit) whose close "
                    "date lies in the last window_days days of the vendor's fiscal quarter, "
                    "while in the partner's fiscal calendar that date falls in a quarter with "
                    "different boundaries. Partners without a declared calendar are assumed "
                    "to use default_partner_start_month."
                ),
                remediation=(
                    "Talk to the partner about both quarter ends; agree a mutual operating "
                    "period (timing, incentives) or move the forecast."
                ),
                reasons={"partner_mid_quarter": "the date is not a partner quarter end"},
                parameters=("window_days", "forecast_categories", "default_partner_start_month"),
            ),
            checks={"opportunity": opportunity_check(partner_quarter_mismatch)},
        ),
    ),
)
