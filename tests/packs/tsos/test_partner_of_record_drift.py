"""tsos.partner-of-record-drift (warn): a deal routes back to its account's partner of record."""

from __future__ import annotations

import pytest

from tsos_rules.testing import (
    account,
    channel_account,
    channel_deal,
    closed_deal,
    partner,
    snapshot,
)

pytestmark = pytest.mark.usefixtures("isolated_env")

RULE = "tsos.partner-of-record-drift"
PARTNERS = [partner("p1"), partner("p2")]


def test_a_deal_with_the_accounts_partner_of_record_passes(found):
    snap = snapshot(opportunities=[channel_deal(partner_id="p1")], accounts=[channel_account()])
    assert found(snap, RULE) == set()


def test_a_deal_with_another_partner_and_no_reason_drifts(only):
    snap = snapshot(
        partners=PARTNERS,
        opportunities=[channel_deal(partner_id="p2")],
        accounts=[channel_account(partner_of_record_id="p1")],
    )
    finding = only(snap, RULE)
    assert (finding.reason, finding.severity.value) == ("partner_differs", "warn")
    assert finding.details == {"partner_id": "p2", "partner_of_record_id": "p1"}
    assert "route it back to p1" in finding.message


def test_a_recorded_reason_accepts_the_difference(found):
    snap = snapshot(
        partners=PARTNERS,
        opportunities=[channel_deal(partner_id="p2", partner_override_reason="Customer's choice")],
        accounts=[channel_account(partner_of_record_id="p1")],
    )
    assert found(snap, RULE) == set()


def test_closed_deals_are_judged_too(found):
    snap = snapshot(
        partners=PARTNERS,
        opportunities=[closed_deal(account_id="a1", partner_id="p2", channel="partner")],
        accounts=[channel_account(partner_of_record_id="p1")],
    )
    assert found(snap, RULE) == {("o1", "partner_differs", "warn")}


def test_no_drift_without_an_account_partner_of_record(found):
    snap = snapshot(
        partners=PARTNERS,
        opportunities=[channel_deal(partner_id="p2")],
        accounts=[account("a1", partner_of_record_id=None)],
    )
    assert found(snap, RULE) == set()
