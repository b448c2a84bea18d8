"""SFDX source files: the validation rules, the bypass custom permission and its permission set.

Shapes follow the Metadata API Developer Guide (ValidationRule, CustomPermission, PermissionSet);
``write_source`` replaces every ``Tsos_*`` validation rule file in the folder, so the folder
always holds exactly the rules the config generates.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

from tsos_rules.connectors.salesforce.validation.rules import BYPASS_PERMISSION, CompiledRule

NAMESPACE = "http://soap.sforce.com/2006/04/metadata"
RULES_DIR = Path("objects/Opportunity/validationRules")
RULE_SUFFIX = ".validationRule-meta.xml"


def _document(root: str, elements: list[tuple[str, str]]) -> str:
    body = "".join(f"    <{tag}>{value}</{tag}>\n" for tag, value in elements)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NAMESPACE}">\n{body}</{root}>\n'
    )


def validation_rule_xml(rule: CompiledRule, *, active: bool = True) -> str:
    elements = [
        ("fullName", escape(rule.name)),
        ("active", "true" if active else "false"),
        ("description", escape(rule.description)),
        ("errorConditionFormula", escape(rule.formula)),
    ]
    if rule.display_field:
        elements.append(("errorDisplayField", escape(rule.display_field)))
    elements.append(("errorMessage", escape(rule.message)))
    return _document("ValidationRule", elements)


def custom_permission_xml() -> str:
    return _document(
        "CustomPermission",
        [
            (
                "description",
                "Saves pass the tsos-rules validation rules (integration user, admins).",
            ),
            ("isLicensed", "false"),
            ("label", "tsos-rules bypass"),
        ],
    )


def permission_set_xml() -> str:
    grant = f"\n        <enabled>true</enabled>\n        <name>{BYPASS_PERMISSION}</name>\n    "
    return _document(
        "PermissionSet",
        [
            ("customPermissions", grant),
            (
                "description",
                "Grants Tsos_Rules_Bypass: the tsos-rules validation rules let saves through.",
            ),
            ("hasActivationRequired", "false"),
            ("label", "tsos-rules bypass"),
        ],
    )


def write_source(out: Path, rules: tuple[CompiledRule, ...], *, active: bool = True) -> list[Path]:
    """Write the SFDX source under ``out``; returns the files written."""
    rules_dir = out / RULES_DIR
    rules_dir.mkdir(parents=True, exist_ok=True)
    for stale in rules_dir.glob(f"Tsos_*{RULE_SUFFIX}"):
        stale.unlink()
    written: list[Path] = []
    for rule in rules:
        path = rules_dir / f"{rule.name}{RULE_SUFFIX}"
        path.write_text(validation_rule_xml(rule, active=active), encoding="utf-8")
        written.append(path)
    for folder, suffix, text in (
        ("customPermissions", ".customPermission-meta.xml", custom_permission_xml()),
        ("permissionsets", ".permissionset-meta.xml", permission_set_xml()),
    ):
        path = out / folder / f"{BYPASS_PERMISSION}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
