"""tsos.partner-lead-followup (warn): a partner accepts a distributed lead within 2 business
days and follows it up within 5 (Mon-Fri less holidays, in the org's time zone)."""

from __future__ import annotations

import pytest

from tsos_rules.testing import lead, snapshot

pytestmark = pytest.mark.usefixtures("isolated_env")

RULE = "tsos.partner-lead-followup"

# November 2026: Fri 20, Sat 21, Sun 22, Mon 23, Tue 24, Wed 25, Thu 26, Fri 27, Mon 30.
FRIDAY = "2026-11-20T09:00:00+00:00"


def ts(date, hour=15):
    return f"{date}T{hour:02d}:00:00+00:00"


def distributed(**overrides):
    values = {
        "partner_id": "p1",
        "source": "partner",
        "distributed_at": FRIDAY,
        "accepted_at": None,
        "followed_up_at": None,
    }
    values.update(overrides)
    return lead("l1", **values)


@pytest.fixture
def plf(found):
    def plf(record, as_of, **kwargs):
        return {
            reason for _, reason, _ in found(snapshot(as_of=as_of, leads=[record]), RULE, **kwargs)
        }

    return plf


# -- acceptance: 2 business days -----------------------------------------------------------


def test_unaccepted_after_a_weekend_and_two_working_days_is_still_in_time(plf):
    # Friday to Tuesday is four calendar days but two business days.
    assert plf(distributed(), "2026-11-24") == set()


def test_unaccepted_on_the_third_business_day_is_not_accepted(only):
    finding = only(snapshot(as_of="2026-11-25", leads=[distributed()]), RULE)
    assert (finding.record_type, finding.reason, finding.severity.value) == (
        "lead",
        "not_accepted",
        "warn",
    )
    assert "2 business days" in finding.message and "p1" in finding.message


def test_accepted_in_time_is_fine(plf):
    assert plf(distributed(accepted_at=ts("2026-11-24")), "2026-11-25") == set()


def test_accepted_late_still_counts_as_not_accepted(plf):
    late = distributed(accepted_at=ts("2026-11-25"), followed_up_at=ts("2026-11-25"))
    assert plf(late, "2026-11-26") == {"not_accepted"}


def test_a_holiday_does_not_count_as_a_business_day(plf):
    config = {"org": {"holidays": ["2026-11-23"]}}
    assert plf(distributed(), "2026-11-25") == {"not_accepted"}
    assert plf(distributed(), "2026-11-25", config=config) == set()
    assert plf(distributed(), "2026-11-26", config=config) == {"not_accepted"}


def test_a_holiday_on_a_weekend_changes_nothing(plf):
    config = {"org": {"holidays": ["2026-11-21", "2026-11-22"]}}
    assert plf(distributed(), "2026-11-25", config=config) == {"not_accepted"}


def test_distribution_on_a_saturday_starts_counting_on_monday(plf):
    saturday = distributed(distributed_at="2026-11-21T11:00:00+00:00")
    assert plf(saturday, "2026-11-24") == set()
    assert plf(saturday, "2026-11-25") == {"not_accepted"}


def test_the_distribution_date_is_taken_in_the_org_time_zone(plf):
    # 23:30 on Thursday in New York is already Friday in UTC.
    thursday_evening = distributed(distributed_at="2026-11-19T23:30:00-05:00")
    new_york = {"org": {"timezone": "America/New_York"}}
    assert plf(thursday_evening, "2026-11-24") == set()
    assert plf(thursday_evening, "2026-11-24", config=new_york) == {"not_accepted"}


def test_the_acceptance_window_is_configurable(plf):
    config = {"packs": {"tsos": {"acceptance_business_days": 3}}}
    assert plf(distributed(), "2026-11-25", config=config) == set()
    assert plf(distributed(), "2026-11-26", config=config) == {"not_accepted"}


# -- follow-up: 5 business days ------------------------------------------------------------


def accepted(**overrides):
    values = {"accepted_at": ts("2026-11-20")}
    values.update(overrides)
    return distributed(**values)


def test_not_followed_up_on_the_fifth_business_day_is_still_in_time(plf):
    assert plf(accepted(), "2026-11-27") == set()


def test_not_followed_up_on_the_sixth_business_day_is_reported(only):
    finding = only(snapshot(as_of="2026-11-30", leads=[accepted()]), RULE)
    assert (finding.reason, finding.severity.value) == ("no_followup", "warn")
    assert "5 business days" in finding.message


def test_followed_up_in_time_is_fine(plf):
    assert plf(accepted(followed_up_at=ts("2026-11-27")), "2026-12-10") == set()


def test_followed_up_late_still_counts(plf):
    assert plf(accepted(followed_up_at=ts("2026-11-30")), "2026-12-10") == {"no_followup"}


def test_a_holiday_extends_the_follow_up_window(plf):
    config = {"org": {"holidays": ["2026-11-26"]}}
    assert plf(accepted(), "2026-11-30", config=config) == set()
    assert plf(accepted(followed_up_at=ts("2026-11-30")), "2026-12-10", config=config) == set()


def test_the_follow_up_window_is_configurable(plf):
    config = {"packs": {"tsos": {"followup_business_days": 3}}}
    assert plf(accepted(), "2026-11-25", config=config) == set()
    assert plf(accepted(), "2026-11-26", config=config) == {"no_followup"}


def test_a_lead_neither_accepted_nor_followed_up_gets_both_reasons(plf):
    assert plf(distributed(), "2026-12-04") == {"not_accepted", "no_followup"}


# -- which leads ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        lead("l1", partner_id=None, distributed_at=None),
        lead("l1", partner_id="p1", source="partner_referral", distributed_at=None),
    ],
    ids=["direct-lead", "partner-sourced-never-distributed"],
)
def test_leads_never_distributed_have_no_clock(record, plf):
    assert plf(record, "2026-12-31") == set()
