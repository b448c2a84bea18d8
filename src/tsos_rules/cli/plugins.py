"""``tsos-rules plugins``: what is installed, at which version, implementing which hooks."""

from __future__ import annotations

import click

from tsos_rules.config import load_config


@click.command()
@click.pass_context
def plugins(ctx: click.Context) -> None:
    """List installed plugins: name, version and the hooks each implements.

    \b
    Examples:
      tsos-rules plugins
      TSOS_RULES_DISABLE_PLUGINS=my_pack tsos-rules plugins
    """
    from tsos_rules.plugins import collect_commands, get_plugin_manager

    pm = get_plugin_manager(disabled=load_config().plugins_disabled)
    root = ctx.find_root().command
    built_in = root.commands if isinstance(root, click.Group) else {}
    collect_commands(pm, taken=built_in)  # a plugin failing to add its commands is listed below
    dists = {plugin: dist for plugin, dist in pm.list_plugin_distinfo()}
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        if plugin is None:
            continue
        dist = dists.get(plugin)
        version = pm.versions.get(name) or (dist.version if dist is not None else "built-in")
        hooks = ", ".join(sorted(impl.name for impl in pm.get_hookcallers(plugin) or []))
        click.echo(f"{name}  {version}  {hooks}")
    for failure in pm.failures:
        click.echo(f"{failure.name}  FAILED  {failure.error}")
