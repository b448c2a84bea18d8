"""``tsos-rules history``: the sync runs, newest first, and how the pipeline's findings moved.

Read from the state store's run log: each run's mode, outcome and exit code, records read and
judged, findings new, resolved and open (block and warn apart), exempt and shadow findings,
and writes; with ``--by rule`` or ``--by owner``, the same per rule or per owner, run by run.
``--prune`` applies the retention setting (``[sync] history_days``) now.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from tsos_rules.cli._common import config_from, config_option, fail
from tsos_rules.cli.findings import connector_option, open_state
from tsos_rules.errors import ExitCode

if TYPE_CHECKING:
    from tsos_rules.sync.state import OwnerTally

#: Shown for findings on records with no owner.
NO_OWNER = "(no owner)"


@click.command()
@click.option("--runs", "limit", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--by",
    "by",
    type=click.Choice(["run", "rule", "owner"]),
    default="run",
    show_default=True,
    help="One row per run, or per rule or per owner with a column per run.",
)
@click.option(
    "--owner",
    "owner",
    metavar="NAME|ID",
    help="Only this owner (name in any case, or user id); implies --by owner.",
)
@click.option(
    "--prune",
    is_flag=True,
    help="Remove run-log rows and resolved findings older than [sync] history_days now.",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@connector_option
@config_option
def history(
    limit: int,
    by: str,
    owner: str | None,
    prune: bool,
    fmt: str,
    connector_name: str | None,
    config_path: str | None,
) -> None:
    """The last sync runs: findings new, resolved and open per run (or per rule or owner).

    Is the pipeline getting healthier? Open blocks falling run after run, more resolved than
    new, say yes. With --by owner: whose deals improve, whose pile grows (owner names as the
    worklist shows them). The run log and resolved findings older than [sync] history_days
    (default 400) are pruned at the end of each sync; --prune does it now and says how much
    it removed (open findings, exemptions and pending writes are never pruned).

    \b
    Examples:
      tsos-rules history
      tsos-rules history --runs 30 --by rule
      tsos-rules history --by owner --runs 5
      tsos-rules history --owner "Ray Ortiz" --runs 30
      tsos-rules history --format json | jq '.[0].findings'
      tsos-rules history --by owner --format json | jq '.[0].by_owner'
      tsos-rules history --prune
    """
    if prune:
        _prune(config_path, connector_name, fmt)
        return
    if owner is not None:
        by = "owner"
    store, connector = open_state(config_path, connector_name)
    try:
        runs = [r for r in store.runs(connector, limit=limit) if r["counts"] is not None]
        owners = store.owner_history(connector, [r["id"] for r in runs]) if by == "owner" else {}
    finally:
        store.close()
    if owner is not None:
        owners = {run: [o for o in tallies if _is(o, owner)] for run, tallies in owners.items()}
    if fmt == "json":
        out = [_run_dict(r) for r in runs]
        if by == "owner":
            for item in out:
                item["by_owner"] = [_owner_dict(o) for o in owners.get(item["run_id"], [])]
        click.echo(json.dumps(out, indent=1))
        return
    if not runs:
        click.echo(f"no finished sync run for {connector!r} yet: run 'tsos-rules sync'")
        return
    if by == "rule":
        lines = _by_rule(runs)
    elif by == "owner":
        lines = _by_owner(runs, owners)
    else:
        lines = _by_run(runs)
    for line in lines:
        click.echo(line)


def _prune(config_path: str | None, connector_name: str | None, fmt: str) -> None:
    """``--prune``: the retention pass, now, with a count of what it removed."""
    from tsos_rules.sync.settings import SyncSettings
    from tsos_rules.sync.state import LockHeldError, RunLock, StateStore, lock_path_for

    settings = SyncSettings.from_config(config_from(config_path))
    connector = connector_name or settings.connector_type
    days = settings.history_days
    if not days:
        message = "[sync] history_days = 0 keeps every run: nothing pruned"
        click.echo(json.dumps({"history_days": 0, "pruned": None}) if fmt == "json" else message)
        return
    try:
        with RunLock(lock_path_for(settings.state_path)):  # never while a sync runs
            store = StateStore(settings.state_path)
            try:
                pruned = store.prune(connector, dt.datetime.now(dt.UTC) - dt.timedelta(days=days))
            finally:
                store.close()
    except LockHeldError as exc:
        fail(str(exc), ExitCode.LOCKED)
    if fmt == "json":
        click.echo(json.dumps({"history_days": days, "pruned": pruned.to_dict()}, indent=1))
        return
    click.echo(
        f"pruned what is older than {days} days (before {pruned.before[:10]}): "
        f"{pruned.runs:,} run(s) with {pruned.actions:,} logged write(s) and "
        f"{pruned.owner_rows:,} per-owner row(s), {pruned.findings:,} resolved finding(s)"
    )


def _is(owner: OwnerTally, wanted: str) -> bool:
    """``--owner``: a name in any case, or the user id (as ``findings --owner`` matches)."""
    return owner.owner_id == wanted or (owner.owner_name or "").casefold() == wanted.casefold()


def _owner_label(owner: OwnerTally) -> str:
    return owner.owner_name or owner.owner_id or NO_OWNER


def _owner_dict(owner: OwnerTally) -> dict[str, Any]:
    return {
        "owner_id": owner.owner_id or None,
        "owner": _owner_label(owner),
        "new": owner.new,
        "resolved": owner.resolved,
        "open": owner.open,
        "open_block": owner.open_block,
    }


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


def _by_owner(runs: list[dict[str, Any]], owners: dict[int, list[OwnerTally]]) -> list[str]:
    header = ("owner", *(f"#{r['id']} open/block (+new/-res)" for r in runs))
    labels: dict[str, str] = {}
    cells: dict[tuple[str, int], OwnerTally] = {}
    for run in runs:
        for owner in owners.get(run["id"], []):
            labels.setdefault(owner.owner_id, _owner_label(owner))
            cells[(owner.owner_id, run["id"])] = owner
    if not labels:
        return ["no per-owner counts in these runs (kept from state schema 7, tsos-rules 0.2, on)"]
    newest = runs[0]["id"]

    def rank(key: str) -> tuple[int, int, str]:
        now = cells.get((key, newest))
        return (-(now.open_block if now else 0), -(now.open if now else 0), labels[key])

    rows = []
    for key in sorted(labels, key=rank):
        row = [labels[key]]
        for run in runs:
            o = cells.get((key, run["id"]))
            row.append("-" if o is None else f"{o.open}/{o.open_block} (+{o.new}/-{o.resolved})")
        rows.append(tuple(row))
    return _table(header, rows, text_columns=1)
