"""``tsos-rules plugins``: what is installed, at which version, implementing which hooks."""

from __future__ import annotations

import json
from typing import Any

import click

from tsos_rules.config import load_config


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def plugins(ctx: click.Context, fmt: str) -> None:
    """List installed plugins: name, version and the hooks each implements.

    Plugins that failed to load are listed after them, with the reason.

    \b
    Examples:
      tsos-rules plugins
      tsos-rules plugins --format json
      TSOS_RULES_DISABLE_PLUGINS=my_pack tsos-rules plugins
    """
    from tsos_rules.plugins import collect_commands, get_plugin_manager

    pm = get_plugin_manager(disabled=load_config().plugins_disabled)
    root = ctx.find_root().command
    built_in = root.commands if isinstance(root, click.Group) else {}
    collect_commands(pm, taken=built_in)  # a plugin failing to add its commands is listed below
    dists = {plugin: dist for plugin, dist in pm.list_plugin_distinfo()}
    rows: list[dict[str, Any]] = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        if plugin is None:
            continue
        dist = dists.get(plugin)
        version = pm.versions.get(name) or (dist.version if dist is not None else "built-in")
        hooks = sorted(impl.name for impl in pm.get_hookcallers(plugin) or [])
        rows.append({"name": name, "version": version, "hooks": hooks, "status": "loaded"})
    failed: list[dict[str, Any]] = [
        {"name": f.name, "version": None, "hooks": [], "status": "failed", "error": str(f.error)}
        for f in pm.failures
    ]
    if fmt == "json":
        click.echo(json.dumps(rows + failed, indent=1))
        return
    _table(rows)
    if failed:
        click.echo("\nfailed to load (skipped):")
        for failure in failed:
            click.echo(f"{failure['name']}  FAILED  {failure['error']}")


def _table(rows: list[dict[str, Any]]) -> None:
    """Aligned columns under a header: plugin, version, hooks."""
    name_width = max([len("plugin"), *(len(row["name"]) for row in rows)])
    version_width = max([len("version"), *(len(row["version"]) for row in rows)])
    click.echo(f"{'plugin':<{name_width}}  {'version':<{version_width}}  hooks")
    for row in rows:
        hooks = ", ".join(row["hooks"])
        click.echo(f"{row['name']:<{name_width}}  {row['version']:<{version_width}}  {hooks}")
