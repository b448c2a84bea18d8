"""A commit deal is real: a date this quarter, a next step, a late enough stage.

Rule ``tsos.commit-integrity``.
"""

from __future__ import annotations

from tsos_rules.facts import OpportunityFacts
from tsos_rules.findings import Severity
from tsos_rules.model import ForecastCategory
from tsos_rules.packs.tsos._common import NO_VIOLATIONS, Found, Params, deal_name, rule
from tsos_rules.rules.spec import RuleSpec, Violation


def commit_integrity(facts: OpportunityFacts, params: Params) -> Found:
    deal = facts.opportunity
    if not facts.is_open or deal.forecast_category is not ForecastCategory.COMMIT:
        return NO_VIOLATIONS
    found: list[Violation] = []
    quarter_end = facts.fiscal_quarter_end
    if deal.close_date is None or deal.close_date < facts.as_of:
        found.append(
            Violation(
                "close_date_invalid",
                f"Commit deal {deal_name(facts)} has no close date on or after today; "
                "a commit needs a real date this quarter.",
            )
        )
    elif deal.close_date > quarter_end:
        found.append(
            Violation(
                "beyond_quarter",
                f"Commit deal {deal_name(facts)} closes {deal.close_date}, after the quarter "
                f"ends {quarter_end}; move it out of commit or pull the date in.",
                details={"quarter_end": quarter_end.isoformat()},
            )
        )
    if not facts.next_step_valid:
        found.append(
            Violation(
                "no_next_step",
                f"Commit deal {deal_name(facts)} has no valid next step; "
                "do not miss your commit: agree the next step now.",
            )
        )
    minimum = params["commit_min_probability"]
    if facts.stage_probability is None or facts.stage_probability < minimum:
        found.append(
            Violation(
                "stage_too_early",
                f"Commit deal {deal_name(facts)} is at stage {deal.stage!r}, whose probability "
                f"is below {minimum} %; a commit belongs at closing or later.",
            )
        )
    return found


COMMIT_INTEGRITY = rule(
    RuleSpec(
        id="tsos.commit-integrity",
        org_settings=("fiscal_year_start_month", "stage_ladder", "placeholders"),
        severity=Severity.BLOCK,
        record_types=("opportunity",),
        title="A commit is a commit",
        doctrine="DO NOT MISS YOUR COMMIT ever.",
        source="tip #2",
        semantics=(
            "An open deal in forecast category commit closes on or after today and by the end "
            "of the current fiscal quarter (org.fiscal_year_start_month), has a valid next "
            "step (activities included), and sits at a stage whose default probability is at "
            "least commit_min_probability."
        ),
        remediation="Fix the date, the next step and the stage, or take it out of commit.",
        reasons={
            "close_date_invalid": "no close date, or one before today",
            "beyond_quarter": "closes after the current fiscal quarter",
            "no_next_step": "no valid next step",
            "stage_too_early": "stage default probability below the minimum",
        },
        parameters=("commit_min_probability",),
    ),
    opportunity=commit_integrity,
)
