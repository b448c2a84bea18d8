"""The run summary as rich tables: records read, findings by rule, actions, what was skipped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from tsos_rules.errors import ExitCode

#: What each exit code of ``tsos-rules sync`` means, from :class:`ExitCode` (docs/sync.md has
#: the same list).
EXIT_MEANINGS: dict[int, str] = {int(code): code.meaning for code in ExitCode}

#: Rows listed for skipped records and actions before "... and N more".
SHOWN = 20


def render_summary(summary: Mapping[str, Any], *, stream: IO[str], color: bool) -> None:
    """Print the summary of one run (``SyncSummary.to_dict()``) for people."""
    console = Console(file=stream, force_terminal=color, no_color=not color, width=100)
    records = summary["records"]
    findings = summary["findings"]
    kind = "full run" if summary["full"] else "incremental run"
    dry = " (dry run: nothing written, nothing committed)" if summary["dry_run"] else ""
    console.print(
        f"[bold]tsos-rules sync[/bold] #{summary['run_id']}: {summary['connector']}, "
        f"mode {summary['mode']}, {kind}, as of {summary['as_of']}, "
        f"{summary['duration_s']:.1f} s{dry}",
        highlight=False,
    )

    table = Table(title="Records", title_justify="left", show_edge=False)
    for column in ("read", "changed", "judged", "deleted", "skipped", "held back"):
        table.add_column(column, justify="right")
    table.add_row(
        *(
            f"{records[key]:,}"
            for key in ("read", "changed", "judged", "deleted", "skipped", "held_back")
        )
    )
    console.print(table)

    table = Table(title="Findings by rule", title_justify="left", show_edge=False)
    table.add_column("rule")
    table.add_column("severity")
    for column in ("new", "resolved", "open"):
        table.add_column(column, justify="right")
    for rule, counts in findings["by_rule"].items():
        severity = counts["severity"]
        style = {"block": "red", "warn": "yellow"}.get(severity, "")
        table.add_row(
            rule,
            f"[{style}]{severity}[/{style}]" if style else severity,
            f"{counts['new']:,}",
            f"{counts['resolved']:,}",
            f"{counts['open']:,}",
        )
    table.add_section()
    table.add_row(
        "[bold]total[/bold]",
        f"{findings['open_block']:,} block",
        f"{findings['new']:,}",
        f"{findings['resolved']:,}",
        f"{findings['open']:,}",
    )
    console.print(table)

    actions = summary["actions"]
    table = Table(title="Actions", title_justify="left", show_edge=False)
    table.add_column("action")
    statuses = ("written", "already_done", "stale", "not_possible", "failed", "planned")
    for status in statuses:
        table.add_column(status.replace("_", " "), justify="right")
    for action_kind, counts in actions["by_kind"].items():
        table.add_row(action_kind, *(f"{counts.get(s, 0):,}" for s in statuses))
    if not actions["by_kind"]:
        table.add_row("none", *("0" for _ in statuses))
    console.print(table)
    if actions.get("pending"):
        console.print(
            f"{actions['pending']:,} CRM write(s) still pending (refused, or left by a run that "
            "stopped): the next run sends them again",
            highlight=False,
        )
    if actions.get("abandoned"):
        console.print(
            f"{actions['abandoned']:,} write(s) given up after their last attempt (named in the "
            "run log): check them by hand",
            highlight=False,
        )

    skipped = summary["skipped_records"]
    if skipped:
        table = Table(
            title=f"Skipped records ({len(skipped)})", title_justify="left", show_edge=False
        )
        for column in ("record", "field", "reason"):
            table.add_column(column)
        for item in skipped[:SHOWN]:
            table.add_row(
                f"{item['record_type']} {item['record_id'] or '(no id)'}",
                item["field"] or "-",
                item["reason"],
            )
        if len(skipped) > SHOWN:
            table.add_row(f"... and {len(skipped) - SHOWN} more", "", "")
        console.print(table)

    planned = summary.get("planned_actions") or []
    if planned:
        total = sum(n.get("planned", 0) for n in actions["by_kind"].values())
        what_if = summary.get("what_if_enforce") or []
        title = f"Planned writes (dry run: {total:,}, none sent)"
        if what_if:
            added = sum(1 for item in planned if item.get("what_if"))
            title += (
                f"; what if {', '.join(what_if)} were in enforce: {added:,} of them are "
                "those rules' (marked 'what if')"
            )
        table = Table(
            title=title,
            title_justify="left",
            show_edge=False,
        )
        for column in ("action", "record", "rule", "what"):
            table.add_column(column)
        for item in planned[:SHOWN]:
            before = item.get("before") or {}
            changes = ", ".join(
                f"{k}: {before[k]} → {v}" if k in before else f"{k} = {v}"
                for k, v in item["changes"].items()
            )
            table.add_row(
                item["kind"] + (" (what if)" if item.get("what_if") else ""),
                f"{item['record_type']} {item['record_id']}",
                item["rule"],
                changes or item["subject"],
            )
        if total > SHOWN:
            table.add_row(f"... and {total - SHOWN:,} more (--format json lists them)", "", "", "")
        console.print(table)

    problems = summary.get("exemption_problems") or []
    if problems:
        console.print("CRM exemptions not honoured (the finding stays open):")
        for problem in problems[:SHOWN]:
            console.print(f"  {problem}", highlight=False)

    skipped_actions = summary["skipped_actions"]
    if skipped_actions:
        table = Table(
            title="Writes skipped or refused (retried next run)",
            title_justify="left",
            show_edge=False,
        )
        for column in ("action", "record", "reason"):
            table.add_column(column)
        for item in skipped_actions[:SHOWN]:
            table.add_row(
                item["kind"], f"{item['record_type']} {item['record_id']}", item["reason"]
            )
        if len(skipped_actions) > SHOWN:
            table.add_row(f"... and {len(skipped_actions) - SHOWN} more", "", "")
        console.print(table)

    for sent in summary.get("notifications") or []:
        if sent["status"] == "failed":
            console.print(
                f"notification failed: {sent['service']}, {sent.get('reason', '')}",
                highlight=False,
                markup=False,
            )
        else:
            whom = f" to {sent['owner']}" if sent.get("owner") else ""
            console.print(f"notification sent: {sent['service']}{whom}", highlight=False)
    pruned = summary.get("pruned")
    if pruned and (pruned["runs"] or pruned["findings"]):
        console.print(
            f"history: pruned {pruned['runs']:,} run(s) and {pruned['findings']:,} resolved "
            f"finding(s) older than {pruned['before'][:10]} ([sync] history_days)",
            highlight=False,
        )

    code = summary["exit_code"]
    console.print(f"exit {code}: {EXIT_MEANINGS.get(code, 'see docs/sync.md')}", highlight=False)
