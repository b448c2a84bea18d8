"""The Python rule pack of docs/tutorial-rule-pack.md (part 2): ``acme.big-deal-sponsor``.

Deals above a threshold need an executive sponsor on the customer side, recorded in the CRM
field ``executive_sponsor`` (an *extra* field: the core does not know it, the rule reads it
from ``record.extra``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tsos_rules import Parameter, PythonRule, RulePack, RuleSpec, Severity, Violation, hookimpl
from tsos_rules.facts import OpportunityFacts


def big_deal_sponsor(facts: OpportunityFacts, params: Mapping[str, Any]) -> Iterator[Violation]:
    deal = facts.opportunity
    if not facts.is_open or (deal.amount or 0) < params["threshold"]:
        return
    sponsor = deal.extra.get("executive_sponsor")
    if not sponsor:
        yield Violation(
            "no_sponsor",
            f"Deal {deal.name or deal.id} ({deal.amount:,.0f}) has no executive sponsor; "
            "name the customer executive who owns the decision.",
            details={"threshold": params["threshold"]},
        )
    elif deal.forecast_category == "commit" and sponsor == facts.opportunity.owner_id:
        yield Violation(
            "sponsor_is_owner",
            f"Deal {deal.name or deal.id} names its own owner as the executive sponsor.",
            severity=Severity.INFO,
        )


PACK = RulePack(
    name="acme",
    version="1.0.0",
    description="ACME's own pipeline rules.",
    parameters=(Parameter("threshold", 100_000, "Deal amount from which a sponsor is needed."),),
    python_rules=(
        PythonRule(
            spec=RuleSpec(
                id="acme.big-deal-sponsor",
                severity=Severity.WARN,
                record_types=("opportunity",),
                title="Big deals have an executive sponsor",
                doctrine="Know who signs: every big deal has an executive sponsor.",
                semantics="Open deals of at least `threshold` name an executive_sponsor.",
                remediation="Record the customer executive who owns the decision.",
                reasons={"no_sponsor": "no sponsor recorded", "sponsor_is_owner": "info"},
                parameters=("threshold",),
            ),
            checks={"opportunity": big_deal_sponsor},
        ),
    ),
)


@hookimpl
def tsos_rules_register_packs(register: Callable[[RulePack], None]) -> None:
    register(PACK)
