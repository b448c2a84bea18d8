"""tsos.next-step-required (block): every open deal has a real next step with a date."""

from __future__ import annotations

import pytest

from tsos_rules.testing import activity, closed_deal, day, deal, snapshot

pytestmark = pytest.mark.usefixtures("isolated_env")

RULE = "tsos.next-step-required"


@pytest.fixture
def nsr(reasons):
    def nsr(*deals, activities=(), **kwargs):
        return reasons(snapshot(opportunities=deals, activities=activities), RULE, **kwargs)

    return nsr


def test_a_concrete_next_step_dated_in_the_future_passes(nsr):
    assert nsr(deal(next_step="Send the draft MSA to legal", next_step_date=day(5))) == set()


def test_a_next_step_dated_today_passes(nsr):
    assert nsr(deal(next_step_date=day(0))) == set()


@pytest.mark.parametrize(
    "text",
    [
        "TBD",
        "tbd",
        "TBD.",
        " n/a ",
        "N/A",
        "none",
        "None!",
        "-",
        "?",
        "follow up",
        "Follow-up",
        "FOLLOW UP...",
        "followup",
        "Follow_Up",
    ],
)
def test_placeholders_are_matched_ignoring_case_and_punctuation(text, only):
    finding = only(snapshot(opportunities=[deal(next_step=text, next_step_date=day(3))]), RULE)
    assert (finding.reason, finding.severity.value, finding.record_id) == (
        "placeholder",
        "block",
        "o1",
    )


@pytest.mark.parametrize(
    "text", ["TBD: pricing call with CFO", "Follow up on the security review", "None of the above"]
)
def test_text_that_merely_contains_a_placeholder_word_is_a_real_next_step(text, nsr):
    assert nsr(deal(next_step=text)) == set()


def test_a_placeholder_without_a_date_is_reported_as_a_placeholder(findings):
    snap = snapshot(opportunities=[deal(next_step="TBD", next_step_date=None)])
    hits = [f for f in findings(snap) if f.rule == RULE]
    assert "placeholder" in {f.reason for f in hits}
    assert all(f.severity.value == "block" for f in hits)
    assert any("'TBD'" in f.message for f in hits)


@pytest.mark.parametrize("text", [None, "", "   ", "\t\n"])
def test_a_blank_or_absent_description_is_missing(text, nsr):
    assert nsr(deal(next_step=text, next_step_date=day(3))) == {"missing"}


def test_a_missing_description_key_is_missing(nsr):
    record = deal()
    del record["next_step"]
    del record["next_step_date"]
    assert nsr(record) == {"missing"}


def test_a_description_without_a_date_is_not_a_commitment(nsr):
    assert nsr(deal(next_step="Pricing call with CFO", next_step_date=None)) == {"missing"}


def test_a_date_in_the_past_is_past_due_and_the_message_names_the_date(only):
    snap = snapshot(opportunities=[deal(next_step_date=day(-1))])
    finding = only(snap, RULE)
    assert finding.reason == "past_due"
    assert day(-1) in finding.message


def test_a_past_dated_placeholder_is_reported_as_a_placeholder(nsr):
    assert "placeholder" in nsr(deal(next_step="tbd", next_step_date=day(-4)))


@pytest.mark.parametrize(
    "broken",
    [
        {"next_step": None, "next_step_date": None},
        {"next_step": "Pricing call", "next_step_date": None},
        {"next_step": "TBD"},
        {"next_step": "Pricing call", "next_step_date": day(-7)},
    ],
    ids=["missing", "date-missing", "placeholder", "past_due"],
)
@pytest.mark.parametrize("due", [0, 1, 30], ids=["due-today", "due-tomorrow", "due-next-month"])
def test_an_open_activity_on_the_deal_due_today_or_later_cures_every_reason(broken, due, nsr):
    task = activity(what_id="o1", status="open", due_date=day(due))
    assert nsr(deal(**broken), activities=[task]) == set()


@pytest.mark.parametrize("broken_reason", ["missing", "past_due"])
def test_a_past_due_open_activity_cures_nothing(broken_reason, nsr):
    broken = {"next_step": None} if broken_reason == "missing" else {"next_step_date": day(-2)}
    task = activity(what_id="o1", status="open", due_date=day(-1))
    assert nsr(deal(**broken), activities=[task]) == {broken_reason}


def test_a_completed_activity_due_in_the_future_cures_nothing(nsr):
    task = activity(what_id="o1", status="completed", due_date=day(2))
    assert nsr(deal(next_step=None), activities=[task]) == {"missing"}


def test_an_open_activity_without_a_due_date_cures_nothing(nsr):
    task = activity(what_id="o1", status="open", due_date=None)
    assert nsr(deal(next_step=None), activities=[task]) == {"missing"}


def test_an_activity_on_another_deal_cures_nothing(reasons):
    task = activity(what_id="o2", status="open", due_date=day(2))
    snap = snapshot(opportunities=[deal("o1", next_step=None), deal("o2")], activities=[task])
    assert reasons(snap, RULE, "o1") == {"missing"}


def test_closed_deals_are_exempt(reasons):
    won = closed_deal("o1", won=True, next_step=None, next_step_date=None)
    lost = closed_deal("o2", won=False, next_step="TBD", next_step_date=day(-30))
    assert reasons(snapshot(opportunities=[won, lost]), RULE, "o1") == set()
    assert reasons(snapshot(opportunities=[won, lost]), RULE, "o2") == set()


def test_each_deal_is_judged_on_its_own(findings):
    snap = snapshot(
        opportunities=[
            deal("o1"),
            deal("o2", next_step="TBD"),
            deal("o3", next_step_date=day(-1)),
            deal("o4", next_step=""),
        ]
    )
    hits = {(f.record_id, f.reason) for f in findings(snap) if f.rule == RULE}
    assert hits == {("o2", "placeholder"), ("o3", "past_due"), ("o4", "missing")}


def test_the_evaluation_date_decides_what_is_past_due(reasons):
    snap = snapshot(opportunities=[deal(next_step_date=day(3))])
    assert reasons(snap, RULE) == set()
    assert reasons(snap, RULE, as_of=day(3)) == set()
    assert reasons(snap, RULE, as_of=day(4)) == {"past_due"}


def test_the_placeholder_list_is_configurable(reasons):
    config = {"org": {"placeholders": ["pending", "to be confirmed"]}}
    snap = snapshot(
        opportunities=[
            deal("o1", next_step="Pending."),
            deal("o2", next_step="To-be-confirmed"),
            deal("o3", next_step="TBD"),
        ]
    )
    assert reasons(snap, RULE, "o1", config=config) == {"placeholder"}
    assert reasons(snap, RULE, "o2", config=config) == {"placeholder"}
    assert reasons(snap, RULE, "o3", config=config) == set()
