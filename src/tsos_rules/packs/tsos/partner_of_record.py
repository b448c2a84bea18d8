"""Every channel record names a live partner of record, and deals follow it.

Rules ``tsos.partner-of-record-required`` and ``tsos.partner-of-record-drift``.
"""

from __future__ import annotations

from tsos_rules.facts import AccountFacts, LeadFacts, OpportunityFacts
from tsos_rules.findings import Severity
from tsos_rules.packs.tsos._common import NO_VIOLATIONS, Found, Params, deal_name, rule
from tsos_rules.rules.spec import RuleSpec, Violation


def _por_violation(subject: str, partner_id: str | None, status: str | None) -> Violation | None:
    if not partner_id:
        return Violation("missing", f"{subject} has no partner of record; name the partner.")
    if status == "unknown":
        return Violation(
            "unknown_partner",
            f"{subject} names partner of record {partner_id}, which does not exist; "
            "correct the partner of record.",
        )
    if status == "terminated":
        return Violation(
            "terminated_partner",
            f"{subject} names partner of record {partner_id}, which is terminated; "
            "assign an active partner.",
        )
    return None


def por_opportunity(facts: OpportunityFacts, params: Params) -> Found:
    if not facts.is_channel_deal:
        return NO_VIOLATIONS
    partner_id = facts.opportunity.partner_id or facts.account_partner_of_record_id
    status = facts.index.partner_status(partner_id)
    violation = _por_violation(f"Channel deal {deal_name(facts)}", partner_id, status)
    return [violation] if violation else NO_VIOLATIONS


def _channel_lead_origin(facts: LeadFacts) -> str | None:
    """Why an unconverted lead is a channel lead (None when it is not one, or is converted)."""
    lead = facts.lead
    if lead.converted_opportunity_id:
        return None  # converted: history, its deal and account carry the partner of record
    if facts.is_distributed:
        return "distributed to a partner"
    if lead.source and lead.source in facts.index.org.partner_sources:
        return f"from partner source {lead.source}"
    if lead.partner_id:
        return "with a partner"
    return None


def por_lead(facts: LeadFacts, params: Params) -> Found:
    lead = facts.lead
    origin = _channel_lead_origin(facts)
    if origin is None:
        return NO_VIOLATIONS
    subject = f"Lead {lead.company or lead.id}, {origin},"
    violation = _por_violation(subject, lead.partner_id, facts.partner_status)
    return [violation] if violation else NO_VIOLATIONS


def por_account(facts: AccountFacts, params: Params) -> Found:
    if not facts.has_channel_deal:
        return NO_VIOLATIONS
    account = facts.account
    subject = f"Account {account.name or account.id}, which has channel deals,"
    violation = _por_violation(subject, account.partner_of_record_id, facts.partner_status)
    return [violation] if violation else NO_VIOLATIONS


PARTNER_OF_RECORD_REQUIRED = rule(
    RuleSpec(
        id="tsos.partner-of-record-required",
        org_settings=("partner_sources",),
        severity=Severity.BLOCK,
        record_types=("opportunity", "lead", "account"),
        title="One active partner of record",
        doctrine=(
            "Persistent Partner Ownership: every channel deal, open channel lead and channel "
            "account names exactly one partner of record."
        ),
        source='tip #28, "POR" and "Persistent Partner Ownership"',
        semantics=(
            "Every channel deal (open or closed), every unconverted channel lead and every "
            "account that has ever had a channel deal names a partner of record that exists "
            "and is active. A channel lead has a partner_id, a partner source "
            "(partner_sources) or a distributed_at; a converted lead is history and is not "
            "judged. A deal's partner of record is its partner, else its account's partner "
            "of record."
        ),
        remediation="Name the active partner of record on the record.",
        reasons={
            "missing": "no partner of record",
            "unknown_partner": "the partner of record does not exist",
            "terminated_partner": "the partner of record is terminated",
        },
    ),
    opportunity=por_opportunity,
    lead=por_lead,
    account=por_account,
)


def partner_of_record_drift(facts: OpportunityFacts, params: Params) -> Found:
    deal = facts.opportunity
    por = facts.account_partner_of_record_id
    if deal.partner_id and por and deal.partner_id != por and not deal.partner_override_reason:
        return [
            Violation(
                "partner_differs",
                f"Deal {deal_name(facts)} is with partner {deal.partner_id} but its account's "
                f"partner of record is {por}; route it back to {por} or record why it differs.",
                details={"partner_id": deal.partner_id, "partner_of_record_id": por},
            )
        ]
    return NO_VIOLATIONS


PARTNER_OF_RECORD_DRIFT = rule(
    RuleSpec(
        id="tsos.partner-of-record-drift",
        severity=Severity.WARN,
        record_types=("opportunity",),
        title="Deals route back to the account's partner of record",
        doctrine=(
            "Leads arriving through a partner's referral link must route back to the same partner."
        ),
        source='tip #28, "Persistent Partner Ownership"',
        semantics=(
            "A deal's partner differs from its account's partner of record and the deal "
            "records no reason (partner_override_reason)."
        ),
        remediation="Route the deal to the partner of record, or record why it differs.",
        reasons={"partner_differs": "deal partner is not the account's partner of record"},
    ),
    opportunity=partner_of_record_drift,
)
