"""tsos.commit-integrity (block): a commit closes this fiscal quarter, on or after today, with
a valid next step, at a stage whose default probability is at least 80 %."""

from __future__ import annotations

import pytest

from tsos_rules.testing import activity, closed_deal, day, deal, snapshot

pytestmark = pytest.mark.usefixtures("isolated_env")

RULE = "tsos.commit-integrity"


def commit(**overrides):
    values = {
        "stage": "closing",
        "probability": 80,
        "forecast_category": "commit",
        "close_date": day(20),  # 2026-12-14, inside Q4 of a calendar fiscal year
    }
    values.update(overrides)
    return deal(**values)


@pytest.fixture
def ci(reasons):
    def ci(deal_record, activities=(), **kwargs):
        snap = snapshot(opportunities=[deal_record], activities=activities)
        return reasons(snap, RULE, **kwargs)

    return ci


def test_a_sound_commit_passes(ci):
    assert ci(commit()) == set()


@pytest.mark.parametrize("category", ["pipeline", "best_case", "omitted", None])
def test_only_commit_deals_are_judged(category, ci):
    assert ci(commit(forecast_category=category, stage="engagement", close_date=day(200))) == set()


def test_closed_deals_are_exempt(ci):
    assert ci(closed_deal(forecast_category="commit", close_date=day(-40))) == set()


# -- the close date ------------------------------------------------------------------------


def test_no_close_date(ci):
    assert ci(commit(close_date=None)) == {"close_date_invalid"}


def test_a_close_date_before_today(only):
    finding = only(snapshot(opportunities=[commit(close_date=day(-1))]), RULE)
    assert (finding.reason, finding.severity.value) == ("close_date_invalid", "block")


def test_closing_today_is_fine(ci):
    assert ci(commit(close_date=day(0))) == set()


def test_closing_on_the_last_day_of_the_quarter_is_fine(ci):
    assert ci(commit(close_date="2026-12-31")) == set()


def test_closing_the_day_after_the_quarter_ends_is_beyond_the_quarter(only):
    finding = only(snapshot(opportunities=[commit(close_date="2027-01-01")]), RULE)
    assert finding.reason == "beyond_quarter"
    assert finding.details == {"quarter_end": "2026-12-31"}


@pytest.mark.parametrize(
    ("as_of", "last_ok", "first_beyond"),
    [
        ("2026-01-01", "2026-03-31", "2026-04-01"),
        ("2026-03-31", "2026-03-31", "2026-04-01"),
        ("2026-04-01", "2026-06-30", "2026-07-01"),
        ("2026-09-30", "2026-09-30", "2026-10-01"),
    ],
)
def test_calendar_quarter_boundaries(as_of, last_ok, first_beyond, ci):
    assert ci(commit(close_date=last_ok, next_step_date=as_of), as_of=as_of) == set()
    beyond = commit(close_date=first_beyond, next_step_date=as_of)
    assert ci(beyond, as_of=as_of) == {"beyond_quarter"}


@pytest.mark.parametrize(
    ("as_of", "last_ok", "first_beyond"),
    [
        # Fiscal year from February: quarters Feb-Apr, May-Jul, Aug-Oct, Nov-Jan.
        ("2026-02-01", "2026-04-30", "2026-05-01"),
        ("2026-04-30", "2026-04-30", "2026-05-01"),
        ("2026-05-01", "2026-07-31", "2026-08-01"),
        ("2026-11-24", "2027-01-31", "2027-02-01"),
        ("2027-01-31", "2027-01-31", "2027-02-01"),
    ],
)
def test_quarter_boundaries_with_a_february_fiscal_year(as_of, last_ok, first_beyond, ci):
    config = {"org": {"fiscal_year_start_month": 2}}
    inside = commit(close_date=last_ok, next_step_date=as_of)
    beyond = commit(close_date=first_beyond, next_step_date=as_of)
    assert ci(inside, as_of=as_of, config=config) == set()
    assert ci(beyond, as_of=as_of, config=config) == {"beyond_quarter"}


def test_a_february_fiscal_year_moves_the_quarter_end(ci):
    # 2026-01-20 is in calendar Q1 but in the Nov-Jan quarter of a February fiscal year.
    in_february = commit(close_date="2026-02-10")
    assert ci(in_february, as_of="2026-01-20") == set()
    assert ci(in_february, as_of="2026-01-20", config={"org": {"fiscal_year_start_month": 2}}) == {
        "beyond_quarter"
    }


# -- the next step -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "broken",
    [{"next_step": "TBD"}, {"next_step": None}, {"next_step_date": day(-1)}],
    ids=["placeholder", "missing", "past_due"],
)
def test_a_commit_needs_a_valid_next_step(broken, ci):
    assert ci(commit(**broken)) == {"no_next_step"}


def test_an_open_activity_due_later_is_a_valid_next_step_for_a_commit(ci):
    task = activity(what_id="o1", due_date=day(1))
    assert ci(commit(next_step=None), activities=[task]) == set()


def test_a_past_due_activity_is_not(ci):
    task = activity(what_id="o1", due_date=day(-1))
    assert ci(commit(next_step=None), activities=[task]) == {"no_next_step"}


# -- the stage -----------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["closing", "commitment"])
def test_stages_at_80_percent_or_more_may_commit(stage, ci):
    assert ci(commit(stage=stage, probability=None)) == set()


@pytest.mark.parametrize(
    "stage", ["mql", "engagement", "date_locked", "draft_proposal", "trial_close"]
)
def test_earlier_stages_may_not(stage, ci):
    assert ci(commit(stage=stage, probability=None)) == {"stage_too_early"}


def test_the_stage_default_counts_not_the_deals_own_probability(ci):
    assert ci(commit(stage="trial_close", probability=95)) == {"stage_too_early"}


def test_a_stage_off_the_ladder_is_too_early(ci):
    assert ci(commit(stage="negotiation")) == {"stage_too_early"}


def test_the_minimum_is_configurable(ci):
    config = {"packs": {"tsos": {"commit_min_probability": 60}}}
    assert ci(commit(stage="trial_close", probability=None), config=config) == set()
    assert ci(commit(stage="date_locked", probability=None), config=config) == {"stage_too_early"}


def test_a_commit_wrong_in_every_way_reports_every_reason(ci):
    bad = commit(stage="engagement", close_date=day(-3), next_step="?")
    assert ci(bad) == {"close_date_invalid", "no_next_step", "stage_too_early"}
    beyond = commit(stage="engagement", close_date=day(90), next_step="?")
    assert ci(beyond) == {"beyond_quarter", "no_next_step", "stage_too_early"}


def test_today_defaults_from_the_snapshot(findings, reasons):
    snap = snapshot(as_of="2026-03-31", opportunities=[commit(close_date="2026-04-01")])
    assert {f.reason for f in findings(snap) if f.rule == RULE} == {"beyond_quarter"}
    assert reasons(snap, RULE, as_of="2026-04-01") == set()
