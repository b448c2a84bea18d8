"""tsos.close-date-locked (block): a close date, not in the past, moved only with approval once
the deal is locked (stage at or beyond the lock stage, or forecast commit), judged at the time of
each change."""

from __future__ import annotations

from itertools import pairwise

import pytest

from tsos_rules.testing import at, change, closed_deal, day, deal, snapshot

pytestmark = pytest.mark.usefixtures("isolated_env")

RULE = "tsos.close-date-locked"


@pytest.fixture
def cdl(reasons):
    def cdl(deals, changes=(), **kwargs):
        if isinstance(deals, dict):
            deals = [deals]
        return reasons(snapshot(opportunities=deals, close_date_changes=changes), RULE, **kwargs)

    return cdl


# -- the close date itself ---------------------------------------------------------------


def test_a_future_close_date_passes(cdl):
    assert cdl(deal(close_date=day(30))) == set()


def test_a_close_date_of_today_is_not_in_the_past(cdl):
    assert cdl(deal(close_date=day(0))) == set()


def test_no_close_date_is_missing(cdl):
    assert cdl(deal(close_date=None)) == {"missing"}


def test_a_close_date_key_left_out_is_missing(cdl):
    record = deal()
    del record["close_date"]
    assert cdl(record) == {"missing"}


def test_a_close_date_before_today_is_in_the_past(only):
    finding = only(snapshot(opportunities=[deal(close_date=day(-1))]), RULE)
    assert (finding.reason, finding.severity.value) == ("in_past", "block")
    assert day(-1) in finding.message


def test_closed_deals_are_exempt(cdl):
    assert cdl(closed_deal(close_date=day(-300)), [change(stage="closing")]) == set()
    assert cdl(closed_deal(close_date=None)) == set()


# -- moves of a locked deal --------------------------------------------------------------


@pytest.mark.parametrize("stage", ["date_locked", "draft_proposal", "trial_close", "closing"])
def test_an_unapproved_move_at_or_beyond_the_lock_stage_is_a_violation(stage, only):
    snap = snapshot(
        opportunities=[deal(stage=stage, probability=None)],
        close_date_changes=[change(old=day(10), new=day(30), stage=stage)],
    )
    finding = only(snap, RULE)
    assert (finding.reason, finding.severity.value) == ("moved_unapproved", "block")
    assert finding.details["restore_to"] == day(10)
    assert finding.details["moved_to"] == day(30)
    assert day(10) in finding.message


@pytest.mark.parametrize("stage", ["mql", "sql", "engagement", "single_sales_opportunity"])
def test_moves_before_the_lock_stage_need_no_approval(stage, cdl):
    assert cdl(deal(stage=stage), [change(stage=stage, forecast_category="pipeline")]) == set()


def test_an_approved_move_of_a_locked_deal_is_fine(cdl):
    moved = change(stage="closing", forecast_category="commit", approved_by="vp-sales")
    assert cdl(deal(stage="closing", probability=80), [moved]) == set()


def test_pulling_the_date_in_is_a_move_too(cdl):
    pulled_in = change(old=day(40), new=day(20), stage="trial_close")
    assert cdl(deal(stage="trial_close", probability=65), [pulled_in]) == {"moved_unapproved"}


def test_forecast_commit_locks_a_deal_at_an_early_stage(cdl):
    moved = change(stage="engagement", forecast_category="commit")
    assert cdl(deal(stage="engagement"), [moved]) == {"moved_unapproved"}


def test_a_change_made_before_the_deal_was_locked_is_fine_though_it_is_locked_now(cdl):
    locked_now = deal(stage="closing", probability=80, forecast_category="commit")
    early = change(stage="engagement", forecast_category="pipeline", changed_at=at(-60))
    assert cdl(locked_now, [early]) == set()


def test_a_change_recorded_without_stage_or_forecast_is_judged_on_current_values(cdl):
    unrecorded = change(stage=None, forecast_category=None)
    assert cdl(deal(stage="trial_close", probability=65), [unrecorded]) == {"moved_unapproved"}
    assert cdl(deal(stage="engagement"), [unrecorded]) == set()
    assert cdl(deal(stage="engagement", forecast_category="commit"), [unrecorded]) == {
        "moved_unapproved"
    }


