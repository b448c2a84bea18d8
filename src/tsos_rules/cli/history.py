"""``tsos-rules history``: the sync runs, newest first, and how the pipeline's findings moved.

Read from the state store's run log: each run's mode, outcome and exit code, records read and
judged, findings new, resolved and open (block and warn apart), exempt and shadow findings,
and writes; with ``--by rule``, the same per rule, run by run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from tsos_rules.cli._common import config_option
from tsos_rules.cli.findings import connector_option, open_state


@click.command()
@click.option("--runs", "limit", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--by", "by", type=click.Choice(["run", "rule"]), default="run", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@connector_option
@config_option
def history(
    limit: int, by: str, fmt: str, connector_name: str | None, config_path: str | None
) -> None:
    """The last sync runs: findings new, resolved and open per run (or per rule), and writes.

    Is the pipeline getting healthier? Open blocks falling run after run, more resolved than
    new, say yes.

    \b
    Examples:
      tsos-rules history
      tsos-rules history --runs 30 --by rule
      tsos-rules history --format json | jq '.[0].findings'
    """
    store, connector = open_state(config_path, connector_name)
    try:
        runs = [r for r in store.runs(connector, limit=limit) if r["counts"] is not None]
    finally:
        store.close()
    if fmt == "json":
        click.echo(json.dumps([_run_dict(r) for r in runs], indent=1))
        return
    if not runs:
        click.echo(f"no finished sync run for {connector!r} yet: run 'tsos-rules sync'")
        return
    lines = _by_rule(runs) if by == "rule" else _by_run(runs)
    for line in lines:
        click.echo(line)


def _run_dict(run: dict[str, Any]) -> dict[str, Any]:
    counts = run["counts"]
    return {
        "run_id": run["id"],
        "started_at": run["started_at"],
        "mode": run["mode"],
        "full": bool(run["full"]),
        "dry_run": bool(run["dry_run"]),
        "outcome": run["outcome"],
        "exit_code": run["exit_code"],
        "records": counts.get("records", {}),
        "findings": counts.get("findings", {}),
        "actions": counts.get("actions", {}),
    }


def _table(
    header: tuple[str, ...], rows: Sequence[tuple[str, ...]], *, text_columns: int
) -> list[str]:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    out = []
    for row in (header, *rows):
        cells = [
            cell.ljust(width) if i < text_columns else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return out


def _by_run(runs: list[dict[str, Any]]) -> list[str]:
    header = ("run", "started (UTC)", "kind", "read", "new", "resolved", "open", "block", "exit")
    rows = []
    for run in runs:
        counts = run["counts"]
        findings = counts.get("findings", {})
        kind = ("full" if run["full"] else "incremental") + (" dry" if run["dry_run"] else "")
        rows.append(
            (
                f"#{run['id']}",
                str(run["started_at"])[:16].replace("T", " "),
                f"{run['mode']} {kind}",
                f"{counts.get('records', {}).get('read', 0):,}",
                f"{findings.get('new', 0):,}",
                f"{findings.get('resolved', 0):,}",
                f"{findings.get('open', 0):,}",
                f"{findings.get('open_block', 0):,}",
                str(run["exit_code"]),
            )
        )
    now = runs[0]["counts"]["findings"].get("open_block", 0)
    then = runs[-1]["counts"]["findings"].get("open_block", 0)
    change = "no change" if now == then else f"{now - then:+,}"
    summary = f"open blocks: {now:,} now, {then:,} {len(runs) - 1} run(s) earlier ({change})"
    return [*_table(header, rows, text_columns=3), "", summary]


def _by_rule(runs: list[dict[str, Any]]) -> list[str]:
    header = ("rule", "severity", *(f"#{r['id']} open (+new/-res)" for r in runs))
    rules: dict[str, str] = {}
    for run in runs:
        for rule, counts in run["counts"].get("findings", {}).get("by_rule", {}).items():
            rules.setdefault(rule, counts.get("severity", ""))
    if not rules:
        return ["no per-rule counts in these runs (runs before 0.2 kept only totals)"]
    rows = []
    for rule in sorted(rules):
        cells = []
        for run in runs:
            counts = run["counts"].get("findings", {}).get("by_rule", {}).get(rule)
            if counts is None:
                cells.append("-")
            else:
                cells.append(f"{counts['open']} (+{counts['new']}/-{counts['resolved']})")
        rows.append((rule, rules[rule], *cells))
    return _table(header, rows, text_columns=2)
