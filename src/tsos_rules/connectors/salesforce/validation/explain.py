"""What ``tsos-rules explain RULE_ID`` says about a rule's Salesforce validation rules.

Only for a config whose ``[connector] type`` is ``salesforce``: each validation rule generated
for the rule (exact or approximate, with the cases where it is stricter or looser than the
engine), and each reason no formula is generated for, with why.
"""

from __future__ import annotations

from tsos_rules.config import Config
from tsos_rules.connectors.salesforce.validation.generate import generate
from tsos_rules.errors import ConfigError


def explain_notes(rule_id: str, config: Config) -> list[str] | None:
    """Note lines for ``explain``; None when the config is not for Salesforce."""
    if config.connector.get("type") != "salesforce":
        return None
    try:
        generation = generate(config)
    except ConfigError as exc:
        return [f"No Salesforce validation rules can be generated from this config: {exc}"]
    notes: list[str] = []
    for rule in generation.rules:
        if rule.rule_id != rule_id:
            continue
        reasons = ", ".join(rule.reasons)
        notes.append(f"Salesforce validation rule {rule.name} ({reasons}): {rule.fidelity}.")
        notes += [f"stricter than the engine: {gap}" for gap in rule.stricter]
        notes += [f"looser than the engine: {gap}" for gap in rule.looser]
    for skipped in generation.skipped:
        if skipped.rule_id == rule_id:
            reasons = ", ".join(skipped.reasons)
            notes.append(f"No Salesforce validation rule for ({reasons}): {skipped.why}.")
    if not notes:
        notes.append(
            "No Salesforce validation rule is generated for this rule (only block rules on "
            "opportunities are compiled); the sync judges it after the save."
        )
    return notes
