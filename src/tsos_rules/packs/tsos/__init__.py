"""The built-in ``tsos`` pack: the doctrine of DOCTRINE.md, as Python rules.

Registered through ``tsos_rules_register_packs`` exactly as a third-party pack would be.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tsos_rules.facts import (
    AccountFacts,
    ActivityFacts,
    LeadFacts,
    OpportunityFacts,
    change_time,
)
from tsos_rules.findings import Severity
from tsos_rules.markers import hookimpl
from tsos_rules.model import Channel, ForecastCategory, LeadOutcome, UserRole
from tsos_rules.rules.spec import CheckFn, Parameter, PythonRule, RulePack, RuleSpec, Violation

PACK = "tsos"
Params = Mapping[str, Any]

PARAMETERS = (
    Parameter(
        "probability_tolerance",
        10,
        "Points a deal's probability may differ from its stage's default probability.",
    ),
    Parameter("slip_count", 3, "Pushes of the close date to a later date that make a deal slip."),
    Parameter(
        "acceptance_business_days",
        2,
        "Business days a partner has to accept a distributed lead.",
    ),
    Parameter(
        "followup_business_days",
        5,
        "Business days a partner has to follow up a distributed lead.",
    ),
    Parameter(
        "direct_contact_days",
        14,
        "Days back that direct contact with a partner's customer must be shared with it.",
    ),
    Parameter(
        "commit_min_probability",
        80,
        "Lowest default stage probability a commit deal may sit at.",
    ),
)


def _rule(spec: RuleSpec, **checks: Callable[[Any, Params], Iterator[Violation]]) -> PythonRule:
    typed: dict[str, CheckFn] = dict(checks)
    return PythonRule(spec=spec, checks=typed)


def _name(facts: OpportunityFacts) -> str:
    return facts.opportunity.name or facts.opportunity.id


# -- tsos.channel-lead-not-direct ---------------------------------------------------------

CHANNEL_WHY = {
    "lead_partner": "its lead came through a partner",
    "lead_source": "its lead has a partner source",
    "account_partner_of_record": "its account has a partner of record",
    "channel_field": "it is marked as a partner deal",
}


def _channel_why(facts: OpportunityFacts) -> str:
    return " and ".join(CHANNEL_WHY[reason] for reason in facts.channel_reasons)


def channel_lead_not_direct(facts: OpportunityFacts, params: Params) -> Iterator[Violation]:
    if not facts.is_open or not facts.is_channel_deal:
        return
    deal = facts.opportunity
    why = _channel_why(facts)
    details = {"channel_reasons": list(facts.channel_reasons)}
    if not deal.partner_id:
        yield Violation(
            "no_partner",
            f"Deal {_name(facts)} is a channel deal ({why}) but has no partner attached; "
            "put the partner back on the deal.",
            details=details,
        )
    if deal.channel is Channel.DIRECT:
        yield Violation(
            "marked_direct",
            f"Deal {_name(facts)} is a channel deal ({why}) but is marked direct; "
            "a channel lead is never taken direct.",
            details=details,
        )
    if facts.owner_role is UserRole.DIRECT:
        consent = deal.partner_consent
        if consent is None or not consent.by or consent.at is None:
            # A consent that names nobody or no date is not a recorded consent (who, when, why).
            yield Violation(
                "direct_owner",
                f"Deal {_name(facts)} is a channel deal ({why}) owned by direct rep "
                f"{_user(facts.owner)}; engage the partner and record their consent, "
                "or hand the deal back to the channel.",
                details=details,
            )
        else:
            reason = consent.reason.value if consent.reason else "unstated"
            yield Violation(
                "direct_owner_with_consent",
                f"Deal {_name(facts)} is a channel deal owned by direct rep "
                f"{_user(facts.owner)} with the partner's recorded consent "
                f"(by {consent.by or 'unknown'}, reason {reason}); keep the partner in the deal.",
                severity=Severity.INFO,
                details=details,
            )


def _user(user: Any) -> str:
    if user is None:
        return "unknown user"
    return str(user.name or user.id)


def direct_rep_on_channel_deal(facts: OpportunityFacts, params: Params) -> Iterator[Violation]:
    if not facts.is_open or not facts.is_channel_deal:
        return
    direct = sorted(uid for uid, role in facts.team_roles if role is UserRole.DIRECT)
    if direct:
        names = ", ".join(_user(facts.index.users.get(uid)) for uid in direct)
        yield Violation(
            "direct_rep_on_team",
            f"Channel deal {_name(facts)} has direct rep(s) {names} on its deal team; "
            "involving a direct rep in a channel deal is not recommended.",
            details={"user_ids": direct},
        )


# -- tsos.partner-of-record-required -------------------------------------------------------


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


def por_opportunity(facts: OpportunityFacts, params: Params) -> Iterator[Violation]:
    if not facts.is_channel_deal:
        return
    partner_id = facts.opportunity.partner_id or facts.account_partner_of_record_id
    status = facts.index.partner_status(partner_id)
    violation = _por_violation(f"Channel deal {_name(facts)}", partner_id, status)
    if violation:
        yield violation


def por_lead(facts: LeadFacts, params: Params) -> Iterator[Violation]:
    lead = facts.lead
    if not facts.is_distributed:
        return
    subject = f"Lead {lead.company or lead.id}, distributed to a partner,"
    violation = _por_violation(subject, lead.partner_id, facts.partner_status)
    if violation:
        yield violation


def por_account(facts: AccountFacts, params: Params) -> Iterator[Violation]:
    if not facts.has_channel_deal:
        return
    account = facts.account
    subject = f"Account {account.name or account.id}, which has channel deals,"
    violation = _por_violation(subject, account.partner_of_record_id, facts.partner_status)
    if violation:
        yield violation


def partner_of_record_drift(facts: OpportunityFacts, params: Params) -> Iterator[Violation]:
    deal = facts.opportunity
    por = facts.account_partner_of_record_id
    if deal.partner_id and por and deal.partner_id != por and not deal.partner_override_reason:
        yield Violation(
            "partner_differs",
            f"Deal {_name(facts)} is with partner {deal.partner_id} but its account's partner of "
            f"record is {por}; route it back to {por} or record why it differs.",
            details={"partner_id": deal.partner_id, "partner_of_record_id": por},
        )


# -- tsos.next-step-required -----------------------------------------------------------------

NEXT_STEP_MESSAGES = {
    "placeholder": "Next step {text!r} is a placeholder, not a commitment; "
    "propose a real next step with a date and get the buyer to agree.",
    "missing": "Deal {name} has no next step with a date; "
    "propose and seek commitment to a next step.",
    "past_due": "Next step date {date} is past; agree a new next step with the buyer.",
}


def next_step_required(facts: OpportunityFacts, params: Params) -> Iterator[Violation]:
    if not facts.is_open or facts.next_step_valid:
        return
    deal = facts.opportunity
    state = facts.next_step_state
    yield Violation(
        state,
        NEXT_STEP_MESSAGES[state].format(
            text=deal.next_step, name=_name(facts), date=deal.next_step_date
        ),
    )


# -- tsos.close-date-locked and tsos.close-date-slipping --------------------------------------


def close_date_locked(facts: OpportunityFacts, params: Params) -> Iterator[Violation]:
    if not facts.is_open:
        return
    deal = facts.opportunity
    if deal.close_date is None:
        yield Violation(
            "missing", f"Deal {_name(facts)} has no close date; lock one down with the buyer."
        )
    elif deal.close_date < facts.as_of:
        yield Violation(
            "in_past",
            f"Close date {deal.close_date} of deal {_name(facts)} is past; "
            "agree the real date with the buyer.",
        )
    # An undone move is cured; the change that undid it (a restoration) is a repair, not a move.
    unapproved = [
        m
        for m in facts.moves
        if m.locked and not m.approved and not m.reverted and not m.restoration
    ]
    if unapproved:
        last = max(unapproved, key=lambda m: change_time(m.change))
        count = len(unapproved)
        moves = "once" if count == 1 else f"{count} unapproved moves"
        yield Violation(
            "moved_unapproved",
            f"Close date of locked deal {_name(facts)} was moved from {last.change.old} to "
            f"{last.change.new} without approval ({moves}); get the move approved or restore "
            f"{last.change.old}.",
            details={
                "restore_to": last.change.old.isoformat() if last.change.old else None,
                "moved_to": last.change.new.isoformat() if last.change.new else None,
                "unapproved_moves": count,
            },
        )


def close_date_slipping(facts: OpportunityFacts, params: Params) -> Iterator[Violation]:
    if not facts.is_open:
        return
    pushes = facts.close_date_pushes
    if pushes >= params["slip_count"]:
        yield Violation(
            "pushed_repeatedly",
            f"Close date of deal {_name(facts)} has been pushed later {pushes} times; "
            "requalify the deal and the date with the buyer.",
            details={"pushes": pushes},
        )


# -- tsos.commit-integrity ---------------------------------------------------------------


def commit_integrity(facts: OpportunityFacts, params: Params) -> Iterator[Violation]:
    deal = facts.opportunity
    if not facts.is_open or deal.forecast_category is not ForecastCategory.COMMIT:
        return
    quarter_end = facts.fiscal_quarter_end
    if deal.close_date is None or deal.close_date < facts.as_of:
        yield Violation(
            "close_date_invalid",
            f"Commit deal {_name(facts)} has no close date on or after today; "
            "a commit needs a real date this quarter.",
        )
    elif deal.close_date > quarter_end:
        yield Violation(
            "beyond_quarter",
            f"Commit deal {_name(facts)} closes {deal.close_date}, after the quarter ends "
            f"{quarter_end}; move it out of commit or pull the date in.",
            details={"quarter_end": quarter_end.isoformat()},
        )
    if not facts.next_step_valid:
        yield Violation(
            "no_next_step",
            f"Commit deal {_name(facts)} has no valid next step; "
            "do not miss your commit: agree the next step now.",
        )
    minimum = params["commit_min_probability"]
    if facts.stage_probability is None or facts.stage_probability < minimum:
        yield Violation(
            "stage_too_early",
            f"Commit deal {_name(facts)} is at stage {deal.stage!r}, whose probability is "
            f"below {minimum} %; a commit belongs at closing or later.",
        )


# -- tsos.stage-probability-consistent -------------------------------------------------------


def stage_probability_consistent(facts: OpportunityFacts, params: Params) -> Iterator[Violation]:
    deal = facts.opportunity
    if not facts.stage_known:
        yield Violation(
            "unknown_stage",
            f"Deal {_name(facts)} is at stage {deal.stage!r}, which is not on the stage ladder; "
            "use a ladder stage or add it to org.stage_ladder.",
        )
        return
    default = facts.stage_probability
    tolerance = params["probability_tolerance"]
    if (
        deal.probability is not None
        and default is not None
        and abs(deal.probability - default) > tolerance
    ):
        yield Violation(
            "probability_mismatch",
            f"Deal {_name(facts)} is at {deal.probability:g} % but its stage {deal.stage!r} "
            f"stands at {default} %; align the probability with the stage.",
            details={"expected": default, "actual": deal.probability},
        )


# -- leads ----------------------------------------------------------------------------------


def lead_outcome_recorded(facts: LeadFacts, params: Params) -> Iterator[Violation]:
    lead = facts.lead
    org = facts.index.org
    if lead.status in org.qualified_lead_statuses and lead.outcome is None:
        yield Violation(
            "no_outcome",
            f"Lead {lead.company or lead.id} is {lead.status} with no outcome; record it as a "
            "current prospect, a future prospect or no opportunity.",
        )


KEPT_OUTCOMES = (LeadOutcome.FUTURE, LeadOutcome.NO_OPPORTUNITY)


def partner_lead_followup(facts: LeadFacts, params: Params) -> Iterator[Violation]:
    lead = facts.lead
    if not facts.is_distributed or not lead.partner_id or not facts.is_open:
        return
    elapsed = facts.business_days_since_distribution or 0
    accept_window = params["acceptance_business_days"]
    followup_window = params["followup_business_days"]
    to_accept = facts.business_days_to_accept
    if (to_accept is None and elapsed > accept_window) or (
        to_accept is not None and to_accept > accept_window
    ):
        yield Violation(
            "not_accepted",
            f"Lead {lead.company or lead.id} was distributed to partner {lead.partner_id} and not "
            f"accepted within {accept_window} business days; confirm the partner has the lead.",
        )
    to_follow = facts.business_days_to_follow_up
    if (to_follow is None and elapsed > followup_window) or (
        to_follow is not None and to_follow > followup_window
    ):
        yield Violation(
            "no_followup",
            f"Lead {lead.company or lead.id} was not followed up by partner {lead.partner_id} "
            f"within {followup_window} business days; get confirmation they followed up.",
        )


SHOWN_CONFLICTS = 5


def _single_owner(facts: LeadFacts | OpportunityFacts) -> Iterator[Violation]:
    conflict = facts.company_conflict
    if conflict is None:
        return
    conflicting = conflict.others(facts.record_type, facts.record_id)
    others = ", ".join(f"{t} {i}" for t, i in conflicting[:SHOWN_CONFLICTS])
    if len(conflicting) > SHOWN_CONFLICTS:
        others += f" and {len(conflicting) - SHOWN_CONFLICTS} more"
    if conflict.reason == "multiple_owners":
        text = f"owned by different people ({others})"
    else:
        text = f"worked both through a partner and directly ({others})"
    yield Violation(
        conflict.reason,
        f"The same company has other open leads or deals {text}; decide who owns the customer.",
        details={"others": [f"{t}:{i}" for t, i in conflicting[:SHOWN_CONFLICTS]]},
    )


def single_owner_lead(facts: LeadFacts, params: Params) -> Iterator[Violation]:
    yield from _single_owner(facts)


def single_owner_opportunity(facts: OpportunityFacts, params: Params) -> Iterator[Violation]:
    yield from _single_owner(facts)


def partner_told_of_direct_contact(facts: ActivityFacts, params: Params) -> Iterator[Violation]:
    activity = facts.activity
    if (
        activity.partner_notified
        or facts.owner_role in (None, UserRole.PARTNER)
        or not facts.account_partner_of_record_id  # unset, or an empty id
    ):
        return
    days_ago = facts.days_ago
    if days_ago is None or not 0 <= days_ago <= params["direct_contact_days"]:
        return
    account = facts.account
    yield Violation(
        "partner_not_notified",
        f"{_user(facts.owner)} worked directly with {account.name if account else 'the customer'} "
        f"({activity.subject or activity.id}) without telling partner "
        f"{facts.account_partner_of_record_id}; tell the partner and agree who responds.",
    )


# -- metadata -----------------------------------------------------------------------------

TIP28_NEVER = "When can you take a channel lead direct? NEVER."

RULES = (
    _rule(
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
    ),
    _rule(
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
    ),
    _rule(
        RuleSpec(
            id="tsos.partner-of-record-required",
            org_settings=("partner_sources",),
            severity=Severity.BLOCK,
            record_types=("opportunity", "lead", "account"),
            title="One active partner of record",
            doctrine=(
                "Persistent Partner Ownership: every channel deal, distributed lead and channel "
                "account names exactly one partner of record."
            ),
            source='tip #28, "POR" and "Persistent Partner Ownership"',
            semantics=(
                "Every channel deal (open or closed), every lead distributed to a partner and "
                "every account that has ever had a channel deal names a partner of record that "
                "exists and is active. A deal's partner of record is its partner, else its "
                "account's partner of record."
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
    ),
    _rule(
        RuleSpec(
            id="tsos.partner-of-record-drift",
            severity=Severity.WARN,
            record_types=("opportunity",),
            title="Deals route back to the account's partner of record",
            doctrine=(
                "Leads arriving through a partner's referral link must route back to the same "
                "partner."
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
    ),
    _rule(
        RuleSpec(
            id="tsos.next-step-required",
            org_settings=("placeholders", "timezone"),
            severity=Severity.BLOCK,
            record_types=("opportunity",),
            title="No deal without a next step",
            doctrine="Most important: propose and seek commitment to a next step.",
            source=(
                'tip #2; tip #1 ("What\'s a next step?"); tip #4 ("What will be the next step?")'
            ),
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
    ),
    _rule(
        RuleSpec(
            id="tsos.close-date-locked",
            org_settings=("lock_stage", "stage_ladder", "timezone"),
            severity=Severity.BLOCK,
            record_types=("opportunity",),
            title="Lock down the close date",
            doctrine=(
                "Lock down date. The expected close date is critical to know how good is your "
                "pipeline."
            ),
            source="tip #4 (consultative dialogue); tip #2",
            semantics=(
                "An open deal has a close date that is not past. Once a deal is locked (stage at "
                "or beyond org.lock_stage, or forecast category commit, judged at the time of each "
                "change from the stage and forecast category recorded on it) every close-date "
                "move needs approved_by. A move later undone (the date put back) is cured, and "
                "the undo itself (a restoration) is not a move. In enforce mode the previous date "
                "is restored."
            ),
            remediation="Get the move approved, or restore the previous close date.",
            reasons={
                "missing": "no close date",
                "in_past": "the close date is before today",
                "moved_unapproved": "a locked deal's close date moved without approval",
            },
        ),
        opportunity=close_date_locked,
    ),
    _rule(
        RuleSpec(
            id="tsos.close-date-slipping",
            severity=Severity.WARN,
            record_types=("opportunity",),
            title="A deal whose close date keeps slipping",
            doctrine="DO NOT MISS YOUR COMMIT ever.",
            source="tip #2",
            semantics=(
                "An open deal whose close date was pushed later slip_count or more times. "
                "Putting the date back after an unapproved move of a locked deal (a restoration) "
                "is not a push."
            ),
            remediation="Requalify the deal: what has to happen, by when, and who decides?",
            reasons={"pushed_repeatedly": "the close date was pushed later too many times"},
            parameters=("slip_count",),
        ),
        opportunity=close_date_slipping,
    ),
    _rule(
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
    ),
    _rule(
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
    ),
    _rule(
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
    ),
    _rule(
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
    ),
    _rule(
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
    ),
    _rule(
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
    ),
)

TSOS_PACK = RulePack(
    name=PACK,
    version="1.0",
    description="The channel-sales doctrine of The Story of Selling (DOCTRINE.md).",
    parameters=PARAMETERS,
    python_rules=RULES,
)


@hookimpl
def tsos_rules_register_packs(register: Callable[[RulePack], None]) -> None:
    """Register the built-in doctrine pack."""
    register(TSOS_PACK)
