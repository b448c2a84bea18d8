"""tsos.partner-told-of-direct-contact (warn): direct contact with a partner's customer in the
last 14 days must be shared with the partner."""

from __future__ import annotations

import pytest

from tsos_rules.testing import account, activity, at, channel_account, day, deal, snapshot

pytestmark = pytest.mark.usefixtures("isolated_env")

RULE = "tsos.partner-told-of-direct-contact"


def contact(**overrides):
    values = {"account_id": "a1", "owner_id": "d1", "created_at": at(-1)}
    values.update(overrides)
    return activity("t1", **values)


@pytest.fixture
def ptd(found):
    def ptd(*activities, accounts=None, opportunities=(), **kwargs):
        snap = snapshot(
            accounts=[channel_account("a1")] if accounts is None else accounts,
            opportunities=opportunities,
            activities=activities,
            users=[
                {"id": "d1", "name": "Ray", "role": "direct"},
                {"id": "u1", "name": "Dana", "role": "channel"},
                {"id": "x1", "name": "Office", "role": "other"},
                {"id": "pu", "name": "Sam (partner)", "role": "partner"},
            ],
        )
        return found(snap, RULE, **kwargs)

    return ptd


def test_a_direct_reps_unshared_contact_with_a_partners_customer_is_reported(only):
    snap = snapshot(
        accounts=[channel_account("a1", name="Boeing")],
        activities=[contact(subject="Call with CIO")],
    )
    finding = only(snap, RULE)
    assert (finding.record_type, finding.record_id, finding.reason, finding.severity.value) == (
        "activity",
        "t1",
        "partner_not_notified",
        "warn",
    )
    assert "Boeing" in finding.message and "Call with CIO" in finding.message
    assert "p1" in finding.message


@pytest.mark.parametrize("owner", ["d1", "u1", "x1"], ids=["direct", "channel", "other"])
def test_any_vendor_user_counts(owner, ptd):
    assert ptd(contact(owner_id=owner)) == {("t1", "partner_not_notified", "warn")}


def test_a_partner_users_own_activity_is_not_direct_contact(ptd):
    assert ptd(contact(owner_id="pu")) == set()


def test_shared_with_the_partner_is_fine(ptd):
    assert ptd(contact(partner_notified=True)) == set()


def test_an_account_without_partner_of_record_is_not_judged(ptd):
    assert ptd(contact(), accounts=[account("a1")]) == set()


def test_the_account_is_found_through_the_deal_when_the_activity_names_none(ptd):
    on_deal = contact(account_id=None, what_id="o1")
    assert ptd(
        on_deal, opportunities=[deal("o1", account_id="a1", channel="partner", partner_id="p1")]
    ) == {("t1", "partner_not_notified", "warn")}


@pytest.mark.parametrize(
    ("days_ago", "reported"), [(0, True), (14, True), (15, False), (40, False)]
)
def test_only_the_last_fourteen_days_count(days_ago, reported, ptd):
    hits = ptd(contact(created_at=at(-days_ago)))
    assert bool(hits) is reported


def test_the_window_is_configurable(ptd):
    config = {"packs": {"tsos": {"direct_contact_days": 3}}}
    assert ptd(contact(created_at=at(-3)), config=config) == {
        ("t1", "partner_not_notified", "warn")
    }
    assert ptd(contact(created_at=at(-4)), config=config) == set()


def test_without_a_creation_time_the_due_date_places_the_contact(ptd):
    assert ptd(contact(created_at=None, due_date=day(-2))) == {
        ("t1", "partner_not_notified", "warn")
    }
    assert ptd(contact(created_at=None, due_date=day(-20))) == set()


def test_the_contact_date_is_taken_in_the_org_time_zone(ptd):
    # 03:00 UTC on the 14th day back is still the evening before (15 days back) in Los Angeles.
    edge = contact(created_at=f"{day(-14)}T03:00:00+00:00")
    assert ptd(edge) == {("t1", "partner_not_notified", "warn")}
    assert ptd(edge, config={"org": {"timezone": "America/Los_Angeles"}}) == set()


def test_an_empty_partner_of_record_is_no_partner_of_record(ptd):
    """An empty id means unset here as everywhere else (the account is no channel account)."""
    assert ptd(contact(), accounts=[account("a1", partner_of_record_id="")]) == set()
    on_deal = contact(account_id=None, what_id="o1")
    assert (
        ptd(
            on_deal,
            accounts=[account("a1", partner_of_record_id="")],
            opportunities=[deal("o1", account_id="a1")],
        )
        == set()
    )