def test_only_the_locked_unapproved_moves_count_and_they_make_one_finding(only):
    history = [
        change(old=day(5), new=day(10), stage="engagement", changed_at=at(-30)),
        change(old=day(10), new=day(20), stage="closing", changed_at=at(-20)),
        change(old=day(20), new=day(25), stage="closing", changed_at=at(-10), approved_by="vp"),
        change(old=day(25), new=day(30), stage="closing", changed_at=at(-5)),
    ]
    snap = snapshot(
        opportunities=[deal(stage="closing", probability=80)], close_date_changes=history
    )
    finding = only(snap, RULE)
    assert finding.details["unapproved_moves"] == 2
    assert finding.details["restore_to"] == day(25)  # the latest unapproved move is undone


def test_a_change_that_does_not_move_the_date_is_not_a_move(cdl):
    same = change(old=day(30), new=day(30), stage="closing")
    assert cdl(deal(stage="closing", probability=80), [same]) == set()


def test_a_move_is_reported_alongside_a_past_close_date(cdl):
    history = [change(old=day(-20), new=day(-2), stage="closing")]
    assert cdl(deal(stage="closing", probability=80, close_date=day(-2)), history) == {
        "in_past",
        "moved_unapproved",
    }


def test_changes_of_another_deal_do_not_count(findings):
    snap = snapshot(
        opportunities=[deal("o1", stage="closing", probability=80), deal("o2")],
        close_date_changes=[change("o1", stage="closing")],
    )
    assert {(f.record_id, f.reason) for f in findings(snap) if f.rule == RULE} == {
        ("o1", "moved_unapproved")
    }


def test_the_lock_stage_is_configurable(cdl):
    at_trial_close = change(stage="trial_close", forecast_category="best_case")
    late = {"org": {"lock_stage": "closing"}}
    early = {"org": {"lock_stage": "engagement"}}
    assert cdl(deal(stage="trial_close", probability=65), [at_trial_close]) == {"moved_unapproved"}
    assert cdl(deal(stage="trial_close", probability=65), [at_trial_close], config=late) == set()
    at_engagement = change(stage="engagement", forecast_category="pipeline")
    assert cdl(deal(), [at_engagement], config=early) == {"moved_unapproved"}


def test_a_move_that_was_put_back_is_cured(reasons) -> None:
    """After an enforce repair (or the rep) restores the date, the finding resolves."""
    locked = deal(id="o1", stage="closing", close_date="2026-12-15")
    moved = change(
        "o1",
        old="2026-12-15",
        new="2027-01-31",
        changed_at="2026-11-20T10:00:00+00:00",
        stage="closing",
    )
    restored = change(
        "o1",
        old="2027-01-31",
        new="2026-12-15",
        changed_at="2026-11-21T10:00:00+00:00",
        stage="closing",
        approved_by="tsos-rules",
    )
    assert reasons(snapshot(opportunities=[locked], close_date_changes=[moved]), RULE) == {
        "moved_unapproved"
    }
    assert "moved_unapproved" not in reasons(
        snapshot(opportunities=[locked], close_date_changes=[moved, restored]), RULE
    )


def test_two_changes_without_times_do_not_break_the_ordering(reasons) -> None:
    locked = deal(id="o1", stage="closing", close_date="2026-12-15")
    first = change("o1", old="2026-12-01", new="2026-12-10", changed_at=None, stage="closing")
    second = change("o1", old="2026-12-10", new="2026-12-15", changed_at=None, stage="closing")
    found = reasons(snapshot(opportunities=[locked], close_date_changes=[first, second]), RULE)
    assert "moved_unapproved" in found


# -- undoing an unapproved move ----------------------------------------------------------


def locked_history(*dates, approved=()):
    """Unapproved moves of a locked deal through ``dates`` (day offsets), a day apart.

    ``approved`` lists the indexes of the moves that carry an approval.
    """
    return [
        change(
            old=day(old),
            new=day(new),
            stage="closing",
            changed_at=at(-20 + i),
            approved_by="vp-sales" if i in approved else None,
        )
        for i, (old, new) in enumerate(pairwise(dates))
    ]


