"""``tsos-rules connectors check NAME``: validate a connector's configuration against the CRM.

For Salesforce it reads ``describe()`` of every object the connector touches (one Composite
call) and names each mapped field that is missing or of the wrong type, the finding field's
external-id settings, and stage picklist values not on the ladder. ``connectors`` stays the
listing command when called alone: this module turns it into a group with a ``check`` command.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import click

from tsos_rules.cli import config_option, fail, main

# The listing command lives in commands_sync: import it first, whatever order cli.py imports
# the command modules in, so that the group below wraps it instead of being replaced by it.
from tsos_rules.cli import sync as _sync  # noqa: F401
from tsos_rules.config import load_config
from tsos_rules.errors import ExitCode


def _connectors_group() -> click.Group:
    """The ``connectors`` group: the existing listing command becomes its default action."""
    existing = main.commands.get("connectors")
    if isinstance(existing, click.Group):
        return existing
    listing = existing

    @click.pass_context
    def callback(ctx: click.Context, /, **options: Any) -> None:
        if ctx.invoked_subcommand is None and listing is not None and listing.callback:
            ctx.invoke(listing.callback, **options)

    group = click.Group(
        name="connectors",
        callback=callback,
        params=list(listing.params) if listing is not None else [],
        invoke_without_command=True,
        help=inspect.cleandoc(listing.help or "") if listing is not None else "CRM connectors.",
        short_help="List the installed CRM connectors, or check one against its CRM.",
    )
    main.add_command(group)
    return group


connectors = _connectors_group()


@connectors.command("check")
@click.argument("name", default="salesforce")
@config_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def check(name: str, config_path: str | None, fmt: str) -> None:
    """Check the [connector] configuration against the CRM (fields, types, external id).

    Exits 0 when nothing is wrong (warnings allowed), 2 when a mapped field is missing or of
    the wrong type, 3 when the CRM cannot be reached or refuses the login.

    \b
    Examples:
      tsos-rules connectors check salesforce --config tsos-rules.toml
      tsos-rules connectors check salesforce --format json
    """
    from tsos_rules.plugins import collect_connectors, get_plugin_manager

    config = load_config(config_path)
    table = dict(config.connector)
    configured = table.get("type", "local")
    if configured != name:
        fail(f"connectors check {name}: the configuration's [connector] type is {configured!r}")
    factories = collect_connectors(get_plugin_manager(disabled=config.plugins_disabled))
    factory = factories.get(name)
    if factory is None and name == "salesforce":
        from tsos_rules.connectors.salesforce import SalesforceConnector

        factory = SalesforceConnector.from_settings
    if factory is None:
        fail(f"connectors check: no connector {name!r} is installed")
    connector = factory(table)
    try:
        checker = getattr(connector, "check", None)
        if checker is None:
            fail(f"connectors check: the {name} connector has no check")
        ladder = [stage for stage, _ in config.org.stage_ladder]
        problems = list(checker(ladder))
    finally:
        connector.close()
    errors = [p for p in problems if getattr(p, "level", "error") == "error"]
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
