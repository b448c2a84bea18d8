"""``tsos-rules check FILE``: judge a snapshot file and print the findings."""

from __future__ import annotations

import datetime as dt
import sys
from typing import IO

import click

from tsos_rules.cli._common import config_from, config_option, parse_date, skip_teardown
from tsos_rules.cli._plugin_failures import allow_plugin_failures_option, plugin_failure_exit
from tsos_rules.errors import ExitCode

#: ``check --jobs 0`` uses one worker per CPU up to this many. Judging is under half of a run,
#: so a third worker would save little, and each copies the pages it touches (~500 MB at 100k
#: deals): memory, not time, sets the default.
MAX_AUTO_JOBS = 2


@click.command()
@click.argument("file", metavar="FILE|-")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option("--as-of", callback=parse_date, help="Evaluate as of this date (YYYY-MM-DD).")
@click.option(
    "--rules",
    "patterns",
    help="Only rules whose id matches these globs, comma-separated (e.g. 'tsos.close-*').",
)
@click.option("--include-info", is_flag=True, help="Also report info findings.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=0),
    default=0,
    help="Processes judging a large snapshot (0: one per CPU, at most 2; 1: this one only).",
)
@allow_plugin_failures_option
@config_option
def check(
    file: str,
    fmt: str,
    as_of: dt.date | None,
    patterns: str | None,
    include_info: bool,
    jobs: int,
    allow_plugin_failures: bool,
    config_path: str | None,
) -> None:
    """Evaluate a snapshot FILE (JSON; '-' reads stdin) and print the findings.

    Exits 0 when no finding is a block, 1 when at least one is, 2 when the file or the
    configuration cannot be used, or when a plugin failed to load (its rules did not run;
    --allow-plugin-failures runs without it and exits 0 or 1).

    \b
    Examples:
      tsos-rules check snapshot.json
      tsos-rules check snapshot.json --format json --as-of 2026-11-24
      cat snapshot.json | tsos-rules check - --rules 'tsos.next-step-*,tsos.close-*'
      tsos-rules check big-snapshot.json --jobs 2
      tsos-rules check snapshot.json --allow-plugin-failures
    """
    from tsos_rules.engine import Engine, filter_severity
    from tsos_rules.engine._forked import available_cpus
    from tsos_rules.plugins import collect_report_sections
    from tsos_rules.report.table import render_section, render_table
    from tsos_rules.snapshot._memory import bulk_allocation
    from tsos_rules.snapshot.document import load_snapshot

    config = config_from(config_path)
    selected = [p.strip() for p in patterns.split(",") if p.strip()] if patterns else None
    engine = Engine.from_config(config, rules=selected)
    load_failures = tuple(engine.plugin_manager.failures)  # not the report sections' ones
    source: str | IO[str] = sys.stdin if file == "-" else file
    with bulk_allocation(keep=True):
        snapshot, _ = load_snapshot(source)
        index = engine.index(snapshot, as_of)
        # This command runs no threads, so judging in forked workers is safe here.
        jobs = jobs or min(available_cpus(), MAX_AUTO_JOBS)
        findings = filter_severity(
            engine.evaluate_index(index, jobs=jobs), include_info=include_info
        )
        sections = collect_report_sections(engine.plugin_manager, index, findings)
    engine.close()
    if fmt == "json":
        import orjson

        document = findings.to_dict()
        if sections:
            document["sections"] = [section.to_dict() for section in sections]
        sys.stdout.flush()
        sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
        sys.stdout.buffer.write(b"\n")
        sys.stdout.buffer.flush()
    else:
        click.echo(render_table(findings, color=sys.stdout.isatty()), nl=False)
        for section in sections:
            click.echo("\n" + render_section(section), nl=False)
    skip_teardown()
    failed = plugin_failure_exit(load_failures, allow=allow_plugin_failures)
    sys.exit(failed or (ExitCode.BLOCK if findings.blocking else ExitCode.OK))
