"""What every command module shares: the error line, ``--config``, date parsing, the root group's
error mapping and the fast-exit flag. Command modules import this, never the ``cli`` package."""

from __future__ import annotations

import datetime as dt
import os
import sys
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
    """Maps the project's errors onto exit codes and one-line messages, never tracebacks."""

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
