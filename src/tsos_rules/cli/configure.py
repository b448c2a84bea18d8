"""``tsos-rules config validate [FILE]``: every table of a config file, checked before a run.

The same readers the commands use (the one :class:`~tsos_rules.config.SettingsTable` reader)
check the core tables, each pack's ``[packs.NAME]`` parameters, the ``[connector]`` table (by
the installed connector's own factory, which contacts no CRM) and ``[serve]``; every secret
reference must resolve. Each problem is one line naming the file, the table and the key.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from tsos_rules.config import CONFIG_ENV, Config, load_config, naming_file
from tsos_rules.errors import ExitCode, TsosRulesError

#: What ``[connector]`` a local connector is checked with: never seed a CRM while validating.
_NO_SEEDING = {"seed_if_missing": False}


@click.group("config")
def config_group() -> None:
    """Check a configuration file.

    \b
    Examples:
      tsos-rules config validate
      tsos-rules config validate /etc/tsos-rules.toml
    """


@config_group.command("validate")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def validate(file: str | None) -> None:
    """Check every table of FILE: core tables, pack parameters, [connector], [serve].

    FILE defaults to $TSOS_RULES_CONFIG, else ./tsos-rules.toml. Secret references
    ({env = "..."}, {file = "..."}) must resolve; no CRM is contacted. Exits 0 when the file
    is valid, 2 otherwise, with one line per problem naming the file, the table and the key.

    \b
    Examples:
      tsos-rules config validate
      tsos-rules config validate /etc/tsos-rules.toml
    """
    import os

    path = Path(file or os.environ.get(CONFIG_ENV) or "tsos-rules.toml")
    try:
        config = load_config(path)
    except TsosRulesError as exc:
        _report([str(exc)], path)
    problems = [
        problem
        for check in (_sync_tables, _packs, _connector, _serve)
        if (problem := _problem(check, config)) is not None
    ]
    _report(problems, path)


def _report(problems: list[str], path: Path) -> None:
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        click.echo(f"{path}: {len(problems)} problem(s)", err=True)
        raise SystemExit(ExitCode.INPUT)
    click.echo(f"ok    {path}: every table is valid")
    raise SystemExit(ExitCode.OK)


def _problem(check: Callable[[Config], None], config: Config) -> str | None:
    try:
        with naming_file(config.path):
            check(config)
    except TsosRulesError as exc:
        return str(exc)
    return None


def _sync_tables(config: Config) -> None:
    from tsos_rules.sync.settings import SyncSettings

    SyncSettings.from_config(config)


def _packs(config: Config) -> None:
    """``[packs.NAME]`` for every installed pack, ``[rules]`` selections, ``[org]`` use."""
    from tsos_rules.engine import Engine

    Engine.from_config(config)


def _connector(config: Config) -> None:
    from tsos_rules.config import SettingsTable, connector_type
    from tsos_rules.errors import FatalConnectorError
    from tsos_rules.plugins import collect_connectors, get_plugin_manager

    reader = SettingsTable(dict(config.connector), "connector", file=config.path)
    name = connector_type(reader)
    factory = collect_connectors(get_plugin_manager(disabled=config.plugins_disabled)).get(name)
    if factory is None:
        raise reader.error("type", f"no connector {name!r} is installed (tsos-rules connectors)")
    table = dict(config.connector)
    if name == "local" and table.get("seed_if_missing", True) is True:
        table.update(_NO_SEEDING)
    try:
        connector: Any = factory(table)
    except FatalConnectorError:
        if name == "local":
            return  # the demo CRM is not there yet: it is seeded on first use, as configured
        raise
    connector.close()


def _serve(config: Config) -> None:
    if not config.serve:
        return
    from tsos_rules.server.settings import ServeSettings

    ServeSettings.from_mapping(config.serve, file=config.path)
