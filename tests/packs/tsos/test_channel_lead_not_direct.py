"""tsos.channel-lead-not-direct (block): "When can you take a channel lead direct? NEVER." """

from __future__ import annotations

import pytest

import tsos_rules
from tsos_rules.testing import (
    account,
    channel_account,
    channel_deal,
    closed_deal,
    consent,
    deal,
    lead,
    snapshot,
)

pytestmark = pytest.mark.usefixtures("isolated_env")

RULE = "tsos.channel-lead-not-direct"


@pytest.fixture
def cl(reasons):
    def cl(*deals, leads=(), accounts=(), **kwargs):
        return reasons(
            snapshot(opportunities=deals, leads=leads, accounts=accounts), RULE, **kwargs
        )

    return cl


# -- what makes a channel deal -------------------------------------------------------------


def test_a_direct_deal_with_no_partner_anywhere_is_not_judged(cl):
    assert cl(deal(owner_id="d1", channel="direct", partner_id=None)) == set()


def test_lead_partner_makes_a_channel_deal(only):
    source = lead("l1", partner_id="p1", source="web", status="converted")
    finding = only(
        snapshot(opportunities=[deal(lead_id="l1", partner_id=None)], leads=[source]), RULE
    )
    assert finding.reason == "no_partner"
    assert finding.details["channel_reasons"] == ["lead_partner"]
    assert "its lead came through a partner" in finding.message


@pytest.mark.parametrize(
    "source", ["partner", "partner_referral", "partner_url", "deal_registration"]
)
def test_every_partner_lead_source_makes_a_channel_deal(source, only):
    origin = lead("l1", partner_id=None, source=source, status="converted")
    finding = only(
        snapshot(opportunities=[deal(lead_id="l1", partner_id=None)], leads=[origin]), RULE
    )
    assert finding.reason == "no_partner"
    assert finding.details["channel_reasons"] == ["lead_source"]


@pytest.mark.parametrize("source", ["web", "trade_show", "outbound", None])
def test_other_lead_sources_do_not(source, cl):
    origin = lead("l1", partner_id=None, source=source, status="converted")
    assert cl(deal(lead_id="l1", owner_id="d1"), leads=[origin]) == set()


def test_a_lead_pointing_at_the_deal_through_converted_opportunity_id_counts_too(cl):
    origin = lead("l1", partner_id="p1", status="converted", converted_opportunity_id="o1")
    assert cl(deal(lead_id=None, partner_id=None), leads=[origin]) == {"no_partner"}


def test_account_partner_of_record_makes_a_channel_deal(only):
    snap = snapshot(
        opportunities=[deal(account_id="a1", partner_id=None)], accounts=[channel_account("a1")]
    )
    finding = only(snap, RULE)
    assert finding.reason == "no_partner"
    assert finding.details["channel_reasons"] == ["account_partner_of_record"]


def test_an_account_without_partner_of_record_does_not(cl):
    assert cl(deal(account_id="a1", owner_id="d1"), accounts=[account("a1")]) == set()


def test_channel_field_partner_makes_a_channel_deal(only):
    finding = only(snapshot(opportunities=[deal(channel="partner", partner_id=None)]), RULE)
    assert finding.reason == "no_partner"
    assert finding.details["channel_reasons"] == ["channel_field"]


def test_all_reasons_for_being_a_channel_deal_are_named(only):
    origin = lead("l1", partner_id="p1", source="partner_referral", status="converted")
    snap = snapshot(
        opportunities=[channel_deal(lead_id="l1", partner_id=None)],
        leads=[origin],
        accounts=[channel_account("a1")],
    )
    finding = only(snap, RULE)
    assert finding.details["channel_reasons"] == [
        "lead_partner",
        "lead_source",
        "account_partner_of_record",
        "channel_field",
    ]


# -- the violations ------------------------------------------------------------------------


def test_a_clean_channel_deal_passes(cl):
    assert cl(channel_deal(owner_id="u1"), accounts=[channel_account()]) == set()


