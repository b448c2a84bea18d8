"""``salesforce validation-rules``: SFDX files, limits refused with exit 2, skipped rules named."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from tsos_rules.connectors.salesforce.validation import generate
from tsos_rules.connectors.salesforce.validation.command import validation_rules
from tsos_rules.errors import ConfigError

NS = {"md": "http://soap.sforce.com/2006/04/metadata"}
CONFIG = """
[connector]
type = "salesforce"
[connector.fields]
next_step_date = "Next_Step_Date__c"
channel = "Channel__c"
[connector.approvals]
source = "field"
field = "Close_Date_Approved_By__c"
"""


def _run(tmp_path: Path, config: str, *args: str) -> tuple[int, str, str]:
    path = tmp_path / "tsos.toml"
    path.write_text(config, encoding="utf-8")
    result = CliRunner().invoke(
        validation_rules, ["--out", str(tmp_path / "src"), "--config", str(path), *args]
    )
    return result.exit_code, result.stdout, result.stderr


def test_writes_sfdx_source_with_the_doctrine_and_the_bypass(tmp_path: Path) -> None:
    code, out, _ = _run(tmp_path, CONFIG)
    assert code == 0, out
    rules_dir = tmp_path / "src/objects/Opportunity/validationRules"
    path = rules_dir / "Tsos_Close_Date_Locked.validationRule-meta.xml"
    root = ET.parse(path).getroot()
    assert root.tag == f"{{{NS['md']}}}ValidationRule"
    text = {child.tag.split("}")[1]: child.text for child in root}
    assert text["fullName"] == "Tsos_Close_Date_Locked"
    assert text["active"] == "true"
    assert text["errorDisplayField"] == "CloseDate"
    assert "tsos.close-date-locked (moved_unapproved), approximate" in text["description"]
    assert "Lock down date" in text["description"]
    formula = text["errorConditionFormula"] or ""
    assert formula.startswith("AND(NOT($Permission.Tsos_Rules_Bypass), ")
    assert "ISCHANGED(Close_Date_Approved_By__c)" in formula
    assert "Close_Date_Approved_By__c" in (text["errorMessage"] or "")
    permission = tmp_path / "src/customPermissions/Tsos_Rules_Bypass.customPermission-meta.xml"
    assert ET.parse(permission).getroot().find("md:label", NS) is not None
    pset = ET.parse(tmp_path / "src/permissionsets/Tsos_Rules_Bypass.permissionset-meta.xml")
    grant = pset.getroot().find("md:customPermissions", NS)
    assert grant is not None and grant.findtext("md:name", namespaces=NS) == "Tsos_Rules_Bypass"
    assert grant.findtext("md:enabled", namespaces=NS) == "true"
    assert "Tsos_Close_Date_Required: tsos.close-date-locked (missing, in_past), exact" in out
    assert "stricter: an open Task or Event" in out


def test_inactive_and_stale_rules_removed(tmp_path: Path) -> None:
    stale = tmp_path / "src/objects/Opportunity/validationRules/Tsos_Old.validationRule-meta.xml"
    stale.parent.mkdir(parents=True)
    stale.write_text("<old/>", encoding="utf-8")
    mine = stale.parent / "Their_Rule.validationRule-meta.xml"
    mine.write_text("<theirs/>", encoding="utf-8")
    code, out, _ = _run(tmp_path, CONFIG, "--inactive")
    assert code == 0, out
    assert not stale.exists() and mine.exists()
    for path in stale.parent.glob("Tsos_*"):
        assert "<active>false</active>" in path.read_text(encoding="utf-8")


def test_a_huge_placeholder_list_is_refused_naming_rule_and_setting(tmp_path: Path) -> None:
    words = ", ".join(f'"placeholder number {i}"' for i in range(200))
    code, _, err = _run(tmp_path, f"[org]\nplaceholders = [{words}]\n" + CONFIG)
    assert code == 2
    assert "Tsos_Next_Step_Required (tsos.next-step-required)" in err
    assert "org.placeholders" in err and "3,900" in err
    assert not (tmp_path / "src").exists()  # nothing half-written


def test_without_a_next_step_date_the_rule_is_not_generated_and_says_why() -> None:
    generation = generate({"connector": {"type": "salesforce"}})
    names = {r.name for r in generation.rules}
    assert "Tsos_Next_Step_Required" not in names
    why = {s.rule_id: s.why for s in generation.skipped}
    assert "next_step_date" in why["tsos.next-step-required"]
    assert "Tsos_Close_Date_Required" in names


def test_disabled_rules_are_not_compiled() -> None:
    generation = generate(
        {"rules": {"disabled": ["tsos.close-date-locked"]}, "connector": {"type": "salesforce"}}
    )
    assert all(r.rule_id != "tsos.close-date-locked" for r in generation.rules)


def test_every_generated_rule_is_within_salesforce_limits() -> None:
    for rule in generate({"connector": {"type": "salesforce"}}).rules:
        assert len(rule.formula) <= 3900 and len(rule.message) <= 255
        assert len(rule.description) <= 255 and len(rule.name) <= 40


def test_another_connector_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"connector\.type"):
        generate({"connector": {"type": "hubspot"}})


def test_the_command_is_on_the_tsos_rules_command_line(tmp_path: Path) -> None:
    """The Salesforce plugin adds it through tsos_rules_register_commands."""
    from tsos_rules.cli import run

    config = tmp_path / "tsos-rules.toml"
    config.write_text('[connector]\ntype = "salesforce"\n')
    out = tmp_path / "sfdx"
    code = run(["salesforce", "validation-rules", "--out", str(out), "--config", str(config)])
    assert code == 0
    rules = sorted(p.name for p in (out / "objects" / "Opportunity" / "validationRules").iterdir())
    assert "Tsos_Close_Date_Required.validationRule-meta.xml" in rules
