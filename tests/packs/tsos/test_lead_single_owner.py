"""tsos.lead-single-owner (warn): one owner per company across open leads and open deals."""

from __future__ import annotations

import pytest

from tsos_rules.testing import account, closed_deal, deal, lead, snapshot

pytestmark = pytest.mark.usefixtures("isolated_env")

RULE = "tsos.lead-single-owner"


@pytest.fixture
def so(findings):
    def so(**parts):
        return {
            (f.record_type, f.record_id, f.reason)
            for f in findings(snapshot(**parts))
            if f.rule == RULE
        }

    return so


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Acme, Inc.", "ACME"),
        ("Acme Corporation", "acme corp."),
        ("Acme LLC", "Acme"),
        ("A.C.M.E.", "acme"),
        ("Smith & Sons Ltd", "Smith and Sons"),
    ],
)
def test_two_open_leads_for_the_same_company_name_with_different_owners(first, second, so):
    hits = so(
        leads=[lead("l1", company=first, owner_id="u1"), lead("l2", company=second, owner_id="u2")]
    )
    assert hits == {("lead", "l1", "multiple_owners"), ("lead", "l2", "multiple_owners")}


def test_the_finding_names_the_other_records_and_is_a_warning(findings):
    snap = snapshot(
        leads=[
            lead("l1", company="Acme, Inc.", owner_id="u1"),
            lead("l2", company="ACME", owner_id="u2"),
        ]
    )
    l1 = [f for f in findings(snap) if f.rule == RULE and f.record_id == "l1"]
    assert len(l1) == 1
    assert l1[0].severity.value == "warn"
    assert l1[0].details == {"others": ["lead:l2"]}
    assert "lead l2" in l1[0].message


def test_the_same_owner_on_both_is_no_conflict(so):
    hits = so(leads=[lead("l1", company="Acme", owner_id="u1"), lead("l2", company="ACME")])
    assert hits == set()


def test_different_companies_never_conflict(so):
    hits = so(
        leads=[
            lead("l1", company="Acme", owner_id="u1"),
            lead("l2", company="Acme Industries", owner_id="u2"),
        ]
    )
    assert hits == set()


def test_a_lead_and_a_deal_on_the_same_account_conflict_whatever_the_lead_calls_it(so):
    hits = so(
        accounts=[account("a1", name="International Business Machines")],
        leads=[lead("l1", company="IBM", account_id="a1", owner_id="u1")],
        opportunities=[deal("o1", account_id="a1", owner_id="u2")],
    )
    assert hits == {("lead", "l1", "multiple_owners"), ("opportunity", "o1", "multiple_owners")}


def test_two_deals_on_the_same_account_with_different_owners(so):
    hits = so(
        accounts=[account("a1")],
        opportunities=[
            deal("o1", account_id="a1", owner_id="u1"),
            deal("o2", account_id="a1", owner_id="u2"),
        ],
    )
    assert hits == {
        ("opportunity", "o1", "multiple_owners"),
        ("opportunity", "o2", "multiple_owners"),
    }


def test_a_lead_matches_a_deal_through_the_accounts_normalised_name(so):
    hits = so(
        accounts=[account("a1", name="Grumman Aerospace")],
        leads=[lead("l1", company="Grumman Aerospace Inc.", owner_id="u2")],
        opportunities=[deal("o1", account_id="a1", owner_id="u1")],
    )
    assert hits == {("lead", "l1", "multiple_owners"), ("opportunity", "o1", "multiple_owners")}


@pytest.mark.parametrize("accounts", [[account("a1", name=None)], []], ids=["nameless", "absent"])
def test_the_same_account_conflicts_even_when_the_account_name_is_unknown(accounts, so):
    hits = so(
        accounts=accounts,
        leads=[lead("l1", company="Acme", account_id="a1", owner_id="u1")],
        opportunities=[deal("o1", account_id="a1", owner_id="u2")],
    )
    assert hits == {("lead", "l1", "multiple_owners"), ("opportunity", "o1", "multiple_owners")}


def test_a_partner_lead_and_a_direct_deal_for_one_company_conflict_even_with_one_owner(findings):
    snap = snapshot(
        accounts=[account("a1", name="Acme")],
        leads=[lead("l1", company="Acme Inc", partner_id="p1", owner_id="u1")],
        opportunities=[deal("o1", account_id="a1", partner_id=None, channel=None, owner_id="u1")],
    )
    hits = {(f.record_id, f.reason) for f in findings(snap) if f.rule == RULE}
    assert hits == {("l1", "partner_and_direct"), ("o1", "partner_and_direct")}
    messages = [f.message for f in findings(snap) if f.rule == RULE]
    assert all("through a partner and directly" in m for m in messages)


