"""``tsos-rules connectors``: list the installed CRM connectors (the group's default action),
and ``connectors check [NAME]``: validate a connector's configuration against its CRM.

Any connector implementing :class:`tsos_rules.connectors.base.Checkable` can be checked. For
Salesforce the check reads ``describe()`` of every object the connector touches (one
Composite call) and names each mapped field that is missing or of the wrong type, the finding
field's external-id settings, and stage picklist values not on the ladder.
"""

from __future__ import annotations

import json

import click

from tsos_rules.cli._common import config_from, config_option, fail
from tsos_rules.config import load_config, naming_file
from tsos_rules.errors import ExitCode


@click.group(
    invoke_without_command=True,
    short_help="List the installed CRM connectors, or check one against its CRM.",
)
@config_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def connectors(ctx: click.Context, config_path: str | None, fmt: str) -> None:
    """List the installed CRM connectors (what [connector] type accepts).

    \b
    Examples:
      tsos-rules connectors
      tsos-rules connectors --format json
    """
    if ctx.invoked_subcommand is not None:
        return
    from tsos_rules.plugins import collect_connectors, get_plugin_manager

    config = config_from(config_path)
    pm = get_plugin_manager(disabled=config.plugins_disabled)
    factories = collect_connectors(pm)
    rows = []
    for name in sorted(factories):
        factory = factories[name]
        owner = getattr(factory, "__self__", None)
        doc = (getattr(owner, "__doc__", None) or getattr(factory, "__doc__", None) or "").strip()
        rows.append({"name": name, "description": doc.splitlines()[0] if doc else ""})
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
        return
    width = max((len(row["name"]) for row in rows), default=4)
    for row in rows:
        click.echo(f"{row['name']:<{width}}  {row['description']}")
    for failure in pm.failures:
        click.echo(f"{failure.name}  FAILED  {failure.error}")


@connectors.command("check")
@click.argument("name", required=False)
@config_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def check(name: str | None, config_path: str | None, fmt: str) -> None:
    """Check the [connector] configuration against the CRM (fields, types, external id).

    NAME defaults to the configured [connector] type. Exits 0 when nothing is wrong (warnings
    allowed), 2 when a mapped field is missing or of the wrong type, 3 when the CRM cannot be
    reached or refuses the login.

    \b
    Examples:
      tsos-rules connectors check salesforce --config tsos-rules.toml
      tsos-rules connectors check salesforce --format json
      tsos-rules connectors check local
    """
    from tsos_rules.connectors.base import Checkable, Connector
    from tsos_rules.plugins import collect_connectors, get_plugin_manager

    config = load_config(config_path)
    table = dict(config.connector)
    configured = table.get("type", "local")
    name = name or configured
    if configured != name:
        fail(f"connectors check {name}: the configuration's [connector] type is {configured!r}")
    factory = collect_connectors(get_plugin_manager(disabled=config.plugins_disabled)).get(name)
    if factory is None:
        fail(f"connectors check: no connector {name!r} is installed")
    with naming_file(config.path):
        connector: Connector = factory(table)
    try:
        if not isinstance(connector, Checkable):
            fail(
                f"connectors check: the {name} connector cannot check its configuration "
                "(it implements no check(ladder) method)"
            )
        ladder = [stage for stage, _ in config.org.stage_ladder]
        problems = list(connector.check(ladder))
    finally:
        connector.close()
    errors = [p for p in problems if p.level == "error"]
    if fmt == "json":
        rows = [{"level": p.level, "where": p.where, "message": p.message} for p in problems]
        click.echo(json.dumps({"connector": name, "ok": not errors, "problems": rows}, indent=1))
    else:
        for problem in problems:
            click.echo(str(problem))
        warnings = len(problems) - len(errors)
        verdict = "not usable" if errors else "ok"
        click.echo(f"{name}: {verdict} ({len(errors)} error(s), {warnings} warning(s))")
    raise SystemExit(ExitCode.INPUT if errors else ExitCode.OK)
