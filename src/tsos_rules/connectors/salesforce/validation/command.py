"""``tsos-rules salesforce validation-rules --out DIR``: write the doctrine as validation rules.

The command object is registered by the CLI (``salesforce`` group); it writes SFDX source and
prints, per rule, whether it is exact or approximate and where it differs from the engine.
"""

from __future__ import annotations

from pathlib import Path

import click

from tsos_rules.config import load_config
from tsos_rules.connectors.salesforce.validation.generate import generate
from tsos_rules.connectors.salesforce.validation.metadata import write_source
from tsos_rules.errors import TsosRulesError


@click.command("validation-rules")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="SFDX source directory (e.g. force-app/main/default).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML config file (default: $TSOS_RULES_CONFIG, else built-in defaults).",
)
@click.option("--inactive", is_flag=True, help="Write the rules switched off (active = false).")
def validation_rules(out: Path, config_path: str | None, inactive: bool) -> None:
    """Compile the doctrine's block rules to Opportunity validation rules (SFDX source).

    Every formula lets users with the Tsos_Rules_Bypass custom permission through; the
    permission and a permission set granting it are written too.
    """
    try:
        generation = generate(load_config(config_path))
    except TsosRulesError as exc:
        click.echo(f"tsos-rules: {exc}", err=True)
        raise SystemExit(2) from None
    write_source(out, generation.rules, active=not inactive)
    for rule in generation.rules:
        reasons = ", ".join(rule.reasons)
        click.echo(
            f"{rule.name}: {rule.rule_id} ({reasons}), {rule.fidelity}, "
            f"{len(rule.formula)} characters"
        )
        for gap in rule.stricter:
            click.echo(f"  stricter: {gap}")
        for gap in rule.looser:
            click.echo(f"  looser: {gap}")
    for skipped in generation.skipped:
        click.echo(
            f"not generated: {skipped.rule_id} ({', '.join(skipped.reasons)}): {skipped.why}"
        )
    state = "inactive" if inactive else "active"
    click.echo(f"{len(generation.rules)} validation rule(s), {state}, written to {out}")