@pytest.fixture
def locked_findings(findings):
    def locked_findings(history):
        snap = snapshot(
            opportunities=[deal(stage="closing", probability=80, close_date=day(history[-1]))],
            close_date_changes=locked_history(*history),
        )
        return [f for f in findings(snap) if f.rule == RULE]

    return locked_findings


def test_putting_the_date_back_without_approval_is_no_new_move(locked_findings):
    """A→B→A, both unapproved: the undo is a restoration, not a move to report (or to
    restore from: restoring B would bring the unapproved date back)."""
    assert locked_findings([10, 30, 10]) == []


def test_an_undo_that_pushes_the_date_later_is_no_new_move(locked_findings):
    # An unapproved pull-in, then the date put back later where it was.
    assert locked_findings([30, 10, 30]) == []


def test_two_unapproved_moves_in_a_row_are_both_reported_and_the_last_one_is_undone_first(
    locked_findings,
):
    (finding,) = locked_findings([10, 20, 30])
    assert finding.reason == "moved_unapproved"
    assert finding.details == {"restore_to": day(20), "moved_to": day(30), "unapproved_moves": 2}
    assert f"restore {day(20)}" in finding.message


def test_moving_the_date_again_after_putting_it_back_is_a_new_unapproved_move(locked_findings):
    """A→B→A→B: the third change undoes the restoration, not a bad move: it is a real move."""
    (finding,) = locked_findings([10, 30, 10, 30])
    assert finding.reason == "moved_unapproved"
    assert finding.details == {"restore_to": day(10), "moved_to": day(30), "unapproved_moves": 1}
    assert f"moved from {day(10)} to {day(30)} without approval (once)" in finding.message


def test_putting_the_date_back_past_several_unapproved_moves_cures_them_all(locked_findings):
    """A→B→C→A: the date is back where it was before any unapproved move."""
    assert locked_findings([10, 20, 30, 10]) == []


def test_redoing_a_move_cured_by_an_earlier_restoration_is_a_new_unapproved_move(
    locked_findings,
):
    """A→B→C→A→B: C→A cured A→B and B→C; moving to B again is not a restoration of B→C."""
    (finding,) = locked_findings([10, 20, 30, 10, 20])
    assert finding.details == {"restore_to": day(10), "moved_to": day(20), "unapproved_moves": 1}


def test_a_cured_move_is_no_longer_a_restoration_target(findings):
    """A→B (unapproved), B→A (restoration), A→D (approved), D→A (unapproved): A→B was already
    cured, so D→A is a new unapproved move, not a second undo of A→B."""
    history = locked_history(10, 20, 10, 40, 10, approved=(2,))
    snap = snapshot(
        opportunities=[deal(stage="closing", probability=80, close_date=day(10))],
        close_date_changes=history,
    )
    (finding,) = [f for f in findings(snap) if f.rule == RULE]
    assert finding.details == {"restore_to": day(40), "moved_to": day(10), "unapproved_moves": 1}


def test_putting_the_date_back_one_step_leaves_the_earlier_move_to_cure(locked_findings):
    """A→B→C→B: C→B undoes B→C only; A→B still needs approval or restoring A."""
    (finding,) = locked_findings([10, 20, 30, 20])
    assert finding.details == {"restore_to": day(10), "moved_to": day(20), "unapproved_moves": 1}


def test_undoing_an_approved_move_is_a_move_that_needs_approval(only):
    snap = snapshot(
        opportunities=[deal(stage="closing", probability=80, close_date=day(10))],
        close_date_changes=locked_history(10, 30, 10, approved=(0,)),
    )
    finding = only(snap, RULE)
    assert finding.details == {"restore_to": day(30), "moved_to": day(10), "unapproved_moves": 1}


def test_undoing_a_move_made_before_the_lock_is_a_move_that_needs_approval(only):
    early = change(old=day(10), new=day(30), stage="engagement", changed_at=at(-20))
    back = change(old=day(30), new=day(10), stage="closing", changed_at=at(-10))
    snap = snapshot(
        opportunities=[deal(stage="closing", probability=80, close_date=day(10))],
        close_date_changes=[early, back],
    )
    assert only(snap, RULE).details["restore_to"] == day(30)
