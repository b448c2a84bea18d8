"""The worklist (``tsos-rules findings``) as a table for people, JSON or CSV for tools."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from typing import IO

from rich.console import Console
from rich.table import Table

from tsos_rules.sync.state.worklist import WorklistRow

#: CSV and JSON columns, in order (the JSON objects carry the same keys).
COLUMNS = (
    "status",
    "rule",
    "severity",
    "reason",
    "record_type",
    "record_id",
    "record_name",
    "owner",
    "partner",
    "account",
    "first_seen",
    "age_days",
    "message",
    "remedy",
    "url",
    "exemption_id",
    "task_id",
    "fingerprint",
)

_STYLE = {"block": "red", "warn": "yellow"}


def write_worklist(
    rows: Sequence[WorklistRow], fmt: str, *, stream: IO[str], color: bool = False
) -> None:
    """Write ``rows`` as ``table``, ``json`` or ``csv``."""
    if fmt == "json":
        json.dump([row.to_dict() for row in rows], stream, ensure_ascii=False, indent=1)
        stream.write("\n")
    elif fmt == "csv":
        writer = csv.DictWriter(stream, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row.to_dict())
    else:
        _table(rows, stream, color)


def _table(rows: Sequence[WorklistRow], stream: IO[str], color: bool) -> None:
    console = Console(file=stream, force_terminal=color, no_color=not color, width=200)
    if not rows:
        console.print("No findings match.", highlight=False)
        return
    table = Table(show_edge=False, show_lines=True)
    for column in ("severity", "rule / reason", "record", "owner", "partner", "account", "age"):
        table.add_column(column, overflow="fold")
    table.add_column("message, what to do, link", overflow="fold", ratio=3)
    for row in rows:
        style = _STYLE.get(row.severity)
        severity = f"[{style}]{row.severity}[/{style}]" if style else row.severity
        record = f"{row.record_name or row.record_id}\n{row.record_type} {row.record_id}"
        text = row.message
        if row.remedy:
            text += f"\nWhat to do: {row.remedy}"
        if row.exemption_id is not None:
            text += f"\nExempt (exemption {row.exemption_id})"
        if row.url:
            text += f"\n{row.url}"
        table.add_row(
            severity,
            f"{row.rule}\n{row.reason}",
            record,
            row.owner or "-",
            row.partner or "-",
            row.account or "-",
            f"{row.age_days} d\nsince {row.first_seen}",
            text,
        )
    console.print(table, highlight=False)
    console.print(f"{len(rows):,} finding(s)", highlight=False)
