"""A plugin that failed to load shows in the exit status of ``check`` and ``rules``.

A warning line is easy to miss in CI, where a missing pack means missing findings and a green
build. So both commands exit 2 when a plugin failed to load (import or registration), after
printing their normal output, unless ``--allow-plugin-failures`` (or the environment variable
``TSOS_RULES_ALLOW_PLUGIN_FAILURES=1``) says to go on without it (docs/plugins.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from tsos_rules.errors import ExitCode

if TYPE_CHECKING:
    from tsos_rules.plugins import PluginFailure

#: The environment variable that stands for ``--allow-plugin-failures``.
ALLOW_ENV = "TSOS_RULES_ALLOW_PLUGIN_FAILURES"

allow_plugin_failures_option = click.option(
    "--allow-plugin-failures",
    "allow_plugin_failures",
    is_flag=True,
    envvar=ALLOW_ENV,
    help=(
        "Exit as if a plugin that failed to load were not installed (default: exit 2). "
        f"Also ${ALLOW_ENV}=1."
    ),
)


def plugin_failure_exit(failures: Sequence[PluginFailure], *, allow: bool) -> ExitCode | None:
    """Name each plugin that failed to load on stderr; ``ExitCode.INPUT`` unless failures are
    allowed, None when every plugin loaded. (A report section that fails later is only warned
    about: the rules ran, and the findings' exit status stands.)"""
    if not failures:
        return None
    level = "warning" if allow else "error"
    for failure in failures:
        click.echo(
            f"tsos-rules: {level}: plugin {failure.name} failed to load, so its rules and "
            f"report sections are missing: {failure.error}",
            err=True,
        )
    if allow:
        return None
    click.echo(
        f"tsos-rules: exit {int(ExitCode.INPUT)}: {len(failures)} plugin(s) failed to load; "
        "fix or disable them (TSOS_RULES_DISABLE_PLUGINS), or pass --allow-plugin-failures",
        err=True,
    )
    return ExitCode.INPUT
