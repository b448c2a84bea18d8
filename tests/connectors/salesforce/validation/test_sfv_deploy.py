"""``validation-rules --deploy/--check-only/--diff/--prune/--inactive`` against the fake org's
Metadata API (SOAP shapes from the Metadata API Developer Guide), through the real CLI."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from sf_support import Org

from tsos_rules.connectors.salesforce.validation import generate
from tsos_rules.connectors.salesforce.validation.deploy import deploy
from tsos_rules.connectors.salesforce.validation.mdapi import MetadataApi
from tsos_rules.connectors.salesforce.validation.package import rule_fields
from tsos_rules.errors import RetriableConnectorError
from tsos_rules.testing.fake_metadata import FakeMetadataApi

MAPPING = """
[connector.fields]
next_step_date = "Next_Step_Date__c"
"""


def _config(org: Org, tmp_path: Path, extra: str = "") -> Path:
    creds = org.creds
    text = f"""{extra}
[connector]
type = "salesforce"
[connector.auth]
flow = "jwt"
username = "{creds.username}"
consumer_key = "{creds.consumer_key}"
private_key = {{file = "{org.key_file}"}}
{MAPPING}"""
    path = tmp_path / "tsos-rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _run(config: Path, *args: str) -> tuple[int, str, str]:
    from tsos_rules.cli import main

    result = CliRunner().invoke(
        main, ["salesforce", "validation-rules", "--config", str(config), *args]
    )
    return result.exit_code, result.stdout, result.stderr


def _generated(tmp_path: Path, org: Org, extra: str = "") -> dict[str, dict[str, str]]:
    from tsos_rules.config import load_config

    rules = generate(load_config(_config(org, tmp_path, extra))).rules
    return {rule.name: rule_fields(rule, active=True) for rule in rules}


@pytest.fixture
def metadata(org: Org) -> FakeMetadataApi:
    org.fake.metadata.polls = 0  # answered done at once: the CLI sleeps for real between polls
    return org.fake.metadata


def test_deploy_saves_rules_permission_and_permission_set(
    org: Org, tmp_path: Path, metadata: FakeMetadataApi
) -> None:
    metadata.rules["Their_Rule"] = {"active": "true", "errorConditionFormula": "FALSE"}
    code, out, err = _run(_config(org, tmp_path), "--deploy")
    assert code == 0, err
    wanted = _generated(tmp_path, org)
    assert set(metadata.rules) == {*wanted, "Their_Rule"}
    for name, fields in wanted.items():
        assert metadata.rules[name] == fields
    assert "Tsos_Rules_Bypass" in metadata.custom_permissions
    assert "<name>Tsos_Rules_Bypass</name>" in metadata.permission_sets["Tsos_Rules_Bypass"]
    options = metadata.deploy_options[-1]
    assert options["checkOnly"] == "false"
    assert options["rollbackOnError"] == "true" and options["singlePackage"] == "true"
    assert "Succeeded" in out and "deployed" in out
    for token in org.fake.issued:  # the session id travels in the SOAP header, never in output
        assert token not in out + err


def test_check_only_sends_check_only_and_saves_nothing(
    org: Org, tmp_path: Path, metadata: FakeMetadataApi
) -> None:
    code, out, err = _run(_config(org, tmp_path), "--deploy", "--check-only")
    assert code == 0, err
    assert metadata.deploy_options[-1]["checkOnly"] == "true"
    assert metadata.rules == {} and metadata.custom_permissions == {}
    assert "nothing was saved" in out


def test_a_component_failure_is_listed_and_exits_3(
    org: Org, tmp_path: Path, metadata: FakeMetadataApi
) -> None:
    metadata.refuse(
        "Opportunity.Tsos_Commit_Stage",
        "Field Next_Step_Date__c does not exist. Check spelling.",
        line=42,
    )
    code, _, err = _run(_config(org, tmp_path), "--deploy")
    assert code == 3
    assert "Failed, 1 component failure(s)" in err
    assert (
        "objects/Opportunity.object line 42:5 (ValidationRule Opportunity.Tsos_Commit_Stage)" in err
    )
    assert "Field Next_Step_Date__c does not exist" in err
    assert "nothing was saved" in err and "Traceback" not in err
    assert metadata.rules == {}  # rolled back whole


def test_diff_shows_a_changed_formula_and_writes_nothing(
    org: Org, tmp_path: Path, metadata: FakeMetadataApi
) -> None:
    # The org holds the rules generated for a calendar fiscal year, plus a stale tsos rule.
    metadata.rules.update(_generated(tmp_path, org, "[org]\nfiscal_year_start_month = 1\n"))
    metadata.rules["Tsos_Retired"] = {"active": "true", "errorConditionFormula": "FALSE"}
    config = _config(org, tmp_path, "[org]\nfiscal_year_start_month = 2\n")
    before = {k: dict(v) for k, v in metadata.rules.items()}
    code, out, err = _run(config, "--diff")
    assert code == 0, err
    assert "Tsos_Commit_Close_Date: changed" in out
    assert "--- org: Opportunity.Tsos_Commit_Close_Date" in out
    minus = [line for line in out.splitlines() if line.startswith("  -") and "CASE" in line]
    plus = [line for line in out.splitlines() if line.startswith("  +") and "CASE" in line]
    assert minus and plus and minus != plus
    assert "Tsos_Close_Date_Required: unchanged" in out
    assert "Tsos_Retired: in the org, no longer generated" in out
    assert metadata.rules == before and metadata.deploy_options == []


def test_prune_deletes_only_stale_tsos_rules(
    org: Org, tmp_path: Path, metadata: FakeMetadataApi
) -> None:
    metadata.rules["Tsos_Retired"] = {"active": "true", "errorConditionFormula": "FALSE"}
    metadata.rules["Their_Rule"] = {"active": "true", "errorConditionFormula": "FALSE"}
    config = _config(org, tmp_path)
    code, _, err = _run(config, "--deploy")
    assert code == 0, err
    assert "Tsos_Retired" in metadata.rules  # no --prune: left alone
    code, out, err = _run(config, "--deploy", "--prune")
    assert code == 0, err
    assert "Tsos_Retired" not in metadata.rules and "Their_Rule" in metadata.rules
    assert "deleted: Opportunity.Tsos_Retired" in out
    with zipfile.ZipFile(io.BytesIO(metadata.deployed_zips[-1])) as archive:
        destructive = archive.read("destructiveChanges.xml").decode()
    assert "<members>Opportunity.Tsos_Retired</members>" in destructive
    assert "Their_Rule" not in destructive and "Tsos_Close_Date_Required" not in destructive


def test_inactive_deploys_every_rule_switched_off(
    org: Org, tmp_path: Path, metadata: FakeMetadataApi
) -> None:
    code, out, err = _run(_config(org, tmp_path), "--deploy", "--inactive")
    assert code == 0, err
    with zipfile.ZipFile(io.BytesIO(metadata.deployed_zips[-1])) as archive:
        obj = archive.read("objects/Opportunity.object").decode()
    assert "<active>false</active>" in obj and "<active>true</active>" not in obj
    assert metadata.rules and all(r["active"] == "false" for r in metadata.rules.values())
    assert "(inactive)" in out


def test_an_expired_session_logs_in_again_once(
    org: Org, tmp_path: Path, metadata: FakeMetadataApi
) -> None:
    connector = org.connector(fields={"next_step_date": "Opportunity.Next_Step_Date__c"})
    api = MetadataApi(connector.client)
    assert api.list_metadata("ValidationRule") == []
    org.fake.expire_sessions()
    rules = generate({"connector": {"type": "salesforce"}}).rules
    done = deploy(api, rules, active=True, check_only=False, prune=False)
    assert done.result.status == "Succeeded" and connector.auth.logins == 2


def test_polling_stops_at_the_timeout(org: Org) -> None:
    org.fake.metadata.polls = 1_000
    connector = org.connector()
    clock = [0.0]
    api = MetadataApi(connector.client, poll_seconds=2.0, timeout_seconds=30.0)
    api.sleep = lambda seconds: clock.__setitem__(0, clock[0] + seconds)
    api.monotonic = lambda: clock[0]
    rules = generate({"connector": {"type": "salesforce"}}).rules
    with pytest.raises(RetriableConnectorError, match=r"deploy 0Af\w+: not done after 30 s"):
        deploy(api, rules, active=True, check_only=False, prune=False)
    assert clock[0] <= 30.0


def test_check_only_without_deploy_is_a_usage_error(org: Org, tmp_path: Path) -> None:
    code, _, err = _run(_config(org, tmp_path), "--out", str(tmp_path / "src"), "--check-only")
    assert code == 2 and "--deploy" in err
    assert not (tmp_path / "src").exists()


def test_a_refused_login_exits_3_without_a_traceback_or_a_secret(
    org: Org, tmp_path: Path, metadata: FakeMetadataApi
) -> None:
    config = _config(org, tmp_path)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(org.creds.consumer_key, "3MVG9unknown"), encoding="utf-8")
    code, _, err = _run(config, "--deploy")
    assert code == 3 and "Traceback" not in err
    assert "BEGIN PRIVATE KEY" not in err and metadata.deploy_options == []
