"""The ``tsos-rules`` command (click). Every subcommand's help ends with examples.

This package declares the root group and adds the commands of its modules (one module per
command family; they never import this package back). Plugins add more through the
``tsos_rules_register_commands`` hook. Exit codes: :class:`tsos_rules.errors.ExitCode`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import click

from tsos_rules.cli import (
    check,
    configure,
    connectors,
    demo,
    exemptions,
    findings,
    history,
    plugins,
    rules,
    sdk,
    serve,
    snapshot,
    sync,
)
from tsos_rules.cli._common import TsosGroup, teardown_skipped
from tsos_rules.errors import ExitCode

__all__ = ["console", "main", "run"]


@click.group(cls=TsosGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(None, "-V", "--version", package_name="tsos-rules", prog_name="tsos-rules")
def main() -> None:
    """Keep a channel sales pipeline honest: run the doctrine's rules against your CRM.

    \b
    Examples:
      tsos-rules check examples/pipeline.json
      tsos-rules rules
      tsos-rules explain tsos.next-step-required
    """


for _command in (
    check.check,
    rules.rules,
    rules.explain,
    plugins.plugins,
    connectors.connectors,
    sync.sync,
    sync.init,
    findings.findings,
    exemptions.exempt,
    history.history,
    demo.demo,
    serve.serve,
    sdk.validate_pack,
    configure.config_group,
    snapshot.snapshot_group,
):
    main.add_command(_command)


def console() -> None:
    """The ``tsos-rules`` executable: the CLI, then a fast exit after ``check``.

    Everything the run writes is flushed first; only the freeing of memory is skipped.
    """
    try:
        main.main()
    except SystemExit as exc:
        if not teardown_skipped():
            raise
        code = exc.code if isinstance(exc.code, int) else ExitCode.OK if exc.code is None else 1
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI in-process and return its exit code (for tests and embedding)."""
    try:
        main.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0)
    except click.ClickException as exc:
        exc.show()
        return ExitCode.INPUT
    return ExitCode.OK
