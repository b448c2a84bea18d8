"""tsos.partner-of-record-required (block): one active partner of record.

Judges channel deals (open and closed), unconverted channel leads (a partner set, a partner
source, or distributed to a partner; converted leads are history) and accounts that have ever
had a channel deal.
"""

from __future__ import annotations

import pytest

from tsos_rules.testing import (
    account,
    at,
    channel_account,
    channel_deal,
    closed_deal,
    deal,
    lead,
    partner,
    snapshot,
)

pytestmark = pytest.mark.usefixtures("isolated_env")

RULE = "tsos.partner-of-record-required"


@pytest.fixture
def por(findings):
    def por(**parts):
        return {
            (f.record_type, f.record_id, f.reason)
            for f in findings(snapshot(**parts))
            if f.rule == RULE
        }

    return por


# -- opportunities -------------------------------------------------------------------------


def test_a_channel_deal_with_an_active_partner_passes(por):
    assert por(opportunities=[channel_deal()], accounts=[channel_account()]) == set()


def test_a_direct_deal_needs_no_partner_of_record(por):
    assert por(opportunities=[deal(channel="direct")]) == set()


def test_a_channel_deal_with_no_partner_anywhere_is_missing_its_partner_of_record(por):
    hits = por(opportunities=[deal(channel="partner", partner_id=None)])
    assert hits == {("opportunity", "o1", "missing")}


def test_a_deal_without_partner_falls_back_to_the_accounts_partner_of_record(por):
    hits = por(opportunities=[channel_deal(partner_id=None)], accounts=[channel_account()])
    assert ("opportunity", "o1", "missing") not in hits


def test_an_unknown_partner_on_a_channel_deal(por):
    hits = por(opportunities=[deal(channel="partner", partner_id="p404")])
    assert hits == {("opportunity", "o1", "unknown_partner")}


def test_a_terminated_partner_on_a_channel_deal(found):
    snap = snapshot(
        partners=[partner("p1", status="terminated")],
        opportunities=[deal(channel="partner", partner_id="p1")],
    )
    assert found(snap, RULE) == {("o1", "terminated_partner", "block")}


def test_closed_channel_deals_are_judged_too(found):
    snap = snapshot(
        partners=[partner("p1", status="terminated")],
        opportunities=[
            closed_deal("o1", channel="partner", partner_id="p1"),
            closed_deal("o2", won=False, channel="partner", partner_id=None),
        ],
    )
    assert found(snap, RULE) == {
        ("o1", "terminated_partner", "block"),
        ("o2", "missing", "block"),
    }


# -- leads ---------------------------------------------------------------------------------


def distributed(**overrides):
    values = {"partner_id": "p1", "distributed_at": at(-1), "accepted_at": at(-1)}
    values.update(overrides)
    return lead("l1", **values)


def test_a_distributed_lead_with_an_active_partner_passes(por):
    assert por(leads=[distributed()]) == set()


def test_a_distributed_lead_with_no_partner(por):
    assert por(leads=[distributed(partner_id=None)]) == {("lead", "l1", "missing")}


def test_a_distributed_lead_with_an_unknown_partner(por):
    assert por(leads=[distributed(partner_id="p404")]) == {("lead", "l1", "unknown_partner")}


def test_a_distributed_lead_with_a_terminated_partner(por):
    hits = por(partners=[partner("p1", status="terminated")], leads=[distributed()])
    assert hits == {("lead", "l1", "terminated_partner")}


def test_a_direct_lead_is_not_judged(por):
    assert por(leads=[lead("l1", partner_id=None, distributed_at=None, source="web")]) == set()


@pytest.mark.parametrize(
    "source", ["partner", "partner_referral", "partner_url", "deal_registration"]
)
def test_an_open_partner_sourced_lead_with_no_partner_is_missing_its_partner_of_record(source, por):
    # The case the rule exists for: refer the lead back to the partner who brought it.
    hits = por(leads=[lead("l1", partner_id=None, distributed_at=None, source=source)])
    assert hits == {("lead", "l1", "missing")}