def test_no_partner_attached(cl):
    assert cl(channel_deal(partner_id=None), accounts=[channel_account()]) == {"no_partner"}


def test_blank_partner_id_counts_as_no_partner(cl):
    assert cl(channel_deal(partner_id=""), accounts=[channel_account()]) == {"no_partner"}


def test_marked_direct(cl):
    origin = lead("l1", partner_id="p1", status="converted")
    assert cl(deal(lead_id="l1", partner_id="p1", channel="direct"), leads=[origin]) == {
        "marked_direct"
    }


def test_direct_owner_without_consent(only):
    finding = only(
        snapshot(opportunities=[channel_deal(owner_id="d1")], accounts=[channel_account()]), RULE
    )
    assert (finding.reason, finding.severity.value) == ("direct_owner", "block")
    assert "record their consent" in finding.message


@pytest.mark.parametrize("role", ["channel", "partner", "other"])
def test_owners_in_other_roles_are_fine(role, reasons):
    snap = snapshot(
        users=[{"id": "x1", "name": "X", "role": role}],
        opportunities=[channel_deal(owner_id="x1")],
        accounts=[channel_account()],
    )
    assert reasons(snap, RULE) == set()


def test_every_violation_of_one_deal_is_reported_each_once(findings):
    origin = lead("l1", partner_id="p1", status="converted")
    snap = snapshot(
        opportunities=[deal(lead_id="l1", partner_id=None, channel="direct", owner_id="d1")],
        leads=[origin],
    )
    hits = [(f.reason, f.severity.value) for f in findings(snap) if f.rule == RULE]
    assert sorted(hits) == [
        ("direct_owner", "block"),
        ("marked_direct", "block"),
        ("no_partner", "block"),
    ]


# -- partner consent -----------------------------------------------------------------------


def consented(**overrides):
    values = {"owner_id": "d1", "partner_consent": consent()}
    values.update(overrides)
    return snapshot(opportunities=[channel_deal(**values)], accounts=[channel_account()])


def test_consent_turns_the_direct_owner_case_into_info_visible_only_on_request(found):
    snap = consented()
    assert found(snap, RULE) == set()
    assert found(snap, RULE, include_info=True) == {("o1", "direct_owner_with_consent", "info")}


@pytest.mark.parametrize("why", ["credit_limit", "product_management", "other"])
def test_each_consent_reason_is_accepted_and_named(why, only):
    finding = only(consented(partner_consent=consent(reason=why)), RULE, include_info=True)
    assert finding.severity.value == "info"
    assert why in finding.message


def test_consent_never_removes_the_partner_requirement(found):
    snap = consented(partner_id=None)
    assert found(snap, RULE) == {("o1", "no_partner", "block")}
    assert found(snap, RULE, include_info=True) == {
        ("o1", "no_partner", "block"),
        ("o1", "direct_owner_with_consent", "info"),
    }


def test_consent_does_not_excuse_marking_the_deal_direct(found):
    assert found(consented(channel="direct"), RULE) == {("o1", "marked_direct", "block")}


@pytest.mark.parametrize("empty", [{}, {"note": "will ask them next week"}])
def test_a_consent_that_records_nobody_is_no_consent(empty, found):
    assert found(consented(partner_consent=empty), RULE) == {("o1", "direct_owner", "block")}


def test_an_info_finding_alone_does_not_fail_the_check():
    result = tsos_rules.check(consented(), include_info=True)
    assert not result.blocking
    assert result.by_severity == {"block": 0, "warn": 0, "info": 1}


# -- scope ---------------------------------------------------------------------------------


def test_closed_channel_deals_are_history_and_not_judged(reasons):
    snap = snapshot(
        opportunities=[
            closed_deal("o1", account_id="a1", partner_id="p1", channel="direct", owner_id="d1")
        ],
        accounts=[channel_account()],
    )
    assert reasons(snap, RULE) == set()
