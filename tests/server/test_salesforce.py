"""Salesforce: sObjects as Apex JSON.serialize writes them, from a screen flow or an LWC."""

from __future__ import annotations

from typing import Any

import pytest

from inline_support import AUTH
from tsos_rules.connectors.salesforce import inline
from tsos_rules.inline import ChangeError


def sobject(kind: str, **fields: Any) -> dict[str, Any]:
    record_id = fields.get("Id", "x")
    return {
        "attributes": {"type": kind, "url": f"/services/data/v61.0/sobjects/{kind}/{record_id}"},
        **fields,
    }


OPPORTUNITY = sobject(
    "Opportunity",
    Id="006A",
    Name="Boeing fleet renewal",
    AccountId="001A",
    OwnerId="005C",
    PartnerAccountId="001P",
    StageName="Closing",
    Probability=80,
    Amount=120000,
    CloseDate="2026-12-15",
    ForecastCategoryName="Commit",
    IsClosed=False,
    IsWon=False,
    NextStep="Legal review of the MSA",
    Next_Step_Date__c="2026-11-28",
    LastStageChangeDate="2026-11-10T12:00:00.000+0000",
)

RELATED = [
    sobject("Account", Id="001A", Name="Boeing", Partner_of_Record__c="001P", IsPartner=False),
    sobject("Account", Id="001P", Name="Acme VAR", IsPartner=True, Partner_Tier__c="Premier"),
    sobject("User", Id="005C", Name="Dana", UserType="Standard", Tsos_Role__c="Channel"),
    sobject("User", Id="005D", Name="Ray", UserType="Standard", Tsos_Role__c="Direct"),
    sobject("User", Id="005P", Name="Sam", UserType="PowerPartner"),
    sobject(
        "OpportunityHistory",
        Id="008A",
        OpportunityId="006A",
        PrevCloseDate="2026-11-30",
        CloseDate="2026-12-15",
        StageName="Closing",
        ForecastCategory="Forecast",
        CreatedDate="2026-11-20T10:00:00.000+0000",
        CreatedById="005C",
    ),
    sobject(
        "OpportunityHistory",
        Id="008B",
        OpportunityId="006A",
        PrevCloseDate=None,
        CloseDate="2026-11-30",
        StageName="Engagement",
    ),
    sobject(
        "Task",
        Id="00TA",
        WhatId="006A",
        AccountId="001A",
        OwnerId="005C",
        Subject="Call",
        ActivityDate="2026-11-26",
        IsClosed=False,
    ),
    sobject("OpportunityTeamMember", Id="00qA", OpportunityId="006A", UserId="005D"),
]


def request(before: Any, after: Any, related: Any = RELATED, **extra: Any) -> inline.CheckRequest:
    return inline.adapt(
        {"before": before, "after": after, "related": related, "as_of": "2026-11-24", **extra}
    )


def test_sobjects_map_onto_the_snapshot():
    change = request(None, OPPORTUNITY).change
    after = change.after
    assert (after.id, after.partner_id, after.stage, after.forecast_category.value) == (
        "006A",
        "001P",
        "closing",
        "commit",
    )
    assert after.team_user_ids == ("005D",)
    assert after.stage_changed_at.isoformat() == "2026-11-10T12:00:00+00:00"
    context = change.context
    assert [p.id for p in context.partners] == ["001P"]
    assert {u.id: u.role.value for u in context.users} == {
        "005C": "channel",
        "005D": "direct",
        "005P": "partner",
    }
    [history] = context.close_date_changes  # the creation row moved nothing
    assert (history.old.isoformat(), history.forecast_category.value) == ("2026-11-30", "commit")
    assert context.activities[0].status == "open"


def test_the_unapproved_history_and_a_direct_team_member_are_judged(checker):
    decision = checker.judge(request(None, OPPORTUNITY).change)
    reasons = {(f.rule, f.reason) for f in decision.findings}
    assert ("tsos.close-date-locked", "moved_unapproved") in reasons
    assert ("tsos.direct-rep-on-channel-deal", "direct_rep_on_team") in reasons