def test_a_partner_sourced_lead_names_the_source_in_its_message(findings):
    snap = snapshot(leads=[lead("l1", company="Acme", partner_id=None, source="partner_url")])
    (finding,) = [f for f in findings(snap) if f.rule == RULE]
    assert "partner source partner_url" in finding.message
    assert "name the partner" in finding.message


def test_an_undistributed_lead_with_a_partner_is_judged_by_that_partner(por):
    hits = por(
        partners=[partner("p1", status="terminated")],
        leads=[lead("l1", partner_id="p1", distributed_at=None, source="web")],
    )
    assert hits == {("lead", "l1", "terminated_partner")}
    unknown = por(leads=[lead("l1", partner_id="p404", distributed_at=None)])
    assert unknown == {("lead", "l1", "unknown_partner")}


def test_a_lead_in_a_closed_status_is_still_judged_until_converted(por):
    hits = por(leads=[lead("l1", partner_id=None, source="partner", status="disqualified")])
    assert hits == {("lead", "l1", "missing")}


def test_a_converted_channel_lead_is_history(por):
    converted = lead(
        "l1",
        partner_id="p404",
        source="partner",
        distributed_at=at(-3),
        converted_opportunity_id="o1",
        status="converted",
    )
    hits = por(leads=[converted], opportunities=[channel_deal()], accounts=[channel_account()])
    assert not {hit for hit in hits if hit[0] == "lead"}


def test_explain_states_which_leads_are_judged(cli):
    out = " ".join(cli("explain", RULE).out.split())
    assert "unconverted channel lead" in out
    assert "partner source" in out and "converted lead is history" in out


# -- accounts ------------------------------------------------------------------------------


def test_an_account_that_had_a_channel_deal_needs_a_partner_of_record(por):
    hits = por(
        accounts=[account("a1", partner_of_record_id=None)],
        opportunities=[channel_deal(account_id="a1")],
    )
    assert hits == {("account", "a1", "missing")}


def test_an_account_whose_only_channel_deal_is_closed_still_needs_one(por):
    hits = por(
        accounts=[account("a1", partner_of_record_id=None)],
        opportunities=[closed_deal(account_id="a1", channel="partner", partner_id="p1")],
    )
    assert hits == {("account", "a1", "missing")}


def test_an_account_without_channel_deals_needs_none(por):
    hits = por(accounts=[account("a1")], opportunities=[deal(account_id="a1", channel="direct")])
    assert hits == set()


@pytest.mark.parametrize(
    ("partners", "por_id", "reason"),
    [
        ([partner("p1", status="terminated")], "p1", "terminated_partner"),
        ([partner("p1")], "p9", "unknown_partner"),
    ],
)
def test_an_accounts_partner_of_record_must_exist_and_be_active(partners, por_id, reason, por):
    hits = por(
        partners=partners,
        accounts=[account("a1", partner_of_record_id=por_id)],
        opportunities=[deal(account_id="a1", partner_id=None, channel="partner")],
    )
    assert ("account", "a1", reason) in hits
    # The deal names no partner of its own: it inherits the account's, and the same problem.
    assert ("opportunity", "o1", reason) in hits


def test_the_deals_own_partner_is_its_partner_of_record(por):
    hits = por(
        partners=[partner("p1", status="terminated"), partner("p2")],
        accounts=[account("a1", partner_of_record_id="p1")],
        opportunities=[deal(account_id="a1", partner_id="p2", channel="partner")],
    )
    assert hits == {("account", "a1", "terminated_partner")}


def test_messages_say_what_to_do(findings):
    snap = snapshot(
        partners=[partner("p1", status="terminated")],
        opportunities=[deal(channel="partner", partner_id="p1")],
    )
    (finding,) = [f for f in findings(snap) if f.rule == RULE]
    assert "p1" in finding.message and "terminated" in finding.message
    assert "assign an active partner" in finding.message
