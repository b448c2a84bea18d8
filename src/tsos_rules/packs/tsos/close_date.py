"""A close date is locked down with the buyer and does not keep slipping.

Rules ``tsos.close-date-locked`` and ``tsos.close-date-slipping``.
"""

from __future__ import annotations

from tsos_rules.facts import OpportunityFacts, change_time
from tsos_rules.findings import Severity
from tsos_rules.packs.tsos._common import NO_VIOLATIONS, Found, Params, deal_name, rule
from tsos_rules.rules.spec import RuleSpec, Violation


def close_date_locked(facts: OpportunityFacts, params: Params) -> Found:
    if not facts.is_open:
        return NO_VIOLATIONS
    found: list[Violation] = []
    deal = facts.opportunity
    if deal.close_date is None:
        found.append(
            Violation(
                "missing",
                f"Deal {deal_name(facts)} has no close date; lock one down with the buyer.",
            )
        )
    elif deal.close_date < facts.as_of:
        found.append(
            Violation(
                "in_past",
                f"Close date {deal.close_date} of deal {deal_name(facts)} is past; "
                "agree the real date with the buyer.",
            )
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
        found.append(
            Violation(
                "moved_unapproved",
                f"Close date of locked deal {deal_name(facts)} was moved from {last.change.old} "
                f"to {last.change.new} without approval ({moves}); get the move approved or "
                f"restore {last.change.old}.",
                details={
                    "restore_to": last.change.old.isoformat() if last.change.old else None,
                    "moved_to": last.change.new.isoformat() if last.change.new else None,
                    "unapproved_moves": count,
                },
            )
        )
    return found


CLOSE_DATE_LOCKED = rule(
    RuleSpec(
        id="tsos.close-date-locked",
        org_settings=("lock_stage", "stage_ladder", "timezone"),
        severity=Severity.BLOCK,
        record_types=("opportunity",),
        title="Lock down the close date",
        doctrine=(
            "Lock down date. The expected close date is critical to know how good is your pipeline."
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
)


def close_date_slipping(facts: OpportunityFacts, params: Params) -> Found:
    if not facts.is_open:
        return NO_VIOLATIONS
    pushes = facts.close_date_pushes
    if pushes >= params["slip_count"]:
        return [
            Violation(
                "pushed_repeatedly",
                f"Close date of deal {deal_name(facts)} has been pushed later {pushes} times; "
                "requalify the deal and the date with the buyer.",
                details={"pushes": pushes},
            )
        ]
    return NO_VIOLATIONS


CLOSE_DATE_SLIPPING = rule(
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
)
