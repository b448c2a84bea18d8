"""An open deal has a next step the buyer agreed, with a date.

Rule ``tsos.next-step-required``.
"""

from __future__ import annotations

from tsos_rules.facts import OpportunityFacts
from tsos_rules.findings import Severity
from tsos_rules.packs.tsos._common import NO_VIOLATIONS, Found, Params, deal_name, rule
from tsos_rules.rules.spec import RuleSpec, Violation

NEXT_STEP_MESSAGES = {
    "placeholder": "Next step {text!r} is a placeholder, not a commitment; "
    "propose a real next step with a date and get the buyer to agree.",
    "missing": "Deal {name} has no next step with a date; "
    "propose and seek commitment to a next step.",
    "past_due": "Next step date {date} is past; agree a new next step with the buyer.",
}


def next_step_required(facts: OpportunityFacts, params: Params) -> Found:
    if not facts.is_open or facts.next_step_valid:
        return NO_VIOLATIONS
    deal = facts.opportunity
    state = facts.next_step_state
    return [
        Violation(
            state,
            NEXT_STEP_MESSAGES[state].format(
                text=deal.next_step, name=deal_name(facts), date=deal.next_step_date
            ),
        )
    ]


NEXT_STEP_REQUIRED = rule(
    RuleSpec(
        id="tsos.next-step-required",
        org_settings=("placeholders", "timezone"),
        severity=Severity.BLOCK,
        record_types=("opportunity",),
        title="No deal without a next step",
        doctrine="Most important: propose and seek commitment to a next step.",
        source=('tip #2; tip #1 ("What\'s a next step?"); tip #4 ("What will be the next step?")'),
        semantics=(
            "Every open deal has a non-placeholder next step and a next-step date today or "
            "later. An open task or event on the deal due today or later also counts; a "
            "past-due one cures nothing. Placeholders are matched ignoring case and "
            "punctuation (org.placeholders)."
        ),
        remediation="Agree a concrete next step and its date with the buyer.",
        reasons={
            "placeholder": "the next step is a placeholder such as TBD",
            "missing": "no next step, or no next-step date",
            "past_due": "the next-step date is before today",
        },
    ),
    opportunity=next_step_required,
)
