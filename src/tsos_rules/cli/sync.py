"""The scheduled job's commands: ``tsos-rules sync`` and ``tsos-rules init`` (example config)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from tsos_rules.cli._common import config_from, config_option, fail, parse_date
from tsos_rules.errors import ExitCode

log = logging.getLogger("tsos_rules")

EXAMPLE_CONFIG = """\
# tsos-rules configuration (TOML). Every key is optional; an unknown key is an error naming it.
# Secrets never go in this file: a connector that needs one takes {env = "NAME"} or
# {file = "/path/to/secret"} instead. Reference: docs/sync.md.

[connector]
# Which CRM to sync. "local" is the embedded demo CRM (one SQLite file, seeded on first use);
# `tsos-rules connectors` lists the installed connectors.
type = "local"
# Where the demo CRM lives. Default: the user data directory (for example
# ~/.local/share/tsos-rules/demo-crm.sqlite3), or $TSOS_RULES_DATA_DIR when set.
# path = "/var/lib/tsos-rules/demo-crm.sqlite3"
# Size and seed of the generated demo org when the file is first created.
# opportunities = 5000
# seed = 7

[sync]
# report   - judge and record findings; write nothing to the CRM
# annotate - also keep one task per open finding for the record's owner, closed on resolve
# enforce  - annotate, plus the repairs the doctrine names (restore an unapproved close-date
#            move on a locked deal, restore a partner removed from a channel deal), each only
#            if the record is unchanged since it was read
mode = "annotate"
# Findings of at least this severity get a task: "block" or "warn".
# task_min_severity = "warn"
# Record info findings too (never tasked unless task_min_severity = "info").
# include_info = false
# The first run on a new date is a full run, so date-driven verdicts (past-due next steps,
# close dates in the past, follow-up windows, quarter end) are re-judged every day.
# daily_full = true
# Company groups (an account with its leads, deals and activities) read per batch.
# batch_size = 500
# Retries of a CRM write that failed for a transient reason (the writes are idempotent).
# write_retries = 3
# Days of run log and resolved findings kept; older ones are pruned at the end of each sync
# (open findings, exemptions and pending writes never are). 0 keeps everything.
# history_days = 400

# Notifications after each sync through apprise (pip install 'tsos-rules[notify]'); off
# unless a URL source is set. URLs carry tokens: keep them in the environment or in a file
# outside the repository, never here. Reference: docs/operate.md.
# [notify]
# urls_env = "TSOS_NOTIFY_URLS"          # e.g. "slack://T000/B000/XXXX mailtos://..."
# urls_file = "/etc/tsos-rules/notify-urls"
# on = "changes"                         # always | changes | blocks
# owner_digest = false                   # also send each owner their open findings
# owner_url_template = "mailtos://${SMTP_USER}:${SMTP_PASS}@example.com?to={email}"

[state]
# The state store: watermarks, every finding's lifecycle, the run log. Keep it on persistent
# storage; a lock file <path>.lock sits beside it. Default: the user data directory.
# path = "/var/lib/tsos-rules/state.sqlite3"

[org]
# timezone = "UTC"
# fiscal_year_start_month = 1
# lock_stage = "date_locked"

[rules]
# disabled = ["tsos.partner-told-of-direct-contact"]
# The longest an exemption may run, in days (config, `tsos-rules exempt add`, CRM field).
# exemption_max_days = 180

# Staged rollout, by rule id or glob (overrides sync.mode for those rules; honoured by check,
# sync and in-line): shadow = judged and kept as "would have" (no CRM writes, never refuses a
# change), annotate = one task per finding, enforce = tasks and the doctrine's repairs.
[rules.rollout]
# "tsos.close-date-locked" = "enforce"
# "tsos.channel-lead-not-direct" = "enforce"
# "tsos.lead-single-owner" = "shadow"

# Exemptions kept in git: a rule (id or glob) waived on one record, or on every record of an
# account (account_id) or a partner (partner_id), until a date (at most exemption_max_days
# after created). Listed as exempt, never dropped; `tsos-rules exempt list` shows them.
# [[exemptions]]
# rule = "tsos.next-step-*"
# record_type = "opportunity"
# record_id = "006A1"
# reason = "buyer on leave until January"
# approver = "Dana (RVP)"
# created = 2026-12-01
# expires = 2027-01-15

# [packs.tsos]
# slip_count = 3

[serve]
# The in-line HTTP endpoint (`tsos-rules serve`, docs/inline.md). Callers send this bearer
# token; it is read from the environment (or give {file = "/path"}), never written here:
#   TSOS_RULES_SERVE_TOKEN=$(openssl rand -hex 16) tsos-rules serve --config tsos-rules.toml
token = {env = "TSOS_RULES_SERVE_TOKEN"}
# host = "127.0.0.1"
# port = 8787
"""


class PlainProgress:
    """Log lines for cron and CI: one when the run starts, then at most one every 10 s."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.last = 0.0

    def _say(self, text: str) -> None:
        if not self.quiet:
            click.echo(f"tsos-rules: {text}", err=True)

    def start(self, *, full: bool, since: str | None) -> None:
        self.last = time.monotonic()
        self._say("sync started: " + ("full read" if full else f"changes since {since}"))

    def batch(self, *, done: int, total: int | None, records: int, findings: int) -> None:
        now = time.monotonic()
        if now - self.last >= 10 or (total is not None and done >= total):
            self.last = now
            where = f"{done:,}/{total:,} groups" if total else f"{done:,} groups"
            self._say(f"{where}, {records:,} records read, {findings:,} new findings")

    def note(self, message: str) -> None:
        self._say(message)

    def stop(self) -> None:
        pass


