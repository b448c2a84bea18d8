"""The ``[connector]`` table: strict validation, every error naming the key."""

from __future__ import annotations

from typing import Any

import pytest
from sf_support import merge

from tsos_rules.connectors.salesforce import SalesforceSettings
from tsos_rules.connectors.salesforce.mapping import UserRules
from tsos_rules.errors import ConfigError
from tsos_rules.model import UserRole

BASE: dict[str, Any] = {
    "type": "salesforce",
    "auth": {
        "username": "tsos@acme.example",
        "consumer_key": "3MVG9abc",
        "private_key": {"file": "/etc/tsos/sf.key"},
    },
}


def parse(**overrides: Any) -> SalesforceSettings:
    return SalesforceSettings.parse(merge(BASE, overrides))


def test_defaults_are_jwt_and_standard_fields() -> None:
    settings = parse()
    assert settings.auth.flow == "jwt"
    assert settings.read.bulk_threshold == 10_000
    assert settings.read.watermark_lag_seconds == 60
    assert settings.budget.max_run_share == 0.10
    assert settings.write.object == "Task"
    assert settings.write.external_id_field == "Tsos_Fingerprint__c"
    mapping = settings.mapping
    assert mapping.sf("opportunity.close_date") == "CloseDate"
    assert mapping.sf("opportunity.next_step_date") is None
    assert mapping.stages["Negotiation/Review"] == "closing"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"colour": "red"}, "connector.colour: unknown setting"),
        ({"read": {"bulk_treshold": 5}}, "connector.read.bulk_treshold: unknown setting"),
        ({"budget": {"max_run_share": 1.5}}, "connector.budget.max_run_share: expected between 0"),
        ({"retry": {"max_retries": "3"}}, "connector.retry.max_retries: expected a whole number"),
        ({"auth": {"password": {"env": "X"}}}, "connector.auth.password: not used by flow = 'jwt'"),
        ({"auth": {"private_key": "-----BEGIN"}}, "connector.auth.private_key: give {env"),
        ({"auth": {"flow": "oauth"}}, "connector.auth.flow: expected one of jwt"),
        ({"auth": {"flow": "session"}}, "connector.auth.session_id: required"),
        ({"api_version": "v40.0"}, "connector.api_version: expected a version"),
        ({"my_domain": "acme my domain"}, "connector.my_domain: expected a host name"),
        (
            {"fields": {"next_stepdate": "X__c"}},
            "connector.fields.next_stepdate: unknown doctrine field",
        ),
        (
            {"fields": {"partner_of_record": "Opportunity.POR__c"}},
            "'Opportunity.POR__c' is not on Account",
        ),
        ({"fields": {"next_step_date": "Next Step"}}, "is not a Salesforce API name"),
        ({"values": {"stage": {"a": "b"}}}, "connector.values.stage: no value table"),
        ({"values": {"channel": {"Reseller": "indirect"}}}, "expected one of partner, direct"),
        ({"users": {"by": "team"}}, "connector.users.by: expected one of user_type"),
        ({"users": {"by": "field"}}, "connector.users.field: required"),
        ({"users": {"unmatched": "boss"}}, "connector.users.unmatched: expected one of"),
        ({"extra_fields": {"deal": ["X__c"]}}, "connector.extra_fields.deal: unknown record type"),
        ({"write": {"object": "Finding__c"}}, "connector.write.record_field: required"),
        ({"write": {"object": "Event"}}, "written as Tasks, not Events"),
        ({"type": "hubspot"}, "connector.type: expected 'salesforce'"),
    ],
)
def test_bad_settings_name_the_key(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("{", r"\{")):
        parse(**overrides)


def test_fields_accept_the_issue_short_names_and_switches() -> None:
    settings = parse(
        fields={
            "partner_of_record": "Account.Partner_of_Record__c",
            "next_step_date": "Opportunity.Next_Step_Date__c",
            "opportunity.partner_id": "",
            "lead.account_id": "Account__c",
        },
        stages={"Discovery": "business_driver"},
        extra_fields={"opportunity": ["Region__c"]},
    )
    mapping = settings.mapping
    assert mapping.sf("account.partner_of_record_id") == "Partner_of_Record__c"
    assert mapping.sf("opportunity.next_step_date") == "Next_Step_Date__c"
    assert mapping.sf("opportunity.partner_id") is None
    assert mapping.stages["Discovery"] == "business_driver"
    assert "Region__c" in mapping.select("opportunity", "Id")


@pytest.mark.parametrize(
    ("rules", "row", "role"),
    [
        ({}, {"UserType": "PowerPartner"}, UserRole.PARTNER),
        ({}, {"UserType": "Standard", "UserRole": {"Name": "AE"}}, UserRole.OTHER),
        (
            {"direct": ["AE*"]},
            {"UserType": "Standard", "UserRole": {"Name": "AE East"}},
            UserRole.DIRECT,
        ),
        (
            {"by": "profile", "channel": ["*channel*"]},
            {"UserType": "Standard", "Profile": {"Name": "Channel Sales"}},
            UserRole.CHANNEL,
        ),
        (
            {"by": "field", "field": "Team__c", "direct": ["Direct"]},
            {"UserType": "Standard", "Team__c": "direct"},
            UserRole.DIRECT,
        ),
        ({"by": "user_type", "unmatched": "direct"}, {"UserType": "Standard"}, UserRole.DIRECT),
        ({"direct": ["*"]}, {"UserType": "Guest"}, UserRole.OTHER),
    ],
)
def test_users_are_classified(rules: dict[str, Any], row: dict[str, Any], role: UserRole) -> None:
    from tsos_rules.config import SettingsTable

    assert UserRules.parse(SettingsTable(rules, "connector.users")).classify(row) is role