def test_a_close_date_move_with_its_approval_field(checker):
    history_free = [r for r in RELATED if r["attributes"]["type"] != "OpportunityHistory"]
    moved = {**OPPORTUNITY, "CloseDate": "2026-12-20"}
    refused = checker.judge(request(OPPORTUNITY, moved, history_free).change)
    assert {f.reason for f in refused.blocking} == {"moved_unapproved"}
    approved = {**moved, "Close_Date_Approved_By__c": "005M"}
    assert checker.judge(request(OPPORTUNITY, approved, history_free).change).allowed


def test_handing_the_deal_to_a_direct_rep_without_consent(checker):
    history_free = [r for r in RELATED if r["attributes"]["type"] != "OpportunityHistory"]
    handed = {**OPPORTUNITY, "OwnerId": "005D"}
    refused = checker.judge(request(OPPORTUNITY, handed, history_free).change)
    assert "direct_owner" in {f.reason for f in refused.blocking}
    consented = {
        **handed,
        "Partner_Consent_By__c": "Sam at Acme",
        "Partner_Consent_At__c": "2026-11-22T10:00:00.000+0000",
        "Partner_Consent_Reason__c": "Credit Limit",
    }
    decision = checker.judge(request(OPPORTUNITY, consented, history_free).change)
    assert decision.allowed
    assert "info" not in {f.severity.value for f in decision.findings}  # shown when asked
    shown = checker.judge(request(OPPORTUNITY, consented, history_free).change, include_info=True)
    assert "direct_owner_with_consent" in {f.reason for f in shown.findings}


def test_deleting_a_future_prospect_lead(checker):
    lead = sobject("Lead", Id="00QA", Company="Grumman", Status="Qualified", Outcome__c="Future")
    decision = checker.judge(request(lead, None, []).change)
    assert [(f.rule, f.reason) for f in decision.findings] == [
        ("tsos.lead-outcome-recorded", "deleted_kept_lead")
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"after": {**OPPORTUNITY, "CloseDate": "15/12/2026"}}, "after.CloseDate"),
        ({"after": {**OPPORTUNITY, "Channel__c": "Resale"}}, "after.Channel__c"),
        ({"after": {**OPPORTUNITY, "Probability": "high"}}, "after.Probability"),
        ({"after": {"Id": "006A"}}, "after.attributes.type"),
        ({"after": sobject("Contract", Id="800A")}, "record_type"),
        ({"after": OPPORTUNITY, "related": {"a": 1}}, "related"),
        ({"after": OPPORTUNITY, "related": [{"Id": "001A"}]}, "related[0].attributes.type"),
        (
            {"after": OPPORTUNITY, "related": [sobject("Case", Id="500A")]},
            "related[0].attributes.type",
        ),
        (
            {
                "after": OPPORTUNITY,
                "related": [RELATED[0], sobject("User", Id="005X", Tsos_Role__c="Boss")],
            },
            "related[1].Tsos_Role__c",
        ),
        ({"after": {**OPPORTUNITY, "Id": None}}, "after.Id"),
        ({"before": None, "after": None}, "after"),
    ],
)
def test_errors_name_the_salesforce_field(body, field):
    with pytest.raises(ChangeError) as caught:
        inline.adapt(body)
    assert caught.value.field == field


def test_field_names_can_be_remapped():
    custom = {**OPPORTUNITY, "Next_Step_Due__c": "2026-12-01"}
    del custom["Next_Step_Date__c"]
    change = inline.adapt(
        {"after": custom}, {"opportunity": {"next_step_date": "Next_Step_Due__c"}}
    ).change
    assert change.after.next_step_date.isoformat() == "2026-12-01"


def test_over_http_with_a_flow_friendly_message(client):
    body = {
        "before": OPPORTUNITY,
        "after": {**OPPORTUNITY, "PartnerAccountId": None},
        "related": RELATED[:3],
        "as_of": "2026-11-24",
    }
    response = client.post("/v1/salesforce/check", json=body, headers=AUTH)
    assert response.status_code == 200
    payload = response.json()
    assert payload["allowed"] is False
    assert "no partner attached" in payload["message"]
    bad = client.post(
        "/v1/salesforce/check", json={"after": {**OPPORTUNITY, "CloseDate": 5}}, headers=AUTH
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "after.CloseDate"
