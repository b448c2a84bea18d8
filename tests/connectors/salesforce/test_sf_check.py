"""``tsos-rules connectors check salesforce``: the mapping validated against describe()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sf_support import Org

from tsos_rules.cli import run
from tsos_rules.connectors.salesforce.connector import Problem

pytestmark = pytest.mark.usefixtures("isolated_env")

LADDER = [
    "mql",
    "business_driver",
    "sql",
    "engagement",
    "single_sales_opportunity",
    "date_locked",
    "draft_proposal",
    "trial_close",
    "closing",
    "commitment",
    "closed_won",
    "closed_lost",
]


def errors(problems: list[Problem]) -> list[str]:
    return [f"{p.where}: {p.message}" for p in problems if p.level == "error"]


def test_a_matching_org_passes_in_one_api_call(org: Org) -> None:
    connector = org.connector()
    problems = connector.check(LADDER)
    assert errors(problems) == []
    assert connector.api_calls == 1  # every describe() in one Composite call


def test_missing_and_wrong_typed_fields_are_named(org: Org) -> None:
    fake = org.fake
    fake.remove_field("Opportunity", "Next_Step_Date__c")
    fake.add_field("Lead", "Distributed_At__c", "string")
    fake.schema["Task"]["Tsos_Fingerprint__c"].unique = False
    found = errors(org.connector().check(LADDER))
    assert found == [
        "Opportunity.Next_Step_Date__c: field not found (mapping opportunity.next_step_date; "
        'switch it off with opportunity.next_step_date = "")',
        "Lead.Distributed_At__c: is a string field, expected datetime or date "
        "(mapping lead.distributed_at)",
        "Task.Tsos_Fingerprint__c: must be Unique, or a re-run could create a second task "
        "for a finding",
    ]


def test_unmapped_stages_and_users_are_warned_about(org: Org) -> None:
    fake = org.fake
    fake.schema["Opportunity"]["StageName"].picklist += ("Legal Review",)
    connector = org.connector(users={"direct": [], "channel": []}, stages={"Legal Review": "legal"})
    problems = connector.check(LADDER)
    assert errors(problems) == ["stages.'Legal Review': 'legal' is not on org.stage_ladder"]
    warnings = [str(p) for p in problems if p.level == "warning"]
    assert any("no direct/channel rule" in w for w in warnings)


def test_the_cli_reports_and_exits_2_on_errors(
    org: Org, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    org.fake.remove_field("Opportunity", "Next_Step_Date__c")
    config = tmp_path / "tsos.toml"
    config.write_text(
        f"""
[connector]
type = "salesforce"

[connector.auth]
username = "{org.creds.username}"
consumer_key = "{org.creds.consumer_key}"
private_key = {{ file = "{org.key_file}" }}

[connector.fields]
partner_of_record = "Account.Partner_of_Record__c"
next_step_date = "Opportunity.Next_Step_Date__c"

[connector.users]
direct = ["Direct*"]
"""
    )
    assert run(["connectors", "check", "salesforce", "--config", str(config)]) == 2
    out = capsys.readouterr().out
    assert "error: Opportunity.Next_Step_Date__c: field not found" in out
    assert "salesforce: not usable (1 error(s)" in out
    org.fake.add_field("Opportunity", "Next_Step_Date__c", "date")
    code = run(["connectors", "check", "salesforce", "--config", str(config), "--format", "json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["connector"] == "salesforce"


def test_the_cli_refuses_another_connector_type(tmp_path: Path) -> None:
    config = tmp_path / "tsos.toml"
    config.write_text('[connector]\ntype = "local"\n')
    assert run(["connectors", "check", "salesforce", "--config", str(config)]) == 2