class RichProgress:
    """A rich progress bar on the terminal (stderr), with notes printed above it."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = Console(stderr=True)
        self.bar = Progress(
            TextColumn("[bold]sync[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("groups"),
            TextColumn("{task.fields[records]} records, {task.fields[findings]} new findings"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.task: Any = None

    def start(self, *, full: bool, since: str | None) -> None:
        self.bar.start()
        self.task = self.bar.add_task("sync", total=None, records="0", findings="0")

    def batch(self, *, done: int, total: int | None, records: int, findings: int) -> None:
        self.bar.update(
            self.task, completed=done, total=total, records=f"{records:,}", findings=f"{findings:,}"
        )

    def note(self, message: str) -> None:
        # print, not log: Console.log adds the time and this module's file:line to every note.
        self.console.print(message, highlight=False)

    def stop(self) -> None:
        self.bar.stop()


class _EchoHandler(logging.Handler):
    """Log records as ``tsos-rules: message`` lines on the *current* stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"tsos-rules: {record.getMessage()}", err=True)


@contextlib.contextmanager
def _logging(*, quiet: bool, console: Any = None) -> Iterator[None]:
    """Route the package's log lines to stderr for one command (above the bar on a terminal)."""
    handler: logging.Handler
    if console is not None:
        from rich.logging import RichHandler

        handler = RichHandler(console=console, show_path=False, show_time=False)
    else:
        handler = _EchoHandler()
    level, propagate = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate


@click.command()
@config_option
@click.option(
    "--dry-run", is_flag=True, help="Read, judge and plan; write nothing, commit nothing."
)
@click.option("--full", is_flag=True, help="Read and judge every record, not only changes.")
@click.option(
    "--mode",
    type=click.Choice(["shadow", "report", "annotate", "enforce"]),
    help="Override sync.mode for this run (shadow: judge and store, write nothing).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False),
    help="Write the report page to FILE: the worklist to filter by owner, charts, the trend.",
)
@click.option("--as-of", callback=parse_date, help="Evaluate as of this date (YYYY-MM-DD).")
@click.option(
    "--what-if-enforce",
    "what_if",
    multiple=True,
    metavar="RULE_GLOB",
    help=(
        "With --dry-run: judge the rules matching RULE_GLOB as if in enforce mode and list the "
        "writes they would add (marked 'what if'). Repeatable."
    ),
)
@click.option("-q", "--quiet", is_flag=True, help="No progress or log lines, only the result.")
def sync(
    config_path: str | None,
    dry_run: bool,
    full: bool,
    mode: str | None,
    fmt: str,
    html_path: str | None,
    as_of: dt.date | None,
    what_if: tuple[str, ...],
    quiet: bool,
) -> None:
    """Run the scheduled job: read the CRM, judge, write tasks and repairs, record state.

    With no config it runs on the embedded demo CRM (seeded on first use) in annotate mode.
    Exit codes: 0 clean, 1 block findings open, 2 config or input error, 3 connector failure
    or refused writes, 5 records skipped as unreadable, 6 another run holds the lock.

    \b
    Examples:
      tsos-rules sync
      tsos-rules sync --html report.html   # then open report.html#owner=Ray%20Ortiz
      tsos-rules sync --config /etc/tsos-rules.toml --format json
      tsos-rules sync --dry-run --full --mode enforce
      tsos-rules sync --dry-run --what-if-enforce 'tsos.close-*' --format json
    """
    from tsos_rules.report.html import render_html
    from tsos_rules.report.summary import render_summary
    from tsos_rules.sync.job import run_sync
    from tsos_rules.sync.state import LockHeldError

    config = config_from(config_path)
    if not quiet:
        from tsos_rules.cli.demo import data_in_use

        click.echo(f"tsos-rules: {data_in_use(config)}", err=True)
    tty = sys.stderr.isatty() and not quiet
    progress: RichProgress | PlainProgress = RichProgress() if tty else PlainProgress(quiet=quiet)
    console = progress.console if isinstance(progress, RichProgress) else None
    try:
        with _logging(quiet=quiet, console=console):
            summary = run_sync(
                config,
                dry_run=dry_run,
                full=full,
                as_of=as_of,
                mode=mode,
                progress=progress,
                charts=fmt == "json" or html_path is not None,
                worklist=html_path is not None,
                report=str(Path(html_path).resolve()) if html_path else None,
                what_if_enforce=what_if,
            )
    except LockHeldError as exc:
        fail(str(exc), ExitCode.LOCKED)
    data = summary.to_dict()
    if html_path:
        path = Path(html_path)
        try:
            path.write_text(render_html(data, summary.worklist), encoding="utf-8")
        except OSError as exc:
            fail(f"{path}: cannot write the HTML report: {exc.strerror}", ExitCode.INPUT)
        if not quiet:
            click.echo(f"tsos-rules: HTML report written to {path}", err=True)
    if fmt == "json":
        json.dump(data, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    else:
        render_summary(data, stream=sys.stdout, color=sys.stdout.isatty())
    sys.exit(summary.exit_code)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False), default="tsos-rules.toml")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
def init(file: str, force: bool) -> None:
    """Write a commented example config to FILE (default: ./tsos-rules.toml).

    \b
    Examples:
      tsos-rules init
      tsos-rules init /etc/tsos-rules.toml --force
    """
    path = Path(file)
    if path.exists() and not force:
        fail(f"{path}: exists; use --force to overwrite it")
    try:
        path.write_text(EXAMPLE_CONFIG, encoding="utf-8")
    except OSError as exc:
        fail(f"{path}: cannot write: {exc.strerror}")
    click.echo(f"wrote {path}; run: tsos-rules sync --config {path}")
