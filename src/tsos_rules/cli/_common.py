"""What every command module shares: the error line, ``--config``, date parsing, the root group's
error mapping and the fast-exit flag. Command modules import this, never the ``cli`` package."""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Collection
from typing import Any, NoReturn

import click

from tsos_rules.config import Config, load_config
from tsos_rules.errors import ConnectorError, ExitCode, TsosRulesError


def fail(message: str, code: int = ExitCode.INPUT) -> NoReturn:
    """One line on stderr, then exit: the CLI never shows users a traceback."""
    click.echo(f"tsos-rules: {message}", err=True)
    sys.exit(code)


def parse_date(_: click.Context, __: click.Parameter, value: str | None) -> dt.date | None:
    """Click callback for ``--as-of``-style options: an ISO date or None."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected a date YYYY-MM-DD, got {value!r}") from None


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML config file (default: $TSOS_RULES_CONFIG, else built-in defaults).",
)


def config_from(config_path: str | None) -> Config:
    """The ``--config`` file, else ``$TSOS_RULES_CONFIG``, else the defaults."""
    return load_config(config_path)


class TsosGroup(click.Group):
    """The root group: maps the project's errors onto exit codes and one-line messages (never
    tracebacks), and serves the commands plugins add, loaded on the first lookup of a name that
    is not built in (once per invocation), so a built-in command never waits for plugins."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        return command if command is not None else _plugin_commands(ctx, self).get(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_plugin_commands(ctx, self)})

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConnectorError as exc:
            fail(str(exc), ExitCode.CONNECTOR)
        except TsosRulesError as exc:
            fail(str(exc), ExitCode.INPUT)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(ExitCode.OK)
        except Exception as exc:
            if os.environ.get("TSOS_RULES_DEBUG"):
                raise
            fail(
                f"internal error: {type(exc).__name__}: {exc} "
                "(re-run with TSOS_RULES_DEBUG=1 for details, and please report it)",
                ExitCode.INTERNAL,
            )


def _plugin_commands(ctx: click.Context, group: click.Group) -> dict[str, click.Command]:
    """The commands of ``tsos_rules_register_commands``, collected once per invocation."""
    meta = ctx.find_root().meta
    if _PLUGIN_COMMANDS not in meta:
        meta[_PLUGIN_COMMANDS] = _load_plugin_commands(taken=group.commands)
    commands: dict[str, click.Command] = meta[_PLUGIN_COMMANDS]
    return commands


_PLUGIN_COMMANDS = "tsos_rules.plugin_commands"


def _load_plugin_commands(taken: Collection[str]) -> dict[str, click.Command]:
    from tsos_rules.plugins import collect_commands, get_plugin_manager

    try:
        disabled = load_config().plugins_disabled
    except TsosRulesError:
        disabled = ()  # a broken $TSOS_RULES_CONFIG is reported by the command that reads it
    try:
        return collect_commands(get_plugin_manager(disabled=disabled), taken=taken)
    except Exception as exc:  # the built-in commands must work whatever a plugin does
        click.echo(f"tsos-rules: plugin commands are unavailable: {exc}", err=True)
        return {}


#: Set by ``skip_teardown``; read by ``cli.console`` after the command returned.
_skip_teardown = False


def skip_teardown() -> None:
    """Called by commands that end holding a whole snapshot in memory: freeing millions of
    objects one by one at interpreter exit takes a third of a second per 100k deals."""
    global _skip_teardown
    _skip_teardown = True


def teardown_skipped() -> bool:
    """True once a command has asked for the fast exit."""
    return _skip_teardown
