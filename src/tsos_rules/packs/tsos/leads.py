"""Leads: every qualified lead gets an outcome, partners follow theirs up, one owner per company.

Rules ``tsos.lead-outcome-recorded``, ``tsos.partner-lead-followup`` and
``tsos.lead-single-owner``.
"""

from __future__ import annotations

from tsos_rules.facts import LeadFacts, OpportunityFacts
from tsos_rules.findings import Severity
from tsos_rules.model import LeadOutcome
from tsos_rules.packs.tsos._common import NO_VIOLATIONS, Found, Params, rule
from tsos_rules.rules.spec import RuleSpec, Violation


def lead_outcome_recorded(facts: LeadFacts, params: Params) -> Found:
    lead = facts.lead
    org = facts.index.org
    if lead.status in org.qualified_lead_statuses and lead.outcome is None:
        return [
            Violation(
                "no_outcome",
                f"Lead {lead.company or lead.id} is {lead.status} with no outcome; record it as "
                "a current prospect, a future prospect or no opportunity.",
            )
        ]
    return NO_VIOLATIONS


LEAD_OUTCOME_RECORDED = rule(
    RuleSpec(
        id="tsos.lead-outcome-recorded",
        org_settings=("qualified_lead_statuses",),
        severity=Severity.WARN,
        record_types=("lead",),
        title="Every qualified lead has an outcome",
        doctrine=(
            "Every qualified lead ends as a Current Prospect, a Future Prospect or No "
            "Opportunity; future prospects and no-opportunity leads are kept, not thrown back."
        ),
        source="tip #2, lead qualification",
        semantics=(
            "A lead whose status is in org.qualified_lead_statuses has an outcome. In-line, "
            "deleting a lead whose outcome is future or no_opportunity is refused."
        ),
        remediation="Record the outcome: current, future or no_opportunity.",
        reasons={
            "no_outcome": "qualified or closed with no outcome",
            "deleted_kept_lead": "(in-line, block) a future or no-opportunity lead deleted",
        },
    ),
    lead=lead_outcome_recorded,
)


KEPT_OUTCOMES = (LeadOutcome.FUTURE, LeadOutcome.NO_OPPORTUNITY)


def partner_lead_followup(facts: LeadFacts, params: Params) -> Found:
    lead = facts.lead
    if not facts.is_distributed or not lead.partner_id or not facts.is_open:
        return NO_VIOLATIONS
    found: list[Violation] = []
    elapsed = facts.business_days_since_distribution or 0
    accept_window = params["acceptance_business_days"]
    followup_window = params["followup_business_days"]
    to_accept = facts.business_days_to_accept
    if (to_accept is None and elapsed > accept_window) or (
        to_accept is not None and to_accept > accept_window
    ):
        found.append(
            Violation(
                "not_accepted",
                f"Lead {lead.company or lead.id} was distributed to partner {lead.partner_id} and "
                f"not accepted within {accept_window} business days; confirm the partner has the "
                "lead.",
            )
        )
    to_follow = facts.business_days_to_follow_up
    if (to_follow is None and elapsed > followup_window) or (
        to_follow is not None and to_follow > followup_window
    ):
        found.append(
            Violation(
                "no_followup",
                f"Lead {lead.company or lead.id} was not followed up by partner {lead.partner_id} "
                f"within {followup_window} business days; get confirmation they followed up.",
            )
        )
    return found


PARTNER_LEAD_FOLLOWUP = rule(
    RuleSpec(
        id="tsos.partner-lead-followup",
        org_settings=("closed_lead_statuses", "holidays", "timezone"),
        severity=Severity.WARN,
        record_types=("lead",),
        title="Partners accept and follow up their leads",
        doctrine=(
            "Get confirmation they have the lead and have followed up; that they have "
            "confirmed the lead based on qualification criteria and that they have next "
            "steps outlined."
        ),
        source='tip #28, "Partner Revenue starts with leads"',
        semantics=(
            "An open lead distributed to a partner is accepted within acceptance_business_days "
            "and followed up within followup_business_days of distribution (Mon-Fri less "
            "org.holidays, in the org's time zone)."
        ),
        remediation="Call the partner: confirm they have the lead and have followed up.",
        reasons={
            "not_accepted": "not accepted within the window",
            "no_followup": "not followed up within the window",
        },
        parameters=("acceptance_business_days", "followup_business_days"),
    ),
    lead=partner_lead_followup,
)


SHOWN_CONFLICTS = 5


def _single_owner(facts: LeadFacts | OpportunityFacts) -> Found:
    conflict = facts.company_conflict
    if conflict is None:
        return NO_VIOLATIONS
    conflicting = conflict.others(facts.record_type, facts.record_id)
    others = ", ".join(f"{t} {i}" for t, i in conflicting[:SHOWN_CONFLICTS])
    if len(conflicting) > SHOWN_CONFLICTS:
        others += f" and {len(conflicting) - SHOWN_CONFLICTS} more"
    if conflict.reason == "multiple_owners":
        text = f"owned by different people ({others})"
    else:
        text = f"worked both through a partner and directly ({others})"
    return [
        Violation(
            conflict.reason,
            f"The same company has other open leads or deals {text}; decide who owns the customer.",
            details={"others": [f"{t}:{i}" for t, i in conflicting[:SHOWN_CONFLICTS]]},
        )
    ]


def single_owner_lead(facts: LeadFacts, params: Params) -> Found:
    return _single_owner(facts)


def single_owner_opportunity(facts: OpportunityFacts, params: Params) -> Found:
    return _single_owner(facts)


LEAD_SINGLE_OWNER = rule(
    RuleSpec(
        id="tsos.lead-single-owner",
        org_settings=("closed_lead_statuses",),
        severity=Severity.WARN,
        record_types=("lead", "opportunity"),
        title="One owner per customer",
        doctrine=(
            "You need rules to govern who owns the lead … multiple reps working on a lead … "
            "or different leads in the same company."
        ),
        source="tip #28",
        semantics=(
            "Open leads and open deals for the same company (same account, or the same name "
            "ignoring case, punctuation and legal suffixes) owned by different people, or one "
            "worked through a partner and another directly."
        ),
        remediation="Decide who owns the customer and merge or reassign the records.",
        reasons={
            "multiple_owners": "different owners for the same company",
            "partner_and_direct": "worked both through a partner and directly",
        },
    ),
    lead=single_owner_lead,
    opportunity=single_owner_opportunity,
)
