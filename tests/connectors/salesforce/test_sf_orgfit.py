"""Describe first: an org without partner relationship management or Team Selling still syncs.

The default mapping reads ``Opportunity.PartnerAccountId``, ``Lead.PartnerAccountId`` and
``Account.IsPartner`` (PRM only) and, with ``read.team_members``, ``OpportunityTeamMember``
(Team Selling only). Such an org used to fail its first query with INVALID_FIELD.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sf_support import NOW, Org, add_custom_fields

from tsos_rules.errors import FatalConnectorError
from tsos_rules.sync.job import run_sync
from tsos_rules.testing.fake_salesforce import FakeSalesforce

pytestmark = pytest.mark.usefixtures("isolated_env")

LEFT_OUT = (
    "Opportunity.PartnerAccountId",
    "Lead.PartnerAccountId",
    "Account.IsPartner",
    "OpportunityTeamMember",
)


@pytest.fixture
def fake() -> Iterator[FakeSalesforce]:
    """An org with neither partner relationship management nor Team Selling."""
    org = FakeSalesforce(now=NOW, partner_relationship_management=False, team_selling=False)
    add_custom_fields(org)
    with org.mock():
        yield org


def seed_without_prm(fake: FakeSalesforce) -> dict[str, str]:
    fake.now = NOW - dt.timedelta(days=7)
    cara = fake.add_user("Cara Channel", role="Channel Manager")
    acme = fake.insert("Account", Name="Acme VAR")
    boeing = fake.insert("Account", Name="Boeing", Partner_of_Record__c=acme)
    deal = fake.insert(
        "Opportunity",
        Name="Boeing fleet",
        AccountId=boeing,
        OwnerId=cara,
        StageName="Prospecting",
        CloseDate=NOW.date() + dt.timedelta(days=30),
        NextStep="Discovery call",
        Next_Step_Date__c=NOW.date() + dt.timedelta(days=3),
        by=cara,
    )
    # Partner-sourced, open, and no way to name the partner on the lead itself in this org.
    lead = fake.insert(
        "Lead", Company="Airbus", LastName="Jones", OwnerId=cara, LeadSource="Partner Referral"
    )
    fake.now = NOW
    return {"deal": deal, "lead": lead, "acme": acme}


def left_out_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "is not in this org" in r.getMessage()]


def test_a_first_sync_of_an_org_without_prm_or_team_selling_succeeds_and_warns_once(
    org: Org, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = seed_without_prm(org.fake)
    connector = org.connector(read={"team_members": True, "watermark_lag_seconds": 0})
    config = {
        "connector": org.table(),
        "sync": {"mode": "annotate", "daily_full": False},
        "state": {"path": str(tmp_path / "state.sqlite")},
    }
    with caplog.at_level(logging.WARNING, logger="tsos_rules"):
        summary = run_sync(config, connector=connector, as_of=NOW.date())
        # a second read on the same connector (same run) describes nothing and warns nothing
        connector.read(None, until=NOW)
    assert summary.exit_code in (0, 1)
    assert org.fake.count("describe") == 1
    warnings = left_out_warnings(caplog)
    assert len(warnings) == len(LEFT_OUT)
    for part in LEFT_OUT:
        assert sum(part in w for w in warnings) == 1, (part, warnings)
    # the SOQL never names what the org lacks
    soql = " ".join(q for q, _ in org.fake.query_log)
    assert "PartnerAccountId" not in soql and "IsPartner" not in soql
    assert "OpportunityTeamMember" not in soql
    # what it read is judged: the partner-sourced lead names no partner of record
    snap = connector.read(None, until=NOW).snapshot
    (lead,) = snap.leads
    assert (lead.id, lead.partner_id, lead.source) == (ids["lead"], None, "partner_referral")
    (deal,) = snap.opportunities
    assert deal.partner_id is None and deal.team_user_ids == ()
    assert summary.findings_new >= 1


def test_a_required_field_the_org_lacks_fails_before_any_query(org: Org) -> None:
    seed_without_prm(org.fake)
    org.fake.remove_field("Opportunity", "Next_Step_Date__c")
    with pytest.raises(FatalConnectorError) as caught:
        org.connector().read(None, until=NOW)
    message = str(caught.value)
    assert "Opportunity.Next_Step_Date__c (mapping opportunity.next_step_date)" in message
    assert "connectors check salesforce" in message
    assert "PartnerAccountId" not in message  # optional parts are not errors
    assert org.fake.count("query") == 0


def test_an_optional_field_mapped_to_a_custom_field_is_required(org: Org) -> None:
    """Only the PRM default may be left out: a custom field the config names must exist."""
    with pytest.raises(FatalConnectorError, match=r"Opportunity\.Partner__c \(mapping "):
        org.connector(fields={"opportunity.partner_id": "Opportunity.Partner__c"}).read(
            None, until=NOW
        )


def test_connectors_check_warns_about_optional_parts_instead_of_failing(org: Org) -> None:
    problems = org.connector(read={"team_members": True}).check()
    assert [p for p in problems if p.level == "error"] == []
    warned = {p.where for p in problems if p.level == "warning" and "not in this org" in p.message}
    assert warned == set(LEFT_OUT)
