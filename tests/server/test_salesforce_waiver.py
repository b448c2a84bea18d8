"""``/v1/salesforce/check`` with ``[connector.exemptions]``: the waiver the deal holds before the
save exempts its findings (never a channel deal without its partner); a waiver set by the save
itself does not waive that save."""

from __future__ import annotations

from typing import Any

import pytest
from test_salesforce import OPPORTUNITY, RELATED

from tsos_rules.config import Config
from tsos_rules.connectors.salesforce.inline import SalesforceInline
from tsos_rules.inline import ChangeChecker, ChangeError

CONFIG = Config.from_mapping(
    {
        "connector": {
            "type": "salesforce",
            "exemptions": {
                "until_field": "Tsos_Exempt_Until__c",
                "reason_field": "Tsos_Exempt_Reason__c",
                "rules_field": "Tsos_Exempt_Rules__c",
            },
        }
    }
)
HISTORY_FREE = [r for r in RELATED if r["attributes"]["type"] != "OpportunityHistory"]
WAIVER = {
    "Tsos_Exempt_Until__c": "2026-12-31",
    "Tsos_Exempt_Reason__c": "merger: legal hold",
    "Tsos_Exempt_Rules__c": "tsos.close-date-*",
}


@pytest.fixture(scope="module")
def checker() -> Any:
    built = ChangeChecker.from_config(CONFIG)
    yield built
    built.close()


def judge(checker: Any, before: Any, after: Any) -> Any:
    adapter = SalesforceInline.from_config(CONFIG)
    body = {"before": before, "after": after, "related": HISTORY_FREE, "as_of": "2026-11-24"}
    return checker.judge(adapter.adapt(body).change)


def test_a_waiver_on_the_stored_deal_lets_an_unapproved_move_through(checker: Any) -> None:
    waived = {**OPPORTUNITY, **WAIVER}
    decision = judge(checker, waived, {**waived, "CloseDate": "2026-12-20"})
    assert decision.allowed
    (listed,) = decision.to_dict()["exempt"]
    assert listed["reason"] == "moved_unapproved"
    assert listed["exemption"]["approver"] == "crm:Tsos_Exempt_Until__c"
    assert listed["exemption"]["reason"] == "merger: legal hold"


def test_a_waiver_set_by_the_save_itself_does_not_waive_it(checker: Any) -> None:
    moved = {**OPPORTUNITY, **WAIVER, "CloseDate": "2026-12-20"}
    decision = judge(checker, OPPORTUNITY, moved)
    assert {f.reason for f in decision.blocking} == {"moved_unapproved"}


def test_removing_the_partner_is_refused_even_under_a_waiver_for_every_rule(
    checker: Any,
) -> None:
    waived = {**OPPORTUNITY, **WAIVER, "Tsos_Exempt_Rules__c": None}
    decision = judge(checker, waived, {**waived, "PartnerAccountId": None})
    assert not decision.allowed
    assert "no_partner" in {f.reason for f in decision.blocking}


def test_a_bad_waiver_date_names_the_salesforce_field() -> None:
    adapter = SalesforceInline.from_config(CONFIG)
    bad = {**OPPORTUNITY, "Tsos_Exempt_Until__c": "soon"}
    with pytest.raises(ChangeError, match=r"before\.Tsos_Exempt_Until__c"):
        adapter.adapt({"before": bad, "after": bad, "as_of": "2026-11-24"})
