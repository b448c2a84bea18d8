"""tsos.close-date-slipping (warn): a close date pushed later slip_count (3) times or more."""

from __future__ import annotations

from itertools import pairwise

import pytest

from tsos_rules.testing import at, change, closed_deal, day, deal, snapshot

pytestmark = pytest.mark.usefixtures("isolated_env")

RULE = "tsos.close-date-slipping"


def pushes(count, *, later=True, opportunity_id="o1"):
    out = []
    for i in range(count):
        old, new = day(10 + i), day(11 + i)
        if not later:
            old, new = new, old
        out.append(change(opportunity_id, old=old, new=new, changed_at=at(-20 + i)))
    return out


@pytest.fixture
def slip(found):
    def slip(history, deal_record=None, **kwargs):
        snap = snapshot(opportunities=[deal_record or deal()], close_date_changes=history)
        return found(snap, RULE, **kwargs)

    return slip


def test_two_pushes_are_not_yet_slipping(slip):
    assert slip(pushes(2)) == set()


def test_exactly_three_pushes_slip(only):
    finding = only(snapshot(opportunities=[deal()], close_date_changes=pushes(3)), RULE)
    assert (finding.reason, finding.severity.value) == ("pushed_repeatedly", "warn")
    assert finding.details == {"pushes": 3}
    assert "3 times" in finding.message


def test_more_pushes_still_one_finding(slip):
    assert slip(pushes(6)) == {("o1", "pushed_repeatedly", "warn")}


def test_pulling_the_date_in_is_not_a_push(slip):
    assert slip(pushes(2) + pushes(3, later=False)) == set()


def test_a_change_that_keeps_the_date_or_has_no_old_date_is_not_a_push(slip):
    history = [
        *pushes(2),
        change(old=day(30), new=day(30)),
        change(old=None, new=day(30)),
    ]
    assert slip(history) == set()


def test_approval_does_not_stop_slipping(slip):
    history = [dict(c, approved_by="vp") for c in pushes(3)]
    assert slip(history) == {("o1", "pushed_repeatedly", "warn")}


def test_closed_deals_are_exempt(slip):
    assert slip(pushes(5), closed_deal()) == set()


def test_pushes_of_other_deals_do_not_count(found):
    snap = snapshot(
        opportunities=[deal("o1"), deal("o2")],
        close_date_changes=pushes(2, opportunity_id="o1") + pushes(2, opportunity_id="o2"),
    )
    assert found(snap, RULE) == set()


def test_slip_count_is_configurable(slip):
    config = {"packs": {"tsos": {"slip_count": 2}}}
    assert slip(pushes(2), config=config) == {("o1", "pushed_repeatedly", "warn")}
    assert slip(pushes(1), config=config) == set()


def locked_moves(*dates):
    """Unapproved moves of a locked deal through ``dates`` (day offsets), a day apart."""
    return [
        change(old=day(old), new=day(new), stage="closing", changed_at=at(-20 + i))
        for i, (old, new) in enumerate(pairwise(dates))
    ]


def test_putting_back_a_pulled_in_date_is_not_a_push(slip):
    """An unapproved pull-in of a locked deal undone three times: the date never went past
    where it was, so the deal did not slip."""
    locked = deal(stage="closing", probability=80)
    assert slip(locked_moves(30, 20, 30, 20, 30, 20, 30), locked) == set()


def test_a_push_that_was_put_back_still_counts_as_a_push(slip):
    """The date was pushed (and undone): three attempted pushes slip the deal."""
    locked = deal(stage="closing", probability=80)
    assert slip(locked_moves(20, 30, 20, 30, 20, 30, 20), locked) == {
        ("o1", "pushed_repeatedly", "warn")
    }


def test_the_same_moves_on_a_deal_that_was_not_locked_are_pushes(slip):
    # Before the lock no move needs approval, so nothing is a restoration: every push counts.
    history = [dict(c, stage="engagement") for c in locked_moves(30, 20, 30, 20, 30, 20, 30)]
    assert slip(history) == {("o1", "pushed_repeatedly", "warn")}
