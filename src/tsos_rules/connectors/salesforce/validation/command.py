"""``tsos-rules salesforce validation-rules``: write the doctrine as validation rules (``--out``),
compare them with the org's (``--diff``), and deploy them through the Metadata API (``--deploy``,
``--check-only``, ``--prune``).

The command object is registered by the CLI (``salesforce`` group). It prints, per rule, whether
it is exact or approximate and where it differs from the engine. Credentials for ``--diff`` and
``--deploy`` are the Salesforce connector's (``[connector]`` auth, secrets from env or files).
"""

from __future__ import annotations

from pathlib import Path

import click

from tsos_rules.config import Config, load_config
from tsos_rules.connectors.salesforce.validation.generate import Generation, generate
from tsos_rules.connectors.salesforce.validation.metadata import write_source
from tsos_rules.errors import ConnectorError, ExitCode, TsosRulesError


def _fail(message: str, code: int) -> None:
    click.echo(f"tsos-rules: {message}", err=True)
    raise SystemExit(code)


@click.command("validation-rules")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="SFDX source directory to write (e.g. force-app/main/default).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML config file (default: $TSOS_RULES_CONFIG, else built-in defaults).",
)
@click.option("--inactive", is_flag=True, help="Write or deploy the rules switched off.")
@click.option(
    "--diff",
    "show_diff",
    is_flag=True,
    help="Retrieve the org's Tsos_* rules and show how the generated ones differ (no writes).",
)
@click.option(
    "--deploy",
    "deploy_rules",
    is_flag=True,
    help="Deploy the rules, the bypass permission and its permission set (Metadata API).",
)
@click.option(
    "--check-only",
    is_flag=True,
    help="With --deploy: validate the deploy in the org without saving anything.",
)
@click.option(
    "--prune",
    is_flag=True,
    help="With --deploy: delete the org's Tsos_* rules that are no longer generated.",
)
@click.option(
    "--timeout",
    "timeout_seconds",
    type=click.FloatRange(1, 7200),
    default=600.0,
    show_default=True,
    help="Seconds to wait for a deploy or retrieve to finish.",
)
def validation_rules(
    out: Path | None,
    config_path: str | None,
    inactive: bool,
    show_diff: bool,
    deploy_rules: bool,
    check_only: bool,
    prune: bool,
    timeout_seconds: float,
) -> None:
    """Compile the doctrine's block rules to Opportunity validation rules; write them as SFDX
    source, diff them against the org, or deploy them.

    Every formula lets users with the Tsos_Rules_Bypass custom permission through; the
    permission and a permission set granting it are written and deployed too. A deploy
    failure lists each component failure and exits 3.

    \b
    Examples:
      tsos-rules salesforce validation-rules --out force-app/main/default
      tsos-rules salesforce validation-rules --diff
      tsos-rules salesforce validation-rules --deploy --check-only --inactive
      tsos-rules salesforce validation-rules --deploy --prune
    """
    if (check_only or prune) and not deploy_rules:
        _fail("--check-only and --prune go with --deploy", ExitCode.INPUT)
    if out is None and not (show_diff or deploy_rules):
        _fail("say where the rules go: --out DIR, --diff or --deploy", ExitCode.INPUT)
    try:
        config = load_config(config_path)
        generation = generate(config)
    except TsosRulesError as exc:
        _fail(str(exc), ExitCode.INPUT)
        return
    active = not inactive
    if out is not None:
        write_source(out, generation.rules, active=active)
    _print_rules(generation)
    if out is not None:
        state = "active" if active else "inactive"
        click.echo(f"{len(generation.rules)} validation rule(s), {state}, written to {out}")
    if show_diff or deploy_rules:
        try:
            _talk_to_org(
                config,
                generation,
                active=active,
                show_diff=show_diff,
                deploy_rules=deploy_rules,
                check_only=check_only,
                prune=prune,
                timeout_seconds=timeout_seconds,
            )
        except ConnectorError as exc:
            _fail(str(exc), ExitCode.CONNECTOR)
        except TsosRulesError as exc:
            _fail(str(exc), ExitCode.INPUT)


def _print_rules(generation: Generation) -> None:
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


def _talk_to_org(
    config: Config,
    generation: Generation,
    *,
    active: bool,
    show_diff: bool,
    deploy_rules: bool,
    check_only: bool,
    prune: bool,
    timeout_seconds: float,
) -> None:
    """Log in with the connector's credentials, then diff and/or deploy."""
    from tsos_rules.connectors.salesforce.connector import SalesforceConnector
    from tsos_rules.connectors.salesforce.validation.deploy import (
        CHANGED,
        NEW,
        STALE,
        UNCHANGED,
        compare,
        deploy,
        org_rules,
    )
    from tsos_rules.connectors.salesforce.validation.mdapi import MetadataApi

    connector = SalesforceConnector.from_settings(config.connector)
    try:
        api = MetadataApi(connector.client, timeout_seconds=timeout_seconds)
        instance = connector.client.session.instance_url
        if show_diff:
            diffs = compare(generation.rules, org_rules(api), active=active)
            click.echo(f"\nCompared with the Tsos_* validation rules of {instance}:")
            for diff in diffs:
                label = {
                    NEW: "new (not in the org)",
                    CHANGED: "changed",
                    UNCHANGED: "unchanged",
                    STALE: "in the org, no longer generated (--deploy --prune deletes it)",
                }[diff.status]
                click.echo(f"{diff.name}: {label}")
                for line in diff.lines if diff.status == CHANGED else ():
                    click.echo(f"  {line}")
            counts = {
                s: sum(d.status == s for d in diffs) for s in (NEW, CHANGED, UNCHANGED, STALE)
            }
            click.echo(", ".join(f"{n} {s}" for s, n in counts.items()))
        if deploy_rules:
            kind = "validating (check only, nothing is saved)" if check_only else "deploying"
            state = "active" if active else "inactive"
            click.echo(
                f"\n{kind} {len(generation.rules)} validation rule(s) ({state}), the "
                f"Tsos_Rules_Bypass custom permission and permission set to {instance}"
            )
            done = deploy(api, generation.rules, active=active, check_only=check_only, prune=prune)
            for name in done.deleted:
                gone = "would be deleted" if check_only else "deleted"
                click.echo(f"  {gone}: Opportunity.{name} (no longer generated)")
            result = done.result
            verb = "validated; nothing was saved" if result.check_only else "deployed"
            click.echo(
                f"deploy {result.id}: {result.status}, {result.deployed} of {result.total} "
                f"component(s) {verb}"
            )
    finally:
        connector.close()
