"""``tsos-rules plugins``: what is installed, at which version, implementing which hooks."""

from __future__ import annotations

import click

from tsos_rules.config import load_config


@click.command()
def plugins() -> None:
    """List installed plugins: name, version and the hooks each implements.

    \b
    Examples:
      tsos-rules plugins
      TSOS_RULES_DISABLE_PLUGINS=my_pack tsos-rules plugins
    """
    from tsos_rules.plugins import get_plugin_manager

    pm = get_plugin_manager(disabled=load_config().plugins_disabled)
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
