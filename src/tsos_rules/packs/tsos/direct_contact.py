"""Direct contact with a partner's customer is shared with the partner.

Rule ``tsos.partner-told-of-direct-contact``.
"""

from __future__ import annotations

from tsos_rules.facts import ActivityFacts
from tsos_rules.findings import Severity
from tsos_rules.model import UserRole
from tsos_rules.packs.tsos._common import NO_VIOLATIONS, Found, Params, rule, user_name
from tsos_rules.rules.spec import RuleSpec, Violation


def partner_told_of_direct_contact(facts: ActivityFacts, params: Params) -> Found:
    activity = facts.activity
    if (
        activity.partner_notified
        or facts.owner_role in (None, UserRole.PARTNER)
        or not facts.account_partner_of_record_id  # unset, or an empty id
    ):
        return NO_VIOLATIONS
    days_ago = facts.days_ago
    if days_ago is None or not 0 <= days_ago <= params["direct_contact_days"]:
        return NO_VIOLATIONS
    account = facts.account
    return [
        Violation(
            "partner_not_notified",
            f"{user_name(facts.owner)} worked directly with "
            f"{account.name if account else 'the customer'} "
            f"({activity.subject or activity.id}) without telling partner "
            f"{facts.account_partner_of_record_id}; tell the partner and agree who responds.",
        )
    ]


PARTNER_TOLD_OF_DIRECT_CONTACT = rule(
    RuleSpec(
        id="tsos.partner-told-of-direct-contact",
        org_settings=("timezone",),
        severity=Severity.WARN,
        record_types=("activity",),
        title="Tell the partner when you work with their customer",
        doctrine=(
            "Whenever you happen to work with a customer directly, make sure you tell the "
            "partner about it and then discuss who should respond."
        ),
        source="tip #28",
        semantics=(
            "An activity by a vendor user (not a partner user) on an account with a partner of "
            "record, within the last direct_contact_days days, not marked partner_notified."
        ),
        remediation="Tell the partner about the contact and mark the activity as shared.",
        reasons={"partner_not_notified": "direct contact not shared with the partner"},
        parameters=("direct_contact_days",),
    ),
    activity=partner_told_of_direct_contact,
)
