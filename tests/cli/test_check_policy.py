"""``check`` honours the team's policy: a finding under an exemption (``[[exemptions]]`` or the
snapshot's CRM-field ``exemptions``) or of a rule in shadow mode is shown with its status, in
text and JSON, and does not make the exit code 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from tsos_rules.testing import deal, snapshot

pytestmark = pytest.mark.usefixtures("isolated_env")

EXEMPTION = """
[[exemptions]]
rule = "tsos.next-step-*"
record_type = "opportunity"
record_id = "o1"
reason = "buyer on leave until January"
approver = "Dana (RVP)"
created = 2026-11-01
expires = 2027-01-15
"""


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "tsos.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _blocked() -> dict:
    return snapshot(opportunities=[deal("o1", next_step="TBD")])


def test_an_exempt_block_is_listed_as_exempt_and_exits_0(cli, write_json, tmp_path):
    name = write_json(_blocked())
    assert cli("check", name, "--as-of", "2026-11-24").code == 1
    config = _config(tmp_path, EXEMPTION)
    text = cli("check", name, "--as-of", "2026-11-24", "--config", config)
    assert text.code == 0, text.out + text.err
    assert "[exempt config:1 until 2027-01-15 (approved by Dana (RVP))]" in text.out
    assert "not counted: 1 exempt" in text.out
    shown = cli("check", name, "--as-of", "2026-11-24", "--config", config, "--format", "json")
    assert shown.code == 0
    (finding,) = [f for f in shown.json()["findings"] if f["rule"] == "tsos.next-step-required"]
    assert finding["status"] == "exempt"
    assert finding["exemption"] == {
        "id": "config:1",
        "source": "config",
        "reason": "buyer on leave until January",
        "approver": "Dana (RVP)",
        "expires": "2027-01-15",
    }
    assert shown.json()["summary"]["exempt"] == 1


def test_an_expired_exemption_no_longer_waives(cli, write_json, tmp_path):
    name = write_json(_blocked())
    config = _config(tmp_path, EXEMPTION)
    assert cli("check", name, "--as-of", "2027-01-16", "--config", config).code == 1


def test_a_crm_field_exemption_in_the_snapshot_is_honoured(cli, write_json):
    document = _blocked()
    document["exemptions"] = [
        {
            "record_type": "opportunity",
            "record_id": "o1",
            "until": "2026-12-31",
            "reason": "merger",
            "field": "Tsos_Exempt_Until__c",
        }
    ]
    shown = cli("check", write_json(document), "--as-of", "2026-11-24", "--format", "json")
    assert shown.code == 0
    statuses = {f["rule"]: f.get("status") for f in shown.json()["findings"]}
    assert statuses["tsos.next-step-required"] == "exempt"
    waiver = shown.json()["findings"][0]["exemption"]
    assert waiver["approver"] == "crm:Tsos_Exempt_Until__c" and waiver["source"] == "crm"


def test_a_crm_date_beyond_the_maximum_is_a_warning_and_not_honoured(cli, write_json):
    document = _blocked()
    document["exemptions"] = [
        {"record_type": "opportunity", "record_id": "o1", "until": "2027-12-31", "field": "U__c"}
    ]
    result = cli("check", write_json(document), "--as-of", "2026-11-24")
    assert result.code == 1
    assert "CRM exemption not honoured: opportunity o1: U__c 2027-12-31" in result.err


def test_a_shadow_rule_is_listed_as_shadow_and_exits_0(cli, write_json, tmp_path):
    config = _config(tmp_path, '[rules.rollout]\n"tsos.next-step-*" = "shadow"\n')
    name = write_json(_blocked())
    text = cli("check", name, "--as-of", "2026-11-24", "--config", config)
    assert text.code == 0
    assert "tsos.next-step-required  (placeholder)  [shadow]" in text.out
    shown = cli("check", name, "--as-of", "2026-11-24", "--config", config, "--format", "json")
    assert {f.get("status") for f in shown.json()["findings"]} >= {"shadow"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (EXEMPTION.replace("tsos.next-step-*", "tsos.nope"), "exemptions[1].rule: 'tsos.nope'"),
        (
            EXEMPTION.replace("expires = 2027-01-15", "expires = 2027-06-01"),
            "exemptions[1].expires",
        ),
        (
            EXEMPTION.replace('reason = "buyer on leave until January"\n', ""),
            "exemptions[1].reason: required",
        ),
        (EXEMPTION.replace('approver = "Dana (RVP)"\n', ""), "exemptions[1].approver: required"),
        (
            '[rules.rollout]\n"tsos.nope" = "shadow"\n',
            "rules.rollout.tsos.nope: matches no loaded rule",
        ),
        ('[rules.rollout]\n"tsos.*" = "loud"\n', "rules.rollout.tsos.*: expected"),
    ],
)
def test_bad_policy_config_exits_2_naming_the_field(cli, write_json, tmp_path, text, message):
    name = write_json(_blocked())
    result = cli("check", name, "--config", _config(tmp_path, text))
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err
