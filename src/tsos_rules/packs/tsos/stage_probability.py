"""A deal's probability matches its stage on the ladder.

Rule ``tsos.stage-probability-consistent``.
"""

from __future__ import annotations

from tsos_rules.facts import OpportunityFacts
from tsos_rules.findings import Severity
from tsos_rules.packs.tsos._common import NO_VIOLATIONS, Found, Params, deal_name, rule
from tsos_rules.rules.spec import RuleSpec, Violation


def stage_probability_consistent(facts: OpportunityFacts, params: Params) -> Found:
    deal = facts.opportunity
    if not facts.stage_known:
        return [
            Violation(
                "unknown_stage",
                f"Deal {deal_name(facts)} is at stage {deal.stage!r}, which is not on the stage "
                "ladder; use a ladder stage or add it to org.stage_ladder.",
            )
        ]
    default = facts.stage_probability
    tolerance = params["probability_tolerance"]
    if (
        deal.probability is not None
        and default is not None
        and abs(deal.probability - default) > tolerance
    ):
        return [
            Violation(
                "probability_mismatch",
                f"Deal {deal_name(facts)} is at {deal.probability:g} % but its stage "
                f"{deal.stage!r} stands at {default} %; align the probability with the stage.",
                details={"expected": default, "actual": deal.probability},
            )
        ]
    return NO_VIOLATIONS


STAGE_PROBABILITY_CONSISTENT = rule(
    RuleSpec(
        id="tsos.stage-probability-consistent",
        org_settings=("stage_ladder",),
        severity=Severity.WARN,
        record_types=("opportunity",),
        title="Probability matches the stage",
        doctrine="The consultative dialogue sets each step's probability.",
        source="tip #4, the consultative dialogue table (probability column)",
        semantics=(
            "A deal's probability is within probability_tolerance points of its stage's "
            "default on org.stage_ladder, and its stage is on the ladder. Open and closed "
            "deals."
        ),
        remediation="Set the probability to the stage's default, or correct the stage.",
        reasons={
            "unknown_stage": "the stage is not on the ladder",
            "probability_mismatch": "the probability is off the stage default",
        },
        parameters=("probability_tolerance",),
    ),
    opportunity=stage_probability_consistent,
)
