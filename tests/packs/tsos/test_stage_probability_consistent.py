"""tsos.stage-probability-consistent (warn): probability within tolerance of the stage default."""

from __future__ import annotations

import pytest

import tsos_rules
from tsos_rules.testing import closed_deal, deal, snapshot

pytestmark = pytest.mark.usefixtures("isolated_env")

RULE = "tsos.stage-probability-consistent"

LADDER = [
    ("mql", 20),
    ("business_driver", 40),
    ("sql", 40),
    ("engagement", 40),
    ("single_sales_opportunity", 40),
    ("date_locked", 40),
    ("draft_proposal", 60),
    ("trial_close", 65),
    ("closing", 80),
    ("commitment", 90),
    ("closed_won", 100),
    ("closed_lost", 0),
]


@pytest.fixture
def sp(found):
    def sp(deal_record, **kwargs):
        return found(snapshot(opportunities=[deal_record]), RULE, **kwargs)

    return sp


@pytest.mark.parametrize(("stage", "probability"), LADDER)
def test_each_stage_at_its_default_probability_passes(stage, probability, sp):
    assert sp(deal(stage=stage, probability=probability)) == set()


@pytest.mark.parametrize(("stage", "probability"), LADDER)
def test_each_stage_tolerates_ten_points_and_no_more(stage, probability, sp):
    for inside in (probability - 10, probability + 10):
        assert sp(deal(stage=stage, probability=inside)) == set(), inside
    for outside in (probability - 11, probability + 11):
        assert sp(deal(stage=stage, probability=outside)) == {
            ("o1", "probability_mismatch", "warn")
        }, outside


def test_fractional_probabilities_just_over_the_tolerance_are_reported(sp):
    assert sp(deal(stage="engagement", probability=50.5)) == {
        ("o1", "probability_mismatch", "warn")
    }
    assert sp(deal(stage="engagement", probability=49.5)) == set()


def test_the_mismatch_names_expected_and_actual(only):
    finding = only(snapshot(opportunities=[deal(stage="closing", probability=30)]), RULE)
    assert finding.details == {"expected": 80, "actual": 30}
    assert "30 %" in finding.message and "80 %" in finding.message


def test_closed_deals_are_judged_too(sp):
    assert sp(closed_deal(won=True, probability=40)) == {("o1", "probability_mismatch", "warn")}
    assert sp(closed_deal(won=False, probability=50)) == {("o1", "probability_mismatch", "warn")}


def test_an_unknown_stage_is_a_finding_not_an_input_error():
    result = tsos_rules.check(snapshot(opportunities=[deal(stage="Negotiation", probability=70)]))
    hits = [(f.rule, f.reason, f.severity.value) for f in result if f.rule == RULE]
    assert hits == [(RULE, "unknown_stage", "warn")]
    assert "'Negotiation'" in result.for_rule(RULE)[0].message


def test_stage_names_are_exact(sp):
    assert sp(deal(stage="Closing", probability=80)) == {("o1", "unknown_stage", "warn")}


def test_an_unknown_stage_on_a_closed_deal_is_reported(sp):
    assert sp(closed_deal(stage="won", probability=100)) == {("o1", "unknown_stage", "warn")}


def test_a_deal_without_probability_is_not_judged_on_it(sp):
    assert sp(deal(stage="closing", probability=None)) == set()


def test_the_tolerance_is_configurable(sp):
    config = {"packs": {"tsos": {"probability_tolerance": 0}}}
    assert sp(deal(stage="closing", probability=81), config=config) == {
        ("o1", "probability_mismatch", "warn")
    }
    loose = {"packs": {"tsos": {"probability_tolerance": 30}}}
    assert sp(deal(stage="closing", probability=50), config=loose) == set()


def test_the_ladder_is_configurable(sp):
    config = {
        "org": {
            "stage_ladder": {"prospect": 10, "negotiation": 70, "won": 100},
            "lock_stage": "negotiation",
        }
    }
    assert sp(deal(stage="negotiation", probability=70), config=config) == set()
    assert sp(deal(stage="engagement", probability=40), config=config) == {
        ("o1", "unknown_stage", "warn")
    }
