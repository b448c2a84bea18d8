"""``tsos-rules rules`` (list, ``rules validate``) and ``tsos-rules explain RULE_ID``."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click
from click.shell_completion import CompletionItem

from tsos_rules.cli._common import config_from, config_option, fail
from tsos_rules.cli._plugin_failures import allow_plugin_failures_option, plugin_failure_exit
from tsos_rules.cli.sdk import rules_validate

if TYPE_CHECKING:
    from tsos_rules.config import Config
    from tsos_rules.plugins import PluginManager
    from tsos_rules.rules.spec import RuleSpec


@click.group("rules", invoke_without_command=True, commands=[rules_validate])
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@allow_plugin_failures_option
@config_option
@click.pass_context
def rules(
    ctx: click.Context, fmt: str, allow_plugin_failures: bool, config_path: str | None
) -> None:
    """List every loaded rule: id, severity, pack and its doctrine in one line.

    Exits 2 when a plugin failed to load (its rules are missing from the list), unless
    --allow-plugin-failures.

    \b
    Examples:
      tsos-rules rules
      tsos-rules rules --format json | jq '.[].id'
      tsos-rules rules --allow-plugin-failures
      tsos-rules rules validate my_rules.yaml
    """
    if ctx.invoked_subcommand is not None:
        return
    from tsos_rules.engine import Engine

    engine = Engine.from_config(config_from(config_path))
    specs = sorted(engine.specs.values(), key=lambda s: s.id)
    engine.close()
    failed = plugin_failure_exit(engine.plugin_manager.failures, allow=allow_plugin_failures)
    _list(specs, fmt)
    if failed is not None:
        sys.exit(failed)


def _list(specs: list[RuleSpec], fmt: str) -> None:
    """Print the rules as a table or as JSON."""
    if fmt == "json":
        rows = [
            {
                "id": s.id,
                "severity": s.severity.value,
                "pack": s.pack,
                "title": s.title,
                "doctrine": s.doctrine,
            }
            for s in specs
        ]
        click.echo(json.dumps(rows, indent=1, ensure_ascii=False))
        return
    width = max((len(s.id) for s in specs), default=10)
    for spec in specs:
        click.echo(f"{spec.id:<{width}}  {spec.severity.value:<5}  {spec.pack}")
        doctrine = spec.doctrine if len(spec.doctrine) <= 74 else spec.doctrine[:73] + "…"
        click.echo(f"    {doctrine}")
    click.echo(f"\n{len(specs)} rule(s). Details: tsos-rules explain RULE_ID")


def _complete_rule_ids(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Shell completion of RULE_ID: the ids of every loaded rule (``--config`` honoured)."""
    from tsos_rules.engine import Engine

    try:
        engine = Engine.from_config(config_from(ctx.params.get("config_path")))
    except Exception:  # a broken config or plugin must never break the user's shell
        return []
    engine.close()
    return [
        CompletionItem(rule_id, help=spec.title)
        for rule_id, spec in sorted(engine.specs.items())
        if rule_id.startswith(incomplete)
    ]


@click.command()
@click.argument("rule_id", shell_complete=_complete_rule_ids)
@config_option
def explain(rule_id: str, config_path: str | None) -> None:
    """Print a rule's doctrine, what it checks, its reasons and its parameters, then what
    plugins note about it (e.g. how Salesforce's validation rule for it differs from the engine).

    \b
    Examples:
      tsos-rules explain tsos.close-date-locked
    """
    import textwrap

    from tsos_rules.engine import Engine

    config = config_from(config_path)
    engine = Engine.from_config(config)
    engine.close()
    spec = engine.specs.get(rule_id)
    if spec is None:
        close = [s for s in engine.specs if rule_id.split(".")[-1] in s]
        hint = f" (did you mean {', '.join(sorted(close))}?)" if close else ""
        fail(f"{rule_id}: no such rule{hint}; see 'tsos-rules rules'")
    pack = next(p for p in engine.packs if p.name == spec.pack)

    def para(title: str, text: str) -> None:
        click.echo(f"{title}:")
        click.echo(textwrap.fill(text, 78, initial_indent="  ", subsequent_indent="  "))

    click.echo(f"{spec.id} — {spec.title}")
    click.echo(f"severity: {spec.severity.value}    pack: {pack.name} {pack.version}")
    click.echo(f"judges: {', '.join(spec.record_types)}\n")
    para("Doctrine", f"“{spec.doctrine}”" + (f" ({spec.source})" if spec.source else ""))
    if spec.semantics:
        para("What it checks", spec.semantics)
    if spec.reasons:
        click.echo("Reasons:")
        for reason, text in spec.reasons.items():
            click.echo(f"  {reason}: {text}")
    if spec.parameters:
        click.echo(f"Parameters (config: [packs.{pack.name}]):")
        declared = {p.name: p for p in pack.parameters}
        for name in spec.parameters:
            current = engine.parameters[pack.name][name]
            click.echo(
                textwrap.fill(
                    f"{name} = {current!r} (default {declared[name].default!r}): "
                    f"{declared[name].description}",
                    78,
                    initial_indent="  ",
                    subsequent_indent="    ",
                )
            )
    if spec.org_settings:
        click.echo("Org settings it reads (config: [org]):")
        for name in spec.org_settings:
            value = getattr(engine.org, name)
            # The whole value (a stage ladder is long), wrapped: a cut value cannot be checked.
            click.echo(
                textwrap.fill(
                    f"{name} = {value!r}",
                    78,
                    initial_indent="  ",
                    subsequent_indent="    ",
                    break_on_hyphens=False,
                )
            )
    if spec.remediation:
        para("What to do", spec.remediation)
    if engine.plugin_manager is not None:
        _plugin_notes(engine.plugin_manager, rule_id, config)


def _plugin_notes(pm: PluginManager, rule_id: str, config: Config) -> None:
    """What plugins say about the rule (``tsos_rules_explain_notes``), grouped by plugin."""
    import textwrap

    from tsos_rules.plugins import collect_explain_notes

    shown: str | None = None
    for plugin, note in collect_explain_notes(pm, rule_id, config):
        if plugin != shown:
            click.echo(f"Notes from {plugin}:")
            shown = plugin
        click.echo(textwrap.fill(note, 78, initial_indent="  ", subsequent_indent="    "))
