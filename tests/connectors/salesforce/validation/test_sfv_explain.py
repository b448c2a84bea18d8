"""``tsos-rules explain RULE_ID`` shows the Salesforce validation rules of a rule (through the
``tsos_rules_explain_notes`` hook the Salesforce plugin implements), via the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tsos_rules import hookimpl
from tsos_rules.cli import main
from tsos_rules.plugins import added_plugins

SALESFORCE = """
[connector]
type = "salesforce"
[connector.fields]
next_step_date = "Next_Step_Date__c"
"""


def _explain(tmp_path: Path, config: str, rule_id: str) -> tuple[int, str, str]:
    path = tmp_path / "tsos-rules.toml"
    path.write_text(config, encoding="utf-8")
    result = CliRunner().invoke(main, ["explain", rule_id, "--config", str(path)])
    return result.exit_code, result.stdout, result.stderr


def test_explain_says_which_validation_rules_are_exact_and_where_others_differ(
    tmp_path: Path,
) -> None:
    code, out, err = _explain(tmp_path, SALESFORCE, "tsos.close-date-locked")
    assert code == 0, err
    notes = out.split("Notes from tsos_rules.connectors.salesforce:")[1]
    flat = " ".join(notes.split())
    assert "Tsos_Close_Date_Required (missing, in_past): exact." in flat
    assert "Tsos_Close_Date_Locked (moved_unapproved): approximate." in flat
    assert "stricter than the engine: no approval field is mapped" in flat
    assert "looser than the engine: unapproved moves already in the deal's history" in flat


def test_explain_names_reasons_without_a_formula_and_why(tmp_path: Path) -> None:
    code, out, _ = _explain(tmp_path, SALESFORCE, "tsos.partner-of-record-required")
    assert code == 0
    flat = " ".join(out.split())
    assert (
        "No Salesforce validation rule for (missing, unknown_partner, terminated_partner): "
        "a formula cannot tell a channel deal"
    ) in flat


def test_explain_adds_no_salesforce_notes_for_another_crm(tmp_path: Path) -> None:
    code, out, _ = _explain(tmp_path, '[connector]\ntype = "local"\n', "tsos.close-date-locked")
    assert code == 0
    assert "Notes from" not in out and "validation rule" not in out


class _Broken:
    @hookimpl
    def tsos_rules_explain_notes(self, rule_id: str, config: object) -> list[str]:
        raise RuntimeError("boom")


class _Kind:
    @hookimpl
    def tsos_rules_explain_notes(self, rule_id: str, config: object) -> list[str]:
        return [f"{rule_id} is also watched by the kind plugin."]


def test_a_plugin_that_raises_is_skipped_and_others_still_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(added_plugins, "broken-notes", _Broken())
    monkeypatch.setitem(added_plugins, "kind-notes", _Kind())
    code, out, err = _explain(tmp_path, SALESFORCE, "tsos.next-step-required")
    assert code == 0, err
    assert "Notes from kind-notes:" in out
    assert "tsos.next-step-required is also watched by the kind plugin." in out
    assert "Tsos_Next_Step_Required" in out and "boom" not in out