def test_a_partner_deal_and_a_direct_lead_conflict(so):
    hits = so(
        accounts=[account("a1", name="Acme")],
        leads=[lead("l1", company="Acme", partner_id=None, owner_id="u1")],
        opportunities=[deal("o1", account_id="a1", channel="partner", owner_id="u1")],
    )
    assert hits == {
        ("lead", "l1", "partner_and_direct"),
        ("opportunity", "o1", "partner_and_direct"),
    }


def test_different_owners_are_reported_as_such_even_when_one_goes_through_a_partner(so):
    hits = so(
        leads=[
            lead("l1", company="Acme", partner_id="p1", owner_id="u1"),
            lead("l2", company="Acme", partner_id=None, owner_id="u2"),
        ]
    )
    assert hits == {("lead", "l1", "multiple_owners"), ("lead", "l2", "multiple_owners")}


def test_both_through_a_partner_with_one_owner_is_no_conflict(so):
    hits = so(
        leads=[
            lead("l1", company="Acme", partner_id="p1"),
            lead("l2", company="Acme", partner_id="p1"),
        ]
    )
    assert hits == set()


@pytest.mark.parametrize("status", ["converted", "disqualified", "closed"])
def test_closed_leads_do_not_count(status, so):
    hits = so(
        leads=[
            lead("l1", company="Acme", owner_id="u1", status=status),
            lead("l2", company="Acme", owner_id="u2"),
        ]
    )
    assert hits == set()


def test_a_lead_converted_into_a_deal_does_not_compete_with_it(so):
    hits = so(
        accounts=[account("a1", name="Acme")],
        leads=[lead("l1", company="Acme", owner_id="u2", converted_opportunity_id="o1")],
        opportunities=[deal("o1", account_id="a1", owner_id="u1", lead_id="l1")],
    )
    assert hits == set()


def test_closed_deals_do_not_count(so):
    hits = so(
        accounts=[account("a1", name="Acme")],
        leads=[lead("l1", company="Acme", owner_id="u1")],
        opportunities=[closed_deal("o1", account_id="a1", owner_id="u2")],
    )
    assert hits == set()


def test_every_record_in_a_three_way_conflict_is_reported_once(findings):
    snap = snapshot(
        leads=[
            lead("l1", company="Acme", owner_id="u1"),
            lead("l2", company="Acme", owner_id="u1"),
            lead("l3", company="acme inc", owner_id="u2"),
        ]
    )
    hits = [(f.record_id, f.reason) for f in findings(snap) if f.rule == RULE]
    assert sorted(hits) == [
        ("l1", "multiple_owners"),
        ("l2", "multiple_owners"),
        ("l3", "multiple_owners"),
    ]


@pytest.mark.parametrize("names", [("Inc.", "-"), ("Co.", "   "), ("Inc.", "Inc.")])
def test_names_that_normalise_to_nothing_do_not_make_unrelated_accounts_one_company(names, so):
    hits = so(
        accounts=[account("a1", name=names[0]), account("a2", name=names[1])],
        leads=[lead("l1", company="Acme", account_id="a1", owner_id="u1")],
        opportunities=[deal("o1", account_id="a2", owner_id="u2")],
    )
    assert hits == set()


def test_two_deals_on_accounts_named_inc_and_dash_are_not_one_company(so):
    hits = so(
        accounts=[account("a1", name="Inc."), account("a2", name="-")],
        opportunities=[
            deal("o1", account_id="a1", owner_id="u1"),
            deal("o2", account_id="a2", owner_id="u2", channel="partner", partner_id="p1"),
        ],
    )
    assert hits == set()


def test_leads_whose_company_normalises_to_nothing_are_not_one_company(so):
    hits = so(
        leads=[
            lead("l1", company="Inc.", owner_id="u1"),
            lead("l2", company="-", owner_id="u2", partner_id="p1"),
        ]
    )
    assert hits == set()


def test_an_account_named_only_by_a_legal_suffix_still_groups_its_own_records(so):
    hits = so(
        accounts=[account("a1", name="Inc.")],
        leads=[lead("l1", company="Co.", account_id="a1", owner_id="u1")],
        opportunities=[deal("o1", account_id="a1", owner_id="u2")],
    )
    assert hits == {("lead", "l1", "multiple_owners"), ("opportunity", "o1", "multiple_owners")}
