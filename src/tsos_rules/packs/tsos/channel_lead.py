"""The channel lead stays a channel deal (tip #28, "Direct vs. Channel").

Rules ``tsos.channel-lead-not-direct`` and ``tsos.direct-rep-on-channel-deal``.
"""

from __future__ import annotations

from tsos_rules.facts import OpportunityFacts
from tsos_rules.findings import Severity
from tsos_rules.model import Channel, UserRole
from tsos_rules.packs.tsos._common import NO_VIOLATIONS, Found, Params, deal_name, rule, user_name
from tsos_rules.rules.spec import RuleSpec, Violation

CHANNEL_WHY = {
    "lead_partner": "its lead came through a partner",
    "lead_source": "its lead has a partner source",
    "account_partner_of_record": "its account has a partner of record",
    "channel_field": "it is marked as a partner deal",
}


def _channel_why(facts: OpportunityFacts) -> str:
    return " and ".join(CHANNEL_WHY[reason] for reason in facts.channel_reasons)


def channel_lead_not_direct(facts: OpportunityFacts, params: Params) -> Found:
    if not facts.is_open or not facts.is_channel_deal:
        return NO_VIOLATIONS
    found: list[Violation] = []
    deal = facts.opportunity
    why = _channel_why(facts)
    details = {"channel_reasons": list(facts.channel_reasons)}
    if not deal.partner_id:
        found.append(
            Violation(
                "no_partner",
                f"Deal {deal_name(facts)} is a channel deal ({why}) but has no partner attached; "
                "put the partner back on the deal.",
                details=details,
            )
        )
    if deal.channel is Channel.DIRECT:
        found.append(
            Violation(
                "marked_direct",
                f"Deal {deal_name(facts)} is a channel deal ({why}) but is marked direct; "
                "a channel lead is never taken direct.",
                details=details,
            )
        )
    if facts.owner_role is UserRole.DIRECT:
        consent = deal.partner_consent
        if consent is None or not consent.by or consent.at is None:
            # A consent that names nobody or no date is not a recorded consent (who, when, why).
            found.append(
                Violation(
                    "direct_owner",
                    f"Deal {deal_name(facts)} is a channel deal ({why}) owned by direct rep "
                    f"{user_name(facts.owner)}; engage the partner and record their consent, "
                    "or hand the deal back to the channel.",
                    details=details,
                )
            )
        else:
            reason = consent.reason.value if consent.reason else "unstated"
            found.append(
                Violation(
                    "direct_owner_with_consent",
                    f"Deal {deal_name(facts)} is a channel deal owned by direct rep "
                    f"{user_name(facts.owner)} with the partner's recorded consent "
                    f"(by {consent.by or 'unknown'}, reason {reason}); keep the partner in "
                    "the deal.",
                    severity=Severity.INFO,
                    details=details,
                )
            )
    return found


TIP28_NEVER = "When can you take a channel lead direct? NEVER."


CHANNEL_LEAD_NOT_DIRECT = rule(
    RuleSpec(
        id="tsos.channel-lead-not-direct",
        org_settings=("partner_sources",),
        severity=Severity.BLOCK,
        record_types=("opportunity",),
        title="Never take a channel lead direct",
        doctrine=TIP28_NEVER,
        source='tip #28, "Direct vs. Channel"',
        semantics=(
            "A channel deal (converted from a partner-distributed or partner-sourced lead, on "
            "an account with a partner of record, or with channel = partner) must keep its "
            "partner, must not be marked direct, and must not be owned by a direct rep "
            "without the partner's recorded consent. Consent turns the direct-owner case into "
            "info; it never removes the partner requirement. Open deals only."
        ),
        remediation="Engage the partner; record their consent; keep the partner on the deal.",
        reasons={
            "no_partner": "channel deal with no partner attached",
            "marked_direct": "channel deal marked channel = direct",
            "direct_owner": "owned by a direct rep with no recorded partner consent",
            "direct_owner_with_consent": "(info) owned by a direct rep with recorded consent",
        },
    ),
    opportunity=channel_lead_not_direct,
)


def direct_rep_on_channel_deal(facts: OpportunityFacts, params: Params) -> Found:
    if not facts.is_open or not facts.is_channel_deal:
        return NO_VIOLATIONS
    direct = sorted(uid for uid, role in facts.team_roles if role is UserRole.DIRECT)
    if direct:
        names = ", ".join(user_name(facts.index.users.get(uid)) for uid in direct)
        return [
            Violation(
                "direct_rep_on_team",
                f"Channel deal {deal_name(facts)} has direct rep(s) {names} on its deal team; "
                "involving a direct rep in a channel deal is not recommended.",
                details={"user_ids": direct},
            )
        ]
    return NO_VIOLATIONS


DIRECT_REP_ON_CHANNEL_DEAL = rule(
    RuleSpec(
        id="tsos.direct-rep-on-channel-deal",
        severity=Severity.WARN,
        record_types=("opportunity",),
        title="No direct reps on a channel deal's team",
        doctrine="Involving a Direct Rep in a channel deal is not recommended.",
        source='tip #28, "Direct vs. Channel"',
        semantics="An open channel deal whose deal team includes a user with role direct.",
        remediation="Take the direct rep off the deal team, or agree it with the partner.",
        reasons={"direct_rep_on_team": "a direct rep is on the deal team"},
    ),
    opportunity=direct_rep_on_channel_deal,
)
